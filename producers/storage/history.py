"""History the reports need for past dates (``HomeHistory``, ``PayerChange``).

- **Home records → ``home_history``.** Every home record written (``listings.set_home_record``,
  wherever it is called) is mirrored here by a ``before_flush`` hook on all sessions — or,
  when ``set_home_record`` writes the record with Core statements, by its call of
  ``record_set``: a record naming another county than the open period closes it and opens a
  new one; the same county continues it. Code that *removes* a home record says when and why
  first, with ``home_record_ends`` (the record itself does not know): the period is closed at
  that time.
- **Payer → ``payer_changes``.** ``change_payer`` sets a listing's ``home_county`` and records
  from when the new region pays.

Both write in the caller's transaction, so history and state never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from producers.storage.models import HomeHistory, HomeRecord, Listing, PayerChange, QueueEntry

log = logging.getLogger(__name__)

_ENDS = "home_history_ends"  # Session.info: person id → (when, why) for records being removed


def home_record_ends(s: Session, pid: str, at: datetime, reason: str) -> None:
    """Say that the home record of ``pid`` is being removed: the period ends at ``at``. Call it
    before ``s.delete(record)``."""
    s.info.setdefault(_ENDS, {})[pid] = (at, reason)


def change_payer(s: Session, item: Listing | QueueEntry, county: str, at: datetime) -> None:
    """``item.home_county = county``, recording for a listing from when ``county`` pays."""
    if item.home_county == county:
        return
    if isinstance(item, Listing):
        s.add(PayerChange(listing_id=item.id, person_id=item.person_id,
                          from_county=item.home_county, to_county=county,
                          changed_at=max(at, item.valid_from)))
    item.home_county = county


# Built once (a statement built per flush cost more than running it).
_HH = HomeHistory.__table__
_OPEN_PERIODS = select(_HH.c.id, _HH.c.listing_county, _HH.c.valid_from).where(
    _HH.c.person_id == bindparam("pid"), _HH.c.valid_to.is_(None))
_END_PERIOD = update(_HH).where(_HH.c.id == bindparam("hid")).values(
    valid_to=bindparam("ends"), end_reason=bindparam("why"))
_GO_ON = update(_HH).where(_HH.c.id == bindparam("hid")).values(
    valid_from=bindparam("starts"), event_at=bindparam("event"), type_code=bindparam("code"),
    type_system=bindparam("system"))
_OPEN_PERIOD = insert(_HH)


def _close(conn: Any, pid: str, at: datetime, reason: str,
           open_: Sequence[Any] | None = None) -> None:
    """End the person's open periods at ``at`` (``open_``: those rows, if the caller read them
    already)."""
    if open_ is None:
        open_ = conn.execute(_OPEN_PERIODS, {"pid": pid}).all()
    for row_id, _county, valid_from in open_:
        conn.execute(_END_PERIOD, {"hid": row_id, "ends": max(at, valid_from), "why": reason})


def record_set(conn: Any, pid: str, county: str, since: datetime, effective_at: datetime,
               event_at: datetime, type_code: str | None, type_system: str | None) -> None:
    """The history of a home record written with these values (by the hook below, or by
    ``listings.set_home_record``, which writes the record itself with Core statements)."""
    start = max(effective_at, since)
    open_ = conn.execute(_OPEN_PERIODS, {"pid": pid}).all()
    if open_ and open_[0].listing_county == county:
        # another unit in the same county: the period goes on
        conn.execute(_GO_ON, {"hid": open_[0].id, "starts": min(open_[0].valid_from, start),
                              "event": event_at, "code": type_code, "system": type_system})
        return
    _close(conn, pid, start, "changed", open_)
    conn.execute(_OPEN_PERIOD, {
        "person_id": pid, "listing_county": county, "valid_from": start, "valid_to": None,
        "effective_at": effective_at, "recorded_at": since, "event_at": event_at,
        "type_code": type_code, "type_system": type_system})


@event.listens_for(Session, "before_flush")
def _before_flush(s: Session, _context: Any, _instances: Any) -> None:
    records = [o for o in s.new if isinstance(o, HomeRecord)]
    records += [o for o in s.dirty if isinstance(o, HomeRecord)
                and s.is_modified(o, include_collections=False)]
    removed = [o for o in s.deleted if isinstance(o, HomeRecord)]
    if not records and not removed:
        return
    conn = s.connection()
    ends: dict[str, tuple[datetime, str]] = s.info.get(_ENDS, {})
    for rec in removed:
        if rec.person_id in ends:
            at, reason = ends.pop(rec.person_id)
        else:  # a removal nobody explained: end it at the latest time the record knew
            log.warning("home record removed without home_record_ends; period closed at its "
                        "last known time")
            at, reason = max(rec.since, rec.effective_at), "removed"
        _close(conn, rec.person_id, at, reason)
    for rec in records:
        record_set(conn, rec.person_id, rec.listing_county, rec.since, rec.effective_at,
                   rec.event_at, rec.type_code, rec.type_system)
