"""Listing operations on a region's database, shared by the handlers and the flows.

Everything here runs inside the caller's transaction, after ``lock_person`` has serialised
changes for that person (row lock on PostgreSQL; SQLite's single writer does it there).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from interactions import identifiers as ids
from producers import outbox
from producers.config import Unit
from producers.storage import history
from producers.storage.models import (
    HomeRecord,
    Listing,
    ListingChange,
    OutboxMessage,
    Person,
    QueueEntry,
    UnitClosure,
)

if TYPE_CHECKING:
    from producers.region import Region

T = TypeVar("T")


# --- statements built once ---------------------------------------------------------------------
# Building a statement costs more CPU than running it (SQLAlchemy constructs the expression and
# its cache key every time), and a plain read through the ORM costs several times a Core read.
# The statements of the hot paths are therefore built once, with bind parameters; reads that
# need no ORM object are Core statements run on the session's connection (``_core``).

_persons, _listings, _queue = Person.__table__, Listing.__table__, QueueEntry.__table__


def _person_insert(dialect_insert: Any) -> Any:
    return dialect_insert(_persons).values(
        person_id=bindparam("pid"), id_root=bindparam("root"), updated_at=bindparam("now"),
        deceased=False, emigrated=False)


def _lock_and_load(dialect_insert: Any) -> Any:
    """The person's row, inserted if missing, returned as the ORM object — one statement.

    PostgreSQL: ON CONFLICT DO UPDATE locks an existing row as SELECT ... FOR UPDATE would (and
    a new row is ours until commit). The update changes nothing; it is there so that RETURNING
    gives the existing row too (DO NOTHING returns none). SQLite: one writer at a time, nothing
    to lock; the same statement saves the separate read. An object already in the session is
    returned as it is (no ``populate_existing``), as ``Session.get`` would."""
    upsert = _person_insert(dialect_insert).on_conflict_do_update(
        index_elements=["person_id"], set_={"id_root": _persons.c.id_root})
    return select(Person).from_statement(upsert.returning(*_persons.c))


_LOCK_PERSON = {"postgresql": _lock_and_load(pg_insert), "sqlite": _lock_and_load(sqlite_insert)}
_UNIT_CLOSED = select(UnitClosure.__table__.c.unit_hsa_id).where(
    UnitClosure.__table__.c.unit_hsa_id == bindparam("unit"))
_OCCUPIED = select(func.count()).select_from(_listings).where(
    _listings.c.unit_hsa_id == bindparam("unit"), _listings.c.valid_to.is_(None))
_HAS_QUEUE = select(_queue.c.id).where(_queue.c.unit_hsa_id == bindparam("unit")).limit(1)
_OCCUPANCY = select(_OCCUPIED.scalar_subquery(),
                    exists().where(_queue.c.unit_hsa_id == bindparam("unit")))
_UNIT_COUNTS = select(_OCCUPIED.scalar_subquery(), select(func.count()).select_from(_queue).where(
    _queue.c.unit_hsa_id == bindparam("unit")).scalar_subquery())
_CURRENT = (select(Listing).where(Listing.person_id == bindparam("pid"),
                                  Listing.valid_to.is_(None)).order_by(Listing.id.desc()))
_CURRENT_ROW = (select(_listings).where(_listings.c.person_id == bindparam("pid"),
                                        _listings.c.valid_to.is_(None))
                .order_by(_listings.c.id.desc()))
# the newest ended listing the resident chose here and that was not taken back
_LAST_ENDED_CHOICE = (select(Listing).where(
    Listing.person_id == bindparam("pid"), Listing.valid_to.is_not(None),
    Listing.origin != "passive", Listing.end_reason.not_in(("refused_by_home", "cancelled")))
    .order_by(Listing.registered_at.desc()).limit(1))
_LISTINGS_OF = select(_listings).where(_listings.c.person_id == bindparam("pid")).order_by(
    _listings.c.valid_from)
_QUEUE_HEAD = (select(_queue).where(_queue.c.unit_hsa_id == bindparam("unit"))
               .order_by(_queue.c.queued_at, _queue.c.id).limit(1))
_QUEUE_IDS_OF_UNIT = (select(_queue.c.id).where(_queue.c.unit_hsa_id == bindparam("unit"))
                      .order_by(_queue.c.queued_at, _queue.c.id))
_QUEUE_OF_PERSON = (select(QueueEntry).where(QueueEntry.person_id == bindparam("pid"))
                    .order_by(QueueEntry.id))
_TAKEN = (select(_listings.c.unit_hsa_id, func.count()).where(
    _listings.c.unit_hsa_id.in_(bindparam("units", expanding=True)),
    _listings.c.valid_to.is_(None)).group_by(_listings.c.unit_hsa_id))
_QUEUED = (select(_queue.c.unit_hsa_id, func.count()).where(
    _queue.c.unit_hsa_id.in_(bindparam("units", expanding=True)))
    .group_by(_queue.c.unit_hsa_id))
_CHANGES = (select(ListingChange.__table__.c.changed_at).where(
    ListingChange.__table__.c.person_id == bindparam("pid"),
    ListingChange.__table__.c.changed_at > bindparam("since"))
    .order_by(ListingChange.__table__.c.changed_at))
_HAS_HOME_RECORD = select(exists().where(HomeRecord.__table__.c.person_id == bindparam("pid")))
_BIRTH_DATE = select(_persons.c.birth_date).where(_persons.c.person_id == bindparam("pid"))
_HOME_COUNTY = select(
    select(_persons.c.home_county).where(_persons.c.person_id == bindparam("pid"))
    .scalar_subquery(),
    exists().where(HomeRecord.__table__.c.person_id == bindparam("pid")))
_PLACES_OF_PERSON = (select(_queue).where(_queue.c.person_id == bindparam("pid"))
                     .order_by(_queue.c.id))
_INSERT_LISTING = insert(_listings)
_END_LISTING = update(_listings).where(_listings.c.id == bindparam("lid")).values(
    valid_to=bindparam("ends"), end_reason=bindparam("why"))
_INSERT_CHANGE = insert(ListingChange.__table__)
_home = HomeRecord.__table__
# in the order of set_home_record's values (compared as a tuple)
_HOME_RECORD_OF = select(_home.c.listing_county, _home.c.since, _home.c.effective_at,
                         _home.c.event_at, _home.c.type_code, _home.c.type_system).where(
    _home.c.person_id == bindparam("pid"))
_HOME_VALUES = {"listing_county": bindparam("county"), "since": bindparam("since"),
                "effective_at": bindparam("effective_at"), "event_at": bindparam("event_at"),
                "type_code": bindparam("type_code"), "type_system": bindparam("type_system")}
_INSERT_HOME_RECORD = insert(_home).values(person_id=bindparam("pid"), **_HOME_VALUES)
_UPDATE_HOME_RECORD = update(_home).where(_home.c.person_id == bindparam("pid")).values(
    **_HOME_VALUES)


def _core(s: Session, stmt: object, params: dict[str, object]) -> CursorResult:
    """Run a Core statement in the session's transaction. Flushes first when the session
    autoflushes, so that it sees the session's pending changes as an ORM query would."""
    if s.autoflush:
        s.flush()
    return s.connection().execute(stmt, params)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ListingChoice:
    unit: Unit
    type_code: str
    type_system: str
    personnel_hsa_id: str | None
    home_county: str


# --- persons -----------------------------------------------------------------------------------

def keep(s: Session, obj: T) -> T:
    """Hold ``obj`` for the rest of the session. The session's identity map holds objects only
    weakly: a row a helper read and dropped was read again by the next ``s.get`` (the
    person's row up to three times a call)."""
    if obj is not None:
        s.info.setdefault("listning.keep", []).append(obj)
    return obj


def held(s: Session, cls: type[T], pk: object) -> T | None:
    """The session's object for ``pk`` if it holds one (no query): what ``s.get`` returns
    without reading the database."""
    # the identity key as SQLAlchemy forms it (class, primary key tuple, identity token);
    # ``orm.util.identity_key`` costs more than the lookup
    return s.identity_map.get((cls, (pk,), None))  # type: ignore[return-value]


def birth_date_here(s: Session, pid: str) -> date | None:
    """The person's birth date in our database, if we know it: from the session's object if it
    holds one, else a Core read (an ORM read cost several times as much)."""
    person = held(s, Person, pid)
    return person.birth_date if person is not None else \
        _core(s, _BIRTH_DATE, {"pid": pid}).scalar()


def home_county_here(s: Session, pid: str) -> tuple[str | None, bool | None]:
    """The person's home county in our database and, when it costs nothing more, whether we
    have a home record for them (else None): from the session's object if it holds one, else
    both in one Core read."""
    person = held(s, Person, pid)
    if person is not None:
        return person.home_county, None
    county, has_record = _core(s, _HOME_COUNTY, {"pid": pid}).one()
    return county, bool(has_record)


def lock_person(s: Session, pid: str, now: datetime, root: str | None = None) -> Person:
    """The person's row, created if missing, locked for the rest of the transaction."""
    person = s.execute(_LOCK_PERSON[s.get_bind().dialect.name],
                       {"pid": pid, "root": root or ids.personal_id_root(pid), "now": now})
    return keep(s, person.scalar_one())


def mark_listed_nowhere(person: Person, chosen: datetime, county: str) -> None:
    """As the home region: news left the resident listed nowhere — the listing in ``county``
    chosen at ``chosen`` ended. News older than that choice is stale from now on, and so is
    a hand-over of that same listing (same county, same time: update_listing)."""
    if person.home_event_at is None or chosen >= person.home_event_at:
        person.home_event_at, person.home_event_county = chosen, county


def lock_unit(s: Session, unit_hsa_id: str) -> None:
    """Serialise the use of one unit's places (its cap and queue) for the transaction.

    PostgreSQL: a transaction-scoped advisory lock keyed by the unit; SQLite needs none (one
    writer at a time). Taken after the person's lock, never before."""
    if s.get_bind().dialect.name != "postgresql":
        return
    s.connection().execute(_UNIT_LOCK, {"k": _unit_lock_key(unit_hsa_id)})


_UNIT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


@functools.lru_cache(maxsize=4096)
def _unit_lock_key(unit_hsa_id: str) -> int:
    return int.from_bytes(hashlib.sha256(unit_hsa_id.encode()).digest()[:8], "big", signed=True)


# --- listings ----------------------------------------------------------------------------------

def current_listing(s: Session, pid: str) -> Listing | None:
    """The person's newest not-ended listing at this region's units (at most one)."""
    return s.execute(_CURRENT, {"pid": pid}).scalars().first()


def stands_in_for(person: Person | None, listing: Listing) -> datetime | None:
    """For a passive listing at our units, when the choice it stands in for was made — the
    one whose end left the resident listed nowhere (``person.home_event_at``); None for a
    chosen listing, or a passive one with no earlier choice known. A passive listing only
    stands in for a choice its home region did not know of: the news of a choice made after
    that one beats it wherever it arrives — at the home region (update_listing's
    beats_passive) and, after a move, at the former home (``outdates``) and at the new one
    (the hand-over carries this time, flows._move)."""
    if (listing.origin == "passive" and person is not None and person.home_event_at is not None
            and person.home_event_at < listing.registered_at):
        return person.home_event_at
    return None


def outdates(person: Person | None, listing: Listing, event_at: datetime, county: str) -> bool:
    """Whether our listing is newer than news of a listing in ``county`` chosen at
    ``event_at`` (the stale rule, as a listing region). A passive listing is newer than the
    choice it stands in for — that same listing, same county and time, has ended — and
    than anything older; not than a choice made after it (``stands_in_for``)."""
    since = stands_in_for(person, listing)
    if since is not None and person is not None:
        return event_at < since or (event_at == since and county == person.home_event_county)
    return listing.registered_at > event_at


def last_ended_choice(s: Session, pid: str) -> datetime | None:
    """When the resident last chose one of our units, if that listing has ended since (and
    was not taken back) and its notice has had its answer; else None."""
    last = s.execute(_LAST_ENDED_CHOICE, {"pid": pid}).scalars().first()
    return last.registered_at if last is not None and not awaiting_home(s, last) else None


def current_listing_row(s: Session, pid: str) -> Row | None:
    """``current_listing`` as a row of the listing's columns, for a caller that only reads it
    (or passes it to ``register_listing``): a Core read, where an ORM read cost twice as much."""
    return _core(s, _CURRENT_ROW, {"pid": pid}).first()


def visible_listings(s: Session, pid: str, now: datetime) -> list[Any]:
    """Listings a resident sees now: current ones and ones that end in the future (rows with
    the listings' columns: a Core read, for reading)."""
    rows = _core(s, _LISTINGS_OF, {"pid": pid})
    return [r for r in rows if (r.valid_to is None or r.valid_to > now)
            and (r.valid_to is None or r.valid_to > r.valid_from)]


def occupied(s: Session, unit_hsa_id: str) -> int:
    return _core(s, _OCCUPIED, {"unit": unit_hsa_id}).scalar_one()


def occupancy(s: Session, unit_hsa_id: str) -> tuple[int, bool]:
    """``occupied`` and ``has_queue`` of a unit in one query."""
    taken, queue = _core(s, _OCCUPANCY, {"unit": unit_hsa_id}).one()
    return taken, bool(queue)


def is_closed(s: Session, unit_hsa_id: str) -> bool:
    return _core(s, _UNIT_CLOSED, {"unit": unit_hsa_id}).first() is not None


def closed_units(s: Session) -> set[str]:
    return set(s.execute(select(UnitClosure.unit_hsa_id)).scalars())


@dataclass(frozen=True)
class UnitCounts:
    occupied: int  # current listings
    queued: int  # queue length


def unit_counts(s: Session, unit_hsa_ids: list[str]) -> dict[str, UnitCounts]:
    """Occupied places and queue length of several units in two grouped queries (one query
    pair per unit made GetAvailableHealthcareFacilities an N+1)."""
    if not unit_hsa_ids:
        return {}
    if len(unit_hsa_ids) == 1:  # one unit (a listing's): both counts in one query
        taken_, queued_ = _core(s, _UNIT_COUNTS, {"unit": unit_hsa_ids[0]}).one()
        return {unit_hsa_ids[0]: UnitCounts(taken_, queued_)}
    taken = dict(_core(s, _TAKEN, {"units": unit_hsa_ids}).all())
    queued = dict(_core(s, _QUEUED, {"units": unit_hsa_ids}).all())
    return {u: UnitCounts(taken.get(u, 0), queued.get(u, 0)) for u in unit_hsa_ids}


def end_listing(listing: Listing, at: datetime, reason: str) -> None:
    # A listing that had not yet taken effect is ended at its start: it never was in force.
    listing.valid_to = max(at, listing.valid_from)
    listing.end_reason = reason


def effective_time(rule: str, now: datetime) -> datetime:
    """When a listing registered at ``now`` takes effect under the region's rule."""
    if rule == "next_day":
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
    if rule == "first_of_next_month":
        first = now.date().replace(day=1) + timedelta(days=32)
        return datetime.combine(first.replace(day=1), datetime.min.time())
    return now


# --- queues ------------------------------------------------------------------------------------

def has_queue(s: Session, unit_hsa_id: str) -> bool:
    return _core(s, _HAS_QUEUE, {"unit": unit_hsa_id}).first() is not None


def queue_position(s: Session, entry: QueuePlace) -> int:
    ids_ = _core(s, _QUEUE_IDS_OF_UNIT, {"unit": entry.unit_hsa_id}).scalars()
    return 1 + next(i for i, id_ in enumerate(ids_) if id_ == entry.id)


def queue_entries_of(s: Session, pid: str) -> list[QueueEntry]:
    return list(s.execute(_QUEUE_OF_PERSON, {"pid": pid}).scalars())


class QueuePlace(Protocol):
    """What ``queue_position`` and ``register_listing`` need of a place in a queue (a
    ``QueueEntry``, or a row of ``queue_places_of``)."""

    id: int
    unit_hsa_id: str


def queue_places_of(s: Session, pid: str) -> list[Any]:
    """``queue_entries_of`` as rows with the entries' columns: a Core read, for reading."""
    return list(_core(s, _PLACES_OF_PERSON, {"pid": pid}).all())


def estimated_wait(unit: Unit, position: int) -> int:
    return position * unit.days_per_queue_place


# --- the 12-month change limit (home region) ---------------------------------------------------

def changes_in_window(s: Session, pid: str, now: datetime) -> list[datetime]:
    since = now - timedelta(days=365)
    return list(_core(s, _CHANGES, {"pid": pid, "since": since}).scalars())


def remaining_changes(region: Region, s: Session, pid: str, now: datetime) -> int:
    used = len(changes_in_window(s, pid, now))
    return max(0, region.config.rules.changes_per_12_months - used)


def next_change_date(region: Region, s: Session, pid: str, now: datetime) -> str:
    changes = changes_in_window(s, pid, now)
    limit = region.config.rules.changes_per_12_months
    if not changes or limit == 0 or len(changes) < limit:
        return now.date().isoformat()
    # the oldest change that keeps the count at the limit drops out of the window then
    oldest = changes[len(changes) - limit]
    return (oldest + timedelta(days=365)).date().isoformat()


def limit_reached(region: Region, s: Session, pid: str, now: datetime) -> bool:
    return len(changes_in_window(s, pid, now)) >= region.config.rules.changes_per_12_months


def record_change(s: Session, pid: str, now: datetime, to_county: str,
                  message_id: str | None = None) -> None:
    # a Core INSERT: nothing reads the row as an object, and a flush cost several times more
    _core(s, _INSERT_CHANGE, {"person_id": pid, "changed_at": now, "to_county": to_county,
                              "message_id": message_id})


def has_listing_anywhere(region: Region, s: Session, pid: str,
                         current: Listing | Row | Literal[False] | None = False) -> bool:
    """Home region's view: is the resident listed somewhere now (so a new choice is a change)?

    ``current``: the caller's ``current_listing(s, pid)``, if it has it (saves a query)."""
    if current is not False and current is not None:
        return True  # listed here: no need to look for a record
    if has_home_record(s, pid):
        return True
    return (current_listing(s, pid) if current is False else current) is not None


def has_home_record(s: Session, pid: str) -> bool:
    """Whether this region has a home record for the resident (without loading it)."""
    return bool(_core(s, _HAS_HOME_RECORD, {"pid": pid}).scalar())


def set_home_record(s: Session, pid: str, county: str, now: datetime, effective_at: datetime,
                    event_at: datetime, type_code: str | None = None,
                    type_system: str | None = None) -> str | None:
    """Record where a resident is listed; returns the county recorded before (if any).

    With Core statements, the history period too (``history.record_set``), unless the session
    holds the record as an object: then through it, so that the object stays true (the
    ``before_flush`` hook writes the history then)."""
    if s.autoflush:
        s.flush()  # a record being removed is gone, a new one is in the identity map
    if held(s, HomeRecord, pid) is None:
        return _set_home_record_core(s, pid, {
            "county": county, "since": now, "effective_at": effective_at, "event_at": event_at,
            "type_code": type_code, "type_system": type_system})
    record = s.get(HomeRecord, pid)
    before = record.listing_county if record else None
    if record is None:
        record = HomeRecord(person_id=pid)
        s.add(record)
    record.listing_county = county
    record.since = now
    record.effective_at = effective_at
    record.event_at = event_at
    record.type_code = type_code
    record.type_system = type_system
    return before


def _set_home_record_core(s: Session, pid: str, values: dict[str, Any]) -> str | None:
    """``set_home_record`` for a record the session does not hold: what the ORM and the
    history hook would write, without the unit of work (a read, a write, the history's)."""
    conn = s.connection()
    old = conn.execute(_HOME_RECORD_OF, {"pid": pid}).first()
    if old is not None and tuple(old) == tuple(values.values()):
        return old.listing_county  # unchanged: the ORM would write nothing either
    conn.execute(_UPDATE_HOME_RECORD if old is not None else _INSERT_HOME_RECORD,
                 {"pid": pid, **values})
    history.record_set(conn, pid, values["county"], values["since"], values["effective_at"],
                       values["event_at"], values["type_code"], values["type_system"])
    return old.listing_county if old is not None else None


def tell_to_end(s: Session, me: str, to: str, pid: str, chosen: datetime,
                effective_at: datetime, now: datetime) -> None:
    """As the home region: the resident is listed with us, or nowhere, since the choice at
    ``chosen``; region ``to`` may still hold an older listing — it is sent a ``forward``
    (new = us) and ends it."""
    outbox.enqueue(s, me, to, outbox.Notification(
        person_id=pid, new_county=me, home_county=me, type_code=None, type_system=None,
        registered_at=chosen, effective_at=effective_at, purpose="forward"), now)


def record_listed_here(region: Region, s: Session, pid: str, now: datetime,
                       effective_at: datetime, event_at: datetime, type_code: str | None,
                       type_system: str | None) -> None:
    """As the home region: the resident is listed at our own units (chosen at ``event_at``).
    A region our record named before must end its listing: it is sent a ``forward``."""
    before = set_home_record(s, pid, region.county, now, effective_at, event_at, type_code,
                             type_system)
    if before is not None and before != region.county:
        outbox.enqueue(s, region.county, before, outbox.Notification(
            person_id=pid, new_county=region.county, home_county=region.county,
            type_code=type_code, type_system=type_system, registered_at=event_at,
            effective_at=effective_at, purpose="forward"), now)


# --- registering a listing ---------------------------------------------------------------------

def _end_replaced(s: Session, listing: Listing | Row, at: datetime) -> None:
    """``end_listing(listing, at, "changed")`` written at once with a Core UPDATE (a flush of
    the unit of work for one row cost several times more). The session's object for the
    listing, if it holds one, stays true to the row (``set_committed_value``: as if loaded
    so, nothing left to flush)."""
    valid_to = max(at, listing.valid_from)  # as end_listing: never before its start
    _core(s, _END_LISTING, {"lid": listing.id, "ends": valid_to, "why": "changed"})
    obj = held(s, Listing, listing.id)
    if obj is not None:
        set_committed_value(obj, "valid_to", valid_to)
        set_committed_value(obj, "end_reason", "changed")


def _insert_listing(s: Session, pid: str, choice: ListingChoice, eff: datetime, now: datetime,
                    origin: str) -> Listing:
    """Write a new listing with one Core INSERT: the ORM's unit of work for it (flush, identity
    map) cost several times the statement. Returns the row as a ``Listing`` that is *not* the
    session's: nothing changes a new listing in the transaction that registers it (a change to
    this object would not be saved; read it with ``s.get`` first)."""
    values = {"person_id": pid, "unit_hsa_id": choice.unit.hsa_id, "type_code": choice.type_code,
              "type_system": choice.type_system, "personnel_hsa_id": choice.personnel_hsa_id,
              "home_county": choice.home_county, "valid_from": eff, "valid_to": None,
              "registered_at": now, "origin": origin, "end_reason": None}
    inserted = _core(s, _INSERT_LISTING, values).inserted_primary_key
    return Listing(id=inserted[0], **values)


def register_listing(region: Region, s: Session, pid: str, choice: ListingChoice,
                     now: datetime, origin: str,
                     current: Listing | Row | Literal[False] | None = False,
                     queued: Sequence[QueuePlace] | None = None,
                     ) -> tuple[Listing, OutboxMessage | None]:
    """Make ``choice`` the person's listing here; returns it and the outbox row that tells the
    home region (None when this region is the home region), both as written (see
    ``_insert_listing`` and ``outbox.enqueue``).

    The caller has checked the rules (and, at home, counted the change). ``current``: the
    caller's ``current_listing(s, pid)`` (or ``current_listing_row``) if it has it, read under
    the person's lock; ``queued`` likewise its ``queue_places_of(s, pid)`` (the places in
    queues the listing ends)."""
    eff = effective_time(region.config.rules.takes_effect, now)
    if current is False:
        current = current_listing(s, pid)
    if current is not None:
        _end_replaced(s, current, eff)
    if queued is None:
        s.execute(delete(QueueEntry).where(QueueEntry.person_id == pid))
    elif queued:
        s.execute(delete(QueueEntry).where(QueueEntry.id.in_([q.id for q in queued])))
    new = _insert_listing(s, pid, choice, eff, now, origin)
    row: OutboxMessage | None = None
    if choice.home_county == region.county:
        record_listed_here(region, s, pid, now, eff, now, choice.type_code, choice.type_system)
    else:
        restore = current.id if current is not None else None
        row = outbox.enqueue(s, region.county, choice.home_county, outbox.Notification(
            person_id=pid, new_county=region.county, home_county=choice.home_county,
            type_code=choice.type_code, type_system=choice.type_system,
            registered_at=now, effective_at=eff, purpose="change"), now,
            on_refusal={"listing_id": new.id, "restore_listing_id": restore})
    if current is not None and current.unit_hsa_id != new.unit_hsa_id:
        admit_from_queue(region, s, current.unit_hsa_id, now)
    return new, row


def admit_from_queue(region: Region, s: Session, unit_hsa_id: str, now: datetime) -> int:
    """Give free places at a unit to the residents first in its queue; returns how many."""
    unit = region.config.unit(unit_hsa_id)
    if unit is None or is_closed(s, unit.hsa_id):
        return 0
    lock_unit(s, unit.hsa_id)
    admitted = 0
    while True:
        taken, queued = occupancy(s, unit.hsa_id)
        if taken >= unit.cap or not queued:
            break
        head = _core(s, _QUEUE_HEAD, {"unit": unit.hsa_id}).one()
        lock_person(s, head.person_id, now)
        choice = ListingChoice(unit, head.type_code, head.type_system, head.personnel_hsa_id,
                               head.home_county)
        if head.home_county == region.county and has_listing_anywhere(region, s, head.person_id):
            # checked when the resident joined the queue; the change is counted now
            record_change(s, head.person_id, now, region.county)
        register_listing(region, s, head.person_id, choice, now, origin="queue")
        admitted += 1
    return admitted


def undo_listing(region: Region, s: Session, listing_id: int, restore_id: int | None,
                 now: datetime, reason: str) -> bool:
    """Take back a listing the home region refused (or that could not be confirmed), giving the
    resident back the listing it replaced here. False if a newer choice has replaced it since."""
    listing = s.get(Listing, listing_id)
    if listing is None:
        return False
    lock_person(s, listing.person_id, now)
    s.refresh(listing)
    if listing.valid_to is not None and listing.end_reason == "listed_elsewhere":
        # News of a later choice ended it before the home region's refusal came: it was
        # never accepted, so it ends as refused, as if taken back at once.
        end_listing(listing, listing.valid_from, reason)
        _withdraw_rechoices(s, listing, now)
        return False
    if listing.valid_to is not None and listing.end_reason != "changed":
        return False  # already ended for another reason
    newer = s.execute(select(Listing).where(  # a newer choice that was not taken back
        Listing.person_id == listing.person_id, Listing.id > listing.id,
        or_(Listing.end_reason.is_(None),
            Listing.end_reason.not_in(("refused_by_home", "cancelled"))))).scalars().first()
    _withdraw_rechoices(s, listing, now)
    if newer is not None:
        if listing.end_reason == "changed":
            listing.end_reason = reason  # refused: a later take-back must not restore it
        return False  # the resident has chosen again since; that choice stands
    end_listing(listing, listing.valid_from, reason)
    old = s.get(Listing, restore_id) if restore_id is not None else None
    while old is not None and old.end_reason in ("refused_by_home", "cancelled"):
        old = _replaced_by(s, old)  # refused too: go back to the one it replaced
    if old is not None and old.end_reason == "changed":
        old.valid_to = None
        old.end_reason = None
        # a hand-over after a move reached the listing taken back: the one restored is
        # billed to the same (new) home region
        history.change_payer(s, old, listing.home_county, now)
    admit_from_queue(region, s, listing.unit_hsa_id, now)
    return True



def _pending_notices(s: Session, listing: Listing, purposes: tuple[str, ...],
                     to: str | None = None) -> list[OutboxMessage]:
    """Our notices about ``listing`` (its choice, re-choices of it) still to be answered."""
    q = select(OutboxMessage).where(
        OutboxMessage.person_id == listing.person_id, OutboxMessage.status == "pending",
        OutboxMessage.purpose.in_(purposes))
    if to is not None:
        q = q.where(OutboxMessage.to_county == to)
    return [row for row in s.execute(q).scalars()
            if (row.on_refusal or {}).get("listing_id") == listing.id]


def awaiting_home(s: Session, listing: Listing, to: str | None = None) -> bool:
    """Whether a notice of this listing's choice (or of a re-choice of it) still waits for the
    home region's answer (the home region ``to``, when given)."""
    return bool(_pending_notices(s, listing, ("change", "rechoice"), to))


def reaffirm_listing(region: Region, s: Session, listing: Listing, home: str,
                     personnel_hsa_id: str | None, type_code: str, type_system: str,
                     now: datetime) -> OutboxMessage:
    """A resident of another region chooses the unit they are listed at here again; returns
    the outbox row (as written: ``outbox.enqueue``) that asks the home region to confirm it.

    Their home region may have listed them elsewhere since (its UpdateListing ending this
    listing may still be on its way), so this is a choice like any other for the home region
    — counted if it is a change there, refused when the limit is used up. The listing stays one
    period (same row, same start); its registration time becomes now, which is what the home
    region orders notifications by and what makes an older "listed elsewhere" stale here. What
    it was before is kept in the row's ``on_refusal`` so a refusal puts it back."""
    undo = {"listing_id": listing.id, "reaffirmed_at": now.isoformat(), "before": {
        "registered_at": listing.registered_at.isoformat(),
        "personnel_hsa_id": listing.personnel_hsa_id,
        "type_code": listing.type_code, "type_system": listing.type_system}}
    listing.registered_at = now
    if personnel_hsa_id is not None:
        listing.personnel_hsa_id = personnel_hsa_id
    listing.type_code, listing.type_system = type_code, type_system
    return outbox.enqueue(s, region.county, home, outbox.Notification(
        person_id=listing.person_id, new_county=region.county, home_county=home,
        type_code=type_code, type_system=type_system, registered_at=now,
        effective_at=effective_time(region.config.rules.takes_effect, now),
        purpose="rechoice"), now, on_refusal=undo)


def undo_reaffirm(region: Region, s: Session, undo: dict, now: datetime, reason: str) -> bool:
    """Take back a re-choice the home region refused (or that could not be confirmed): the
    listing is as it was before — unless an older "listed elsewhere" was held off only by this
    choice (``ends``, set by UpdateListing), in which case it ends as that notification said."""
    listing = s.get(Listing, undo["listing_id"])
    if listing is None:
        return False
    lock_person(s, listing.person_id, now)
    s.refresh(listing)
    if listing.registered_at != datetime.fromisoformat(undo["reaffirmed_at"]):
        return False  # chosen again since; that choice stands
    before, ends = undo["before"], undo.get("ends")
    while True:  # back past earlier re-choices of this listing that were refused as well
        earlier = next((row for row in s.execute(select(OutboxMessage).where(
            OutboxMessage.person_id == listing.person_id,
            OutboxMessage.purpose == "rechoice")).scalars()
            if (row.on_refusal or {}).get("listing_id") == listing.id
            and row.on_refusal.get("reaffirmed_at") == before["registered_at"]), None)
        if earlier is None or earlier.status not in ("refused", "cancelled"):
            break
        before = earlier.on_refusal["before"]
        # a notification held off only by that re-choice ends the listing now
        ends = min(filter(None, (ends, earlier.on_refusal.get("ends"))), default=None)
    listing.registered_at = datetime.fromisoformat(before["registered_at"])
    listing.personnel_hsa_id = before["personnel_hsa_id"]
    listing.type_code, listing.type_system = before["type_code"], before["type_system"]
    # Ended since (its registration is put back all the same: the re-choice never stood)?
    if listing.valid_to is not None:
        if ends and listing.end_reason == "changed":
            # Replaced here by a newer choice: should the home region refuse that one too,
            # this listing must not come back (the notification would have ended it).
            listing.end_reason = "listed_elsewhere"
    elif ends:
        end_listing(listing, datetime.fromisoformat(ends), "listed_elsewhere")
        s.flush()
        admit_from_queue(region, s, listing.unit_hsa_id, now)
    return True


def _withdraw_rechoices(s: Session, listing: Listing, now: datetime) -> None:
    """A listing taken back cannot be chosen again: its re-choices still waiting to be sent
    would tell the home region of a choice that no longer stands (and, being newer than
    anything it knows, outweigh the resident's real choices there). Withdraw them, leased
    ones too: the worker reads a row's status again before it sends and before it records
    the answer. One already on its way is not called back; the stale rule is all there is."""
    for row in _pending_notices(s, listing, ("rechoice",)):
        row.status, row.finished_at = "cancelled", now
        row.last_error = "withdrawn: the listing was taken back"


def _replaced_by(s: Session, listing: Listing) -> Listing | None:
    """The listing that ``listing`` replaced here (from its outbox row's ``on_refusal``)."""
    rows = s.execute(select(OutboxMessage).where(OutboxMessage.person_id == listing.person_id,
                                                 OutboxMessage.purpose == "change")).scalars()
    for row in rows:
        undo = row.on_refusal or {}
        if undo.get("listing_id") == listing.id and undo.get("restore_listing_id") is not None:
            return s.get(Listing, undo["restore_listing_id"])
    return None


# --- proximity ---------------------------------------------------------------------------------

def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742 * math.asin(math.sqrt(a))


def nearest_open_unit(region: Region, s: Session, municipality: str | None) -> Unit | None:
    """The nearest unit with a free place offering PV, from the municipality's centre."""
    muni = ids.municipalities().get(municipality or "")
    units = [u for u in region.config.units if ids.LISTING_TYPE_PV in u.listing_types
             and not is_closed(s, u.hsa_id) and occupied(s, u.hsa_id) < u.cap
             and not has_queue(s, u.hsa_id)]
    if not units:
        return None
    if muni is None:
        return None
    return min(units, key=lambda u: distance_km(muni.latitude, muni.longitude,
                                                u.latitude, u.longitude))
