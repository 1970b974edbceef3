"""Listing operations on a region's database, shared by the handlers and the flows.

Everything here runs inside the caller's transaction, after ``lock_person`` has serialised
changes for that person (row lock on PostgreSQL; SQLite's single writer does it there).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypeVar

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from interactions import identifiers as ids
from producers import outbox
from producers.config import Unit
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


def lock_person(s: Session, pid: str, now: datetime, root: str | None = None) -> Person:
    """The person's row, created if missing, locked for the rest of the transaction."""
    values = {"person_id": pid, "id_root": root or ids.personal_id_root(pid), "updated_at": now,
              "deceased": False, "emigrated": False}
    ins = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    s.execute(ins(Person).values(**values).on_conflict_do_nothing(index_elements=["person_id"]))
    return keep(s, s.execute(select(Person).where(Person.person_id == pid)
                             .with_for_update()).scalar_one())


def lock_unit(s: Session, unit_hsa_id: str) -> None:
    """Serialise the use of one unit's places (its cap and queue) for the transaction.

    PostgreSQL: a transaction-scoped advisory lock keyed by the unit; SQLite needs none (one
    writer at a time). Taken after the person's lock, never before."""
    if s.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(unit_hsa_id.encode()).digest()[:8], "big", signed=True)
    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# --- listings ----------------------------------------------------------------------------------

def current_listing(s: Session, pid: str) -> Listing | None:
    """The person's newest not-ended listing at this region's units (at most one)."""
    return s.execute(select(Listing).where(Listing.person_id == pid, Listing.valid_to.is_(None))
                     .order_by(Listing.id.desc())).scalars().first()


def visible_listings(s: Session, pid: str, now: datetime) -> list[Listing]:
    """Listings a resident sees now: current ones and ones that end in the future."""
    rows = s.execute(select(Listing).where(Listing.person_id == pid)
                     .order_by(Listing.valid_from)).scalars()
    return [r for r in rows if (r.valid_to is None or r.valid_to > now)
            and (r.valid_to is None or r.valid_to > r.valid_from)]


def occupied(s: Session, unit_hsa_id: str) -> int:
    return s.execute(select(func.count()).select_from(Listing).where(
        Listing.unit_hsa_id == unit_hsa_id, Listing.valid_to.is_(None))).scalar_one()


def is_closed(s: Session, unit_hsa_id: str) -> bool:
    return s.get(UnitClosure, unit_hsa_id) is not None


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
    taken = dict(s.execute(select(Listing.unit_hsa_id, func.count()).where(
        Listing.unit_hsa_id.in_(unit_hsa_ids), Listing.valid_to.is_(None))
        .group_by(Listing.unit_hsa_id)).all())
    queued = dict(s.execute(select(QueueEntry.unit_hsa_id, func.count()).where(
        QueueEntry.unit_hsa_id.in_(unit_hsa_ids)).group_by(QueueEntry.unit_hsa_id)).all())
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

def queue_of(s: Session, unit_hsa_id: str) -> list[QueueEntry]:
    return list(s.execute(select(QueueEntry).where(QueueEntry.unit_hsa_id == unit_hsa_id)
                          .order_by(QueueEntry.queued_at, QueueEntry.id)).scalars())


def has_queue(s: Session, unit_hsa_id: str) -> bool:
    return s.execute(select(QueueEntry.id).where(QueueEntry.unit_hsa_id == unit_hsa_id)
                     .limit(1)).first() is not None


def queue_position(s: Session, entry: QueueEntry) -> int:
    return 1 + next(i for i, e in enumerate(queue_of(s, entry.unit_hsa_id)) if e.id == entry.id)


def queue_entries_of(s: Session, pid: str) -> list[QueueEntry]:
    return list(s.execute(select(QueueEntry).where(QueueEntry.person_id == pid)
                          .order_by(QueueEntry.id)).scalars())


def estimated_wait(unit: Unit, position: int) -> int:
    return position * unit.days_per_queue_place


# --- the 12-month change limit (home region) ---------------------------------------------------

def changes_in_window(s: Session, pid: str, now: datetime) -> list[datetime]:
    since = now - timedelta(days=365)
    return list(s.execute(select(ListingChange.changed_at).where(
        ListingChange.person_id == pid, ListingChange.changed_at > since)
        .order_by(ListingChange.changed_at)).scalars())


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
    s.add(ListingChange(person_id=pid, changed_at=now, to_county=to_county,
                        message_id=message_id))


def has_listing_anywhere(region: Region, s: Session, pid: str,
                         current: Listing | Literal[False] | None = False) -> bool:
    """Home region's view: is the resident listed somewhere now (so a new choice is a change)?

    ``current``: the caller's ``current_listing(s, pid)``, if it has it (saves a query)."""
    record = s.get(HomeRecord, pid)
    if record is not None:
        return True
    return (current_listing(s, pid) if current is False else current) is not None


def set_home_record(s: Session, pid: str, county: str, now: datetime, effective_at: datetime,
                    event_at: datetime, type_code: str | None = None,
                    type_system: str | None = None) -> str | None:
    """Record where a resident is listed; returns the county recorded before (if any)."""
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


# --- registering a listing ---------------------------------------------------------------------

def register_listing(region: Region, s: Session, pid: str, choice: ListingChoice,
                     now: datetime, origin: str, current: Listing | Literal[False] | None = False,
                     ) -> tuple[Listing, int | None]:
    """Make ``choice`` the person's listing here; returns it and the id of the outbox row that
    tells the home region (None when this region is the home region).

    The caller has checked the rules (and, at home, counted the change). ``current``: the
    caller's ``current_listing(s, pid)`` if it has it, read under the person's lock."""
    eff = effective_time(region.config.rules.takes_effect, now)
    if current is False:
        current = current_listing(s, pid)
    if current is not None:
        end_listing(current, eff, "changed")
    new = Listing(person_id=pid, unit_hsa_id=choice.unit.hsa_id, type_code=choice.type_code,
                  type_system=choice.type_system, personnel_hsa_id=choice.personnel_hsa_id,
                  home_county=choice.home_county, valid_from=eff, valid_to=None,
                  registered_at=now, origin=origin)
    s.add(new)
    s.execute(delete(QueueEntry).where(QueueEntry.person_id == pid))
    s.flush()
    row_id: int | None = None
    if choice.home_county == region.county:
        before = set_home_record(s, pid, region.county, now, eff, now, choice.type_code,
                                 choice.type_system)
        if before is not None and before != region.county:
            outbox.enqueue(s, region.county, before, outbox.Notification(
                person_id=pid, new_county=region.county, home_county=region.county,
                type_code=choice.type_code, type_system=choice.type_system,
                registered_at=now, effective_at=eff, purpose="forward"), now)
    else:
        restore = current.id if current is not None else None
        row = outbox.enqueue(s, region.county, choice.home_county, outbox.Notification(
            person_id=pid, new_county=region.county, home_county=choice.home_county,
            type_code=choice.type_code, type_system=choice.type_system,
            registered_at=now, effective_at=eff, purpose="change"), now,
            on_refusal={"listing_id": new.id, "restore_listing_id": restore})
        row_id = row.id
    if current is not None and current.unit_hsa_id != new.unit_hsa_id:
        admit_from_queue(region, s, current.unit_hsa_id, now)
    return new, row_id


def admit_from_queue(region: Region, s: Session, unit_hsa_id: str, now: datetime) -> int:
    """Give free places at a unit to the residents first in its queue; returns how many."""
    unit = region.config.unit(unit_hsa_id)
    if unit is None or is_closed(s, unit.hsa_id):
        return 0
    lock_unit(s, unit.hsa_id)
    admitted = 0
    while occupied(s, unit.hsa_id) < unit.cap:
        queue = queue_of(s, unit.hsa_id)
        if not queue:
            break
        head = queue[0]
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
    if listing.valid_to is not None and listing.end_reason != "changed":
        return False  # already ended for another reason
    newer = s.execute(select(Listing).where(  # a newer choice that was not taken back
        Listing.person_id == listing.person_id, Listing.id > listing.id,
        or_(Listing.end_reason.is_(None),
            Listing.end_reason.not_in(("refused_by_home", "cancelled"))))).scalars().first()
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
    admit_from_queue(region, s, listing.unit_hsa_id, now)
    return True



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
             and not queue_of(s, u.hsa_id)]
    if not units:
        return None
    if muni is None:
        return None
    return min(units, key=lambda u: distance_km(muni.latitude, muni.longitude,
                                                u.latitude, u.longitude))
