"""Cross-region flows that are not a single contract call: unit closure, moves between
counties (relocation hand-over), deaths and emigration, passive listing of newcomers.

Each works in the caller's (or its own) transaction and reports to other regions only through
the outbox. See docs/cross-region-protocol.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from interactions import identifiers as ids
from producers import listings, outbox
from producers.storage import history
from producers.storage.models import HomeRecord, Listing, Person, QueueEntry, UnitClosure

if TYPE_CHECKING:
    from producers.region import Region

log = logging.getLogger(__name__)


# --- unit closure --------------------------------------------------------------------------------

def close_unit(region: Region, unit_hsa_id: str, now: datetime | None = None) -> int:
    """Close a unit: end every listing and queue place there. Residents of other regions go
    back to their home region (UpdateListing new=home); our own residents are listed nowhere
    until they choose — or, with passive listing, at the nearest open unit. Returns how many
    listings ended."""
    now = now or region.clock()
    unit = region.config.unit(unit_hsa_id)
    if unit is None:
        raise KeyError(f"{unit_hsa_id} is not a unit of {region.config.name}")
    with region.db.transaction() as s:
        if s.get(UnitClosure, unit.hsa_id) is None:
            s.add(UnitClosure(unit_hsa_id=unit.hsa_id, closed_at=now))
        s.execute(delete(QueueEntry).where(QueueEntry.unit_hsa_id == unit.hsa_id))
        rows = list(s.execute(select(Listing).where(Listing.unit_hsa_id == unit.hsa_id,
                                                    Listing.valid_to.is_(None))).scalars())
        for row in rows:
            listings.lock_person(s, row.person_id, now)
            listings.end_listing(row, now, "unit_closed")
            if row.home_county != region.county:
                outbox.enqueue(s, region.county, row.home_county, outbox.Notification(
                    person_id=row.person_id, new_county=row.home_county,
                    home_county=row.home_county, type_code=row.type_code,
                    type_system=row.type_system, registered_at=now, effective_at=now,
                    purpose="closure"), now)
            else:
                record = s.get(HomeRecord, row.person_id)
                if record is not None and record.listing_county == region.county:
                    history.home_record_ends(s, row.person_id, now, "unit_closed")
                    s.delete(record)
                s.flush()
                passive_listing_if_due(region, s, row.person_id, now, ignore_grace=True)
        return len(rows)


# --- passive listing -----------------------------------------------------------------------------

def passive_listing_if_due(region: Region, s: Session, pid: str, now: datetime, *,
                           ignore_grace: bool = False) -> Listing | None:
    """List one of our residents who is listed nowhere at the nearest unit with room, when the
    region lists passively — but not before a newcomer's hand-over has had time to arrive."""
    if not region.config.rules.passive_listing:
        return None
    person = s.get(Person, pid)
    if person is None or person.deceased or person.emigrated:
        return None
    if region.home_county_of(s, pid) != region.county:
        return None
    if not ignore_grace and person.passive_listing_after and person.passive_listing_after > now:
        return None
    if s.get(HomeRecord, pid) is not None or listings.current_listing(s, pid) is not None:
        return None
    unit = listings.nearest_open_unit(region, s, region.municipality_of(s, pid))
    if unit is None:
        return None
    listings.lock_unit(s, unit.hsa_id)
    if listings.occupied(s, unit.hsa_id) >= unit.cap:
        return None  # taken meanwhile; the next run tries again
    choice = listings.ListingChoice(unit, ids.LISTING_TYPE_PV, ids.LISTING_TYPE_CODE_SYSTEM,
                                    None, region.county)
    new, _ = listings.register_listing(region, s, pid, choice, now, origin="passive")
    log.info("passive listing at %s", unit.hsa_id)
    return new


def run_passive_listing(region: Region, now: datetime | None = None) -> int:
    """List every newcomer whose hand-over period has passed and who is listed nowhere."""
    now = now or region.clock()
    if not region.config.rules.passive_listing:
        return 0
    with region.db.transaction() as s:
        due = list(s.execute(select(Person.person_id).where(
            Person.home_county == region.county, Person.passive_listing_after.is_not(None),
            Person.passive_listing_after <= now)).scalars())
    done = 0
    for pid in due:
        with region.db.transaction() as s:
            listings.lock_person(s, pid, now)
            if passive_listing_if_due(region, s, pid, now) is not None:
                done += 1
            person = s.get(Person, pid)
            if person is not None:
                person.passive_listing_after = None  # considered once
    return done


# --- the population register's changes -----------------------------------------------------------

def apply_population_change(region: Region, s: Session, change: Any, now: datetime) -> None:
    """Apply one feed entry (idempotent: applying it twice changes nothing more)."""
    pid = change.person_id
    if ids.check_personal_id(pid) is not None:
        log.warning("population feed entry %s has an invalid person id; skipped", change.seq)
        return
    me = region.county
    if me not in (change.from_county, change.to_county) and s.get(Person, pid) is None:
        return  # the whole country's feed: only our residents and people we know matter
    person = listings.lock_person(s, pid, now)
    person.updated_at = now
    kind = change.kind
    if kind == "birth":
        person.home_county = change.to_county
        person.municipality = change.municipality
        person.birth_date = getattr(change, "date", None)
        if change.to_county == region.county and region.config.rules.passive_listing:
            person.passive_listing_after = now  # a newborn has no listing to hand over
    elif kind == "move":
        _move(region, s, person, change, now)
    elif kind in ("death", "emigration"):
        _leave(region, s, person, kind, change, now)


def _move(region: Region, s: Session, person: Person, change: Any, now: datetime) -> None:
    me, old, new = region.county, change.from_county, change.to_county
    pid = person.person_id
    if person.home_county == new:
        return  # already applied
    if old == me:
        # Old home region: hand over what we know to the new home region (and to the listing
        # region, so that it bills the right region), then forget the out-of-county record.
        record = s.get(HomeRecord, pid)
        own = listings.current_listing(s, pid)
        where = record.listing_county if record is not None else (me if own else None)
        if where is not None:
            event_at = record.event_at if record is not None else own.registered_at
            effective_at = record.effective_at if record is not None else own.valid_from
            tcode = record.type_code if record is not None else own.type_code
            tsys = record.type_system if record is not None else own.type_system

            def tell(to: str) -> None:
                outbox.enqueue(s, me, to, outbox.Notification(
                    person_id=pid, new_county=where, home_county=new, type_code=tcode,
                    type_system=tsys, registered_at=event_at, effective_at=effective_at,
                    purpose="handover"), now)

            tell(new)
            if where not in (me, new):
                tell(where)
        if own is not None:
            history.change_payer(s, own, new, now)
        for q in listings.queue_entries_of(s, pid):
            q.home_county = new
        if record is not None:
            history.home_record_ends(s, pid, now, "moved_away")
            s.delete(record)
        person.home_county = new
        person.municipality = change.municipality
        person.passive_listing_after = None
    elif new == me:
        person.home_county = me
        person.municipality = change.municipality
        # Moving (back) to where the listing is: our own listing and queue places are ours
        # to pay for now (no hand-over reaches the listing-region branch for them).
        own = listings.current_listing(s, pid)
        if own is not None:
            history.change_payer(s, own, me, now)  # records from when we pay (reports)
        for q in listings.queue_entries_of(s, pid):
            q.home_county = me
        # Wait for the old home region's hand-over before listing passively.
        person.passive_listing_after = now + timedelta(
            days=region.config.rules.passive_listing_grace_days)
    else:
        person.home_county = new
        person.municipality = None


def _leave(region: Region, s: Session, person: Person, kind: str, change: Any,
           now: datetime) -> None:
    when = datetime.combine(change.date, datetime.min.time()) if change.date else now
    if kind == "death":
        person.deceased = True
    else:
        person.emigrated = True
    person.passive_listing_after = None
    own = listings.current_listing(s, person.person_id)
    s.execute(delete(QueueEntry).where(QueueEntry.person_id == person.person_id))
    record = s.get(HomeRecord, person.person_id)
    if record is not None:
        history.home_record_ends(s, person.person_id, min(when, now), kind)
        s.delete(record)  # every region reads the feed: the listing region ends its own
    if own is not None:
        listings.end_listing(own, min(when, now), kind)
        s.flush()
        listings.admit_from_queue(region, s, own.unit_hsa_id, now)
