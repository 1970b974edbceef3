"""The transactional outbox: UpdateListing messages to other regions.

A row is written in the same transaction as the change it reports (``enqueue``), so a change
is never committed without its notification, nor a notification without its change. Delivery
(``deliver`` for one row right after the change commits, ``run_due`` for the worker) sends
through a pluggable sender and records the outcome:

- OK/INFO: delivered;
- an ERROR* answer: refused — for a resident's change the listing is taken back here
  (``on_refusal``), so the resident keeps the old listing;
- an exception: not delivered (or unknown); retried with exponential back-off and jitter.
  Rows are never deleted or given up on; the receiver de-duplicates by message id.

Several workers may run at once: on PostgreSQL a worker claims due rows with
``FOR UPDATE SKIP LOCKED`` and a lease (``lease_until``), so no row is sent by two workers at
the same time and a crashed worker's rows become due again when the lease runs out. A lease
names its holder (host and process id): a region starting up on a host takes back at once the
leases of processes on that host that no longer run (``release_orphaned_leases``), so a region
killed in the middle of a delivery resumes it on restart instead of a lease period later. Sending
a row twice is harmless (the receiver de-duplicates by message id). On SQLite every transaction
takes the database's single writer lock, so claims are serialised: run one worker process per
SQLite region.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from interactions import identifiers as ids
from interactions.models import message_class, type_class
from producers import ext
from producers.storage.models import OutboxMessage

if TYPE_CHECKING:
    from producers.region import Region

log = logging.getLogger(__name__)

# send_update_listing(to_county, request_model) -> response_model
Sender = Callable[[str, Any], Any]

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
LEASE = timedelta(seconds=120)  # longer than the platform's producer timeout (30 s)
DONE_CODES = ("OK", "INFO")
# Who holds a lease: this process on this host (see release_orphaned_leases).
HOST = socket.gethostname()[:80]


def _owner() -> str:
    return f"{HOST}:{os.getpid()}"  # read each time: a forked worker is another holder


class NotDelivered(Exception):
    """Raised by a sender when the message certainly did not reach the receiver (connection
    refused, no route, platform error before forwarding). Any other exception means the outcome
    is unknown: the message may have been applied."""


@dataclass(frozen=True)
class Notification:
    person_id: str
    new_county: str
    home_county: str
    type_code: str | None
    type_system: str | None
    registered_at: datetime
    effective_at: datetime
    purpose: str
    ended_county: str | None = None  # a closure passed on by a former home region
    stands_in_for: datetime | None = None  # a hand-over of a passive listing (ext.py)

    def to_json(self) -> dict[str, Any]:
        # the fields one by one: dataclasses.asdict deep-copies each value (~170 calls)
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["registered_at"] = self.registered_at.isoformat()
        d["effective_at"] = self.effective_at.isoformat()
        if self.stands_in_for is not None:
            d["stands_in_for"] = self.stands_in_for.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Notification:
        # (rows written before stands_in_for existed have no such key: the default)
        return cls(**{**d, "registered_at": datetime.fromisoformat(d["registered_at"]),
                      "effective_at": datetime.fromisoformat(d["effective_at"]),
                      "stands_in_for": (datetime.fromisoformat(d["stands_in_for"])
                                        if d.get("stands_in_for") else None)})


@dataclass(frozen=True)
class Delivery:
    outcome: str  # delivered | refused | not_delivered | unknown | skipped
    result_code: str | None = None
    result_text: str | None = None


_outbox = OutboxMessage.__table__
_INSERT = insert(_outbox)
_LEASE = update(_outbox).where(_outbox.c.id == bindparam("rid")).values(
    lease_until=bindparam("until"), lease_owner=bindparam("owner"))


def _connection(s: Session) -> Any:
    """The session's connection, its pending changes written first (as an ORM query would)."""
    if s.autoflush:
        s.flush()
    return s.connection()


def enqueue(s: Session, from_county: str, to_county: str, n: Notification, now: datetime, *,
            on_refusal: dict[str, Any] | None = None) -> OutboxMessage:
    """Write an UpdateListing for ``to_county`` in the caller's transaction; returns the row.

    One Core INSERT: the ORM's unit of work for it cost several times the statement. The row
    returned is as written, *not* the session's object: a change to it would not be saved
    (``lease`` writes a lease; ``s.get`` gives the object to change)."""
    values = {"message_id": f"{from_county}-{uuid4()}", "to_county": to_county,
              "person_id": n.person_id, "payload": n.to_json(), "purpose": n.purpose,
              "status": "pending", "created_at": now, "next_attempt_at": now, "attempts": 0,
              "on_refusal": on_refusal}
    inserted = _connection(s).execute(_INSERT, values).inserted_primary_key
    return OutboxMessage(id=inserted[0], **values)


def build_request(row: OutboxMessage) -> Any:
    """The UpdateListing request model for an outbox row (our extension elements in ``any_``)."""
    n = Notification.from_json(row.payload)
    ii, cv = type_class("IIType"), type_class("CVType")
    req = message_class("UpdateListing")(
        personId=ii(root=ids.personal_id_root(n.person_id), extension=n.person_id),
        newListingCounty=ii(root=ids.COUNTY_OID, extension=n.new_county),
        homeCounty=ii(root=ids.COUNTY_OID, extension=n.home_county),
        listingType=(cv(code=n.type_code, codeSystem=n.type_system)
                     if n.type_code and n.type_system else None),
    )
    req.any_ = ext.to_elements(ext.NotificationMeta(row.message_id, n.registered_at,
                                                    n.effective_at, n.purpose,
                                                    n.ended_county, n.stands_in_for))
    return req


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """Exponential back-off with jitter: about 2 s, 4 s, 8 s … capped at an hour."""
    base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * rng.uniform(0.5, 1.5))


def _claim(region: Region, now: datetime, limit: int) -> list[int]:
    with region.db.transaction() as s:
        q = (select(OutboxMessage).where(
            OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now))
            .order_by(OutboxMessage.id).limit(limit))
        if not region.db.is_sqlite:
            q = q.with_for_update(skip_locked=True)
        rows = list(s.execute(q).scalars())
        for row in rows:
            row.lease_until, row.lease_owner = now + LEASE, _owner()
        return [r.id for r in rows]


def lease(s: Session, row_id: int, now: datetime) -> None:
    """Hold a row back from the workers while the caller delivers it itself (one Core UPDATE:
    no read of the row)."""
    until, owner = now + LEASE, _owner()
    _connection(s).execute(_LEASE, {"rid": row_id, "until": until, "owner": owner})
    row = s.identity_map.get((OutboxMessage, (row_id,), None))
    if row is not None:  # the session's object, if it holds one, stays true to the row
        set_committed_value(row, "lease_until", until)
        set_committed_value(row, "lease_owner", owner)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


def release_orphaned_leases(region: Region) -> int:
    """Make due at once the rows leased by processes on this host that are gone (killed in
    the middle of a delivery); returns how many. Leases held elsewhere run out on their own."""
    released = 0
    with region.db.transaction() as s:
        rows = s.execute(select(OutboxMessage).where(
            OutboxMessage.status == "pending", OutboxMessage.lease_until.is_not(None))).scalars()
        for row in rows:
            host, _, pid = (row.lease_owner or "").rpartition(":")
            if host == HOST and pid.isdigit() and not _alive(int(pid)):
                row.lease_until = row.lease_owner = None
                released += 1
    if released:
        log.info("outbox: took back %d message(s) leased by a process that is gone", released)
    return released


def deliver(region: Region, row_id: int, now: datetime,
            message: tuple[str, Any] | None = None) -> Delivery:
    """Send one (leased) row now and record the outcome.

    ``message``: the row's receiver and request (``build_request``), when the caller built them
    in the transaction that wrote and leased the row — pending and held for the caller then, so
    reading the row back (a transaction) would tell nothing new."""
    if message is not None:
        to_county, request = message
    else:
        with region.db.transaction() as s:
            row = s.get(OutboxMessage, row_id)
            if row is None or row.status != "pending":
                return Delivery("skipped")
            to_county, request = row.to_county, build_request(row)
    if region.sender is None:
        failure: Exception | None = NotDelivered("this region has no sender configured")
        response = None
    else:
        try:
            response, failure = region.sender(to_county, request), None
        except Exception as exc:  # any failure of the transport is recorded and retried
            response, failure = None, exc
    return _record(region, row_id, now, response, failure)


def _record(region: Region, row_id: int, now: datetime, response: Any,
            failure: Exception | None) -> Delivery:
    # Core statements on the row (locked on PostgreSQL): this runs for every delivery, and
    # the ORM's load and flush of the one row cost several times the two statements.
    with region.db.transaction() as s:
        conn = s.connection()
        read = _TO_RECORD if region.db.is_sqlite else _TO_RECORD_LOCKED
        row = conn.execute(read, {"rid": row_id}).one()
        if row.status != "pending":
            return Delivery("skipped")
        attempts = row.attempts + 1
        if failure is not None:
            error = f"{type(failure).__name__}: {failure}"[:2000]
            conn.execute(_RECORD_FAILURE, {"rid": row_id, "n": attempts, "error": error,
                                           "next": now + backoff(attempts, region.rng)})
            log.info("outbox %s to %s not delivered (attempt %d): %s", row.message_id,
                     row.to_county, attempts, error)
            return Delivery("not_delivered" if isinstance(failure, NotDelivered) else "unknown")
        code, text = str(response.resultCode), response.resultText
        status = "delivered" if code in DONE_CODES else "refused"
        conn.execute(_RECORD_ANSWER, {"rid": row_id, "n": attempts, "code": code, "text": text,
                                      "at": now, "outcome": status})
        if status == "refused":
            log.info("outbox %s refused by %s: %s", row.message_id, row.to_county, code)
            if row.on_refusal:
                take_back(region, s, row.on_refusal, now, "refused_by_home")
        if row.on_refusal:  # a notice of a listing here: its verdict has come
            _settled(region, s, row.person_id, now)
        return Delivery(status, code, text)


_TO_RECORD = select(_outbox.c.status, _outbox.c.attempts, _outbox.c.message_id,
                    _outbox.c.to_county, _outbox.c.on_refusal, _outbox.c.person_id).where(
    _outbox.c.id == bindparam("rid"))
_TO_RECORD_LOCKED = _TO_RECORD.with_for_update()
_RECORD_FAILURE = update(_outbox).where(_outbox.c.id == bindparam("rid")).values(
    attempts=bindparam("n"), lease_until=None, lease_owner=None, last_error=bindparam("error"),
    next_attempt_at=bindparam("next"))
_RECORD_ANSWER = update(_outbox).where(_outbox.c.id == bindparam("rid")).values(
    attempts=bindparam("n"), lease_until=None, lease_owner=None, result_code=bindparam("code"),
    result_text=bindparam("text"), finished_at=bindparam("at"), status=bindparam("outcome"))


def cancel(region: Region, row_id: int, now: datetime) -> bool:
    """Withdraw a row that certainly was not delivered, taking its change back."""
    with region.db.transaction() as s:
        row = s.get(OutboxMessage, row_id)
        if row is None or row.status != "pending":
            return False
        row.status, row.finished_at = "cancelled", now
        if row.on_refusal:
            take_back(region, s, row.on_refusal, now, "cancelled")
            _settled(region, s, row.person_id, now)
        return True


def _settled(region: Region, s: Session, pid: str, now: datetime) -> None:
    """``flows.own_listing_settled``: a notice of a listing here has had its verdict."""
    from producers import flows  # flows enqueues through this module

    flows.own_listing_settled(region, s, pid, now)


def take_back(region: Region, s: Session, undo: dict[str, Any], now: datetime,
              reason: str) -> None:
    """Undo the change a refused or cancelled row reported (its ``on_refusal``)."""
    from producers import listings  # listings enqueues through this module

    if "reaffirmed_at" in undo:  # a re-choice of the listing the resident has here
        listings.undo_reaffirm(region, s, undo, now, reason)
    else:
        listings.undo_listing(region, s, undo["listing_id"], undo.get("restore_listing_id"),
                              now, reason)


def run_due(region: Region, now: datetime | None = None, limit: int = 100) -> dict[str, int]:
    """One pass of the worker: deliver every due row; returns outcome counts."""
    now = now or region.clock()
    counts: dict[str, int] = {}
    for row_id in _claim(region, now, limit):
        outcome = deliver(region, row_id, now).outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def pending_count(s: Session) -> int:
    return len(list(s.execute(select(OutboxMessage.id).where(
        OutboxMessage.status == "pending")).scalars()))
