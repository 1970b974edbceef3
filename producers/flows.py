"""Cross-region flows that are not a single contract call: unit closure, moves between
counties (relocation hand-over), deaths and emigration, passive listing of newcomers.

Each works in the caller's (or its own) transaction and reports to other regions only through
the outbox. See docs/cross-region-protocol.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import bindparam, case, delete, insert, literal, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from interactions import identifiers as ids
from producers import listings, outbox
from producers.config import Unit
from producers.storage import history
from producers.storage.models import (
    HomeHistory,
    HomeRecord,
    Listing,
    Person,
    QueueEntry,
    UnitClosure,
)

if TYPE_CHECKING:
    from producers.region import Region

log = logging.getLogger(__name__)


# --- unit closure --------------------------------------------------------------------------------

CLOSE_BATCH = 500  # listings ended per transaction (each holds its residents' locks meanwhile)
SET_BASED = True  # False: every resident the one-at-a-time way (the tests compare the two)
T = TypeVar("T")


@dataclass
class Closure:
    """What one run of ``closure`` did. A run that finds the unit closed already reports only
    what it finished itself (``already_closed``; everything zero when nothing was left)."""

    unit_hsa_id: str
    closed_at: datetime  # when the unit was closed (by the first run)
    already_closed: bool = False
    ended: int = 0  # listings ended
    queue_places: int = 0  # queue places ended
    relisted: Counter[str] = field(default_factory=Counter)  # own residents, by their new unit
    listed_nowhere: int = 0  # own residents not listed passively (no such rule, no room ...)
    notified: Counter[str] = field(default_factory=Counter)  # UpdateListing queued, by county
    batches: int = 0

    def merge(self, part: Closure) -> None:
        self.ended += part.ended
        self.relisted.update(part.relisted)
        self.listed_nowhere += part.listed_nowhere
        self.notified.update(part.notified)
        self.batches += part.batches


def close_unit(region: Region, unit_hsa_id: str, now: datetime | None = None, *,
               batch: int = CLOSE_BATCH) -> int:
    """Close a unit (``closure``); returns how many listings ended."""
    return closure(region, unit_hsa_id, now, batch=batch).ended


def closure(region: Region, unit_hsa_id: str, now: datetime | None = None, *,
            batch: int = CLOSE_BATCH,
            on_batch: Callable[[Closure], None] | None = None) -> Closure:
    """Close a unit: end every listing and queue place there. Residents of other regions go
    back to their home region (UpdateListing new=home); our own residents are listed nowhere
    until they choose — or, with passive listing, at the nearest open unit.

    The unit is marked closed and its queue emptied first, in one transaction: from then on no
    one can list there. Its listings are then ended ``batch`` at a time, each batch in a
    transaction of its own with its residents' locks, their notifications and their passive
    listings, so a large unit never holds thousands of residents (on SQLite: the whole
    database) for the length of the closure. Interrupted half way, the unit is closed with
    listings left; running ``closure`` again (``listning region close-unit`` again) ends the
    rest. KeyError for a unit that is not the region's. ``on_batch`` is told what each
    committed batch did."""
    now = now or region.clock()
    unit = region.config.unit(unit_hsa_id)
    if unit is None:
        raise KeyError(f"{unit_hsa_id} is not a unit of {region.config.name}")
    with region.db.transaction() as s:
        known = s.get(UnitClosure, unit.hsa_id)
        if known is None:
            s.add(UnitClosure(unit_hsa_id=unit.hsa_id, closed_at=now))
        result = Closure(unit.hsa_id, known.closed_at if known else now,
                         already_closed=known is not None)
        result.queue_places = s.execute(
            delete(QueueEntry).where(QueueEntry.unit_hsa_id == unit.hsa_id)).rowcount or 0
    while (part := _retrying(lambda: _close_batch(region, unit, now, batch))) is not None:
        result.merge(part)
        if on_batch is not None:
            on_batch(part)
    return result


def _retrying(work: Callable[[], T], attempts: int = 3) -> T:
    """Run a transaction again when PostgreSQL chose it as a deadlock's victim."""
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "40P01" or attempt == attempts - 1:
                raise
            log.info("unit closure: a batch was a deadlock's victim; trying it again")
    raise AssertionError("unreachable")


def _close_batch(region: Region, unit: Unit, now: datetime, size: int) -> Closure | None:
    """End up to ``size`` listings at the (closed) unit in one transaction; None when none was
    left. Set-based: a few statements per batch, not per resident (but a population-register
    lookup for each resident whose municipality the database does not know). Our residents
    without a home record go the one-at-a-time way (``_close_one``)."""
    me = region.county
    passive = region.config.rules.passive_listing
    part = Closure(unit.hsa_id, now, batches=1)
    lt = Listing.__table__.c
    with region.db.transaction() as s:
        pids = sorted(set(s.execute(select(Listing.person_id).where(
            Listing.unit_hsa_id == unit.hsa_id, Listing.valid_to.is_(None))
            .order_by(Listing.id).limit(size)).scalars()))
        if not pids:
            return None
        if not region.db.is_sqlite:  # the residents' locks (lock_person), in a fixed order
            s.execute(select(Person.person_id).where(Person.person_id.in_(pids))
                      .order_by(Person.person_id).with_for_update())
        rows = s.execute(select(Listing.id, Listing.person_id, Listing.home_county,
                                Listing.type_code, Listing.type_system,
                                Listing.registered_at).where(
            Listing.unit_hsa_id == unit.hsa_id, Listing.valid_to.is_(None),
            Listing.person_id.in_(pids)).order_by(Listing.id)).all()
        own = list(dict.fromkeys(r.person_id for r in rows if r.home_county == me))
        found = s.execute(select(HomeRecord.person_id, HomeRecord.listing_county,
                                 HomeRecord.event_at).where(HomeRecord.person_id.in_(own))).all()
        records = {r.person_id: r.listing_county for r in found}
        # the choice that closes: the record's, or the listing's if chosen again since (a
        # re-choice confirmed by another home region, before our feed said they had moved)
        chosen = {r.person_id: r.event_at for r in found}
        for r in rows:
            if r.person_id in chosen:
                chosen[r.person_id] = max(chosen[r.person_id], r.registered_at)
        people = {p.person_id: p for p in s.execute(
            select(Person.person_id, Person.home_county, Person.municipality, Person.deceased,
                   Person.emigrated).where(Person.person_id.in_(own))).all()}
        one_by_one = {pid for pid in own if passive and (
            records.get(pid) is None or pid not in people)} if SET_BASED else set(pids)
        part.ended = len(rows)
        ending = [r.id for r in rows if r.person_id not in one_by_one]
        if ending:
            s.execute(update(Listing.__table__).where(lt.id.in_(ending)).values(
                valid_to=case((lt.valid_from > now, lt.valid_from),
                              else_=literal(now, lt.valid_from.type)),
                end_reason="unit_closed"))
        for r in rows:
            if r.home_county != me and r.person_id not in one_by_one:
                outbox.enqueue(s, me, r.home_county, outbox.Notification(
                    person_id=r.person_id, new_county=r.home_county,
                    home_county=r.home_county, type_code=r.type_code,
                    type_system=r.type_system, registered_at=now, effective_at=now,
                    purpose="closure"), now)
                part.notified[r.home_county] += 1
        # Our residents whose home record names us: the record goes (history: the period
        # ends now, as history.home_record_ends says) — or, listed passively, names us anew.
        removed = [pid for pid in own if pid not in one_by_one and records.get(pid) == me]
        relisted = _relist(region, s, removed, people, now, part) if passive else []
        _end_home_periods(s, {pid: chosen[pid] for pid in removed}, me, now)
        gone = sorted(set(removed) - set(relisted))
        if gone:
            s.execute(delete(HomeRecord.__table__).where(
                HomeRecord.__table__.c.person_id.in_(gone)))
        if relisted:
            _record_passive(region, s, relisted, now)
        rest = [r.id for r in rows if r.person_id in one_by_one]
        for row in s.execute(select(Listing).where(Listing.id.in_(rest))
                             .order_by(Listing.id)).scalars() if rest else ():
            new = _close_one(region, s, row, now)
            if new is not None:
                part.relisted[new.unit_hsa_id] += 1
            elif row.home_county != me:
                part.notified[row.home_county] += 1
        part.listed_nowhere = len(own) - sum(part.relisted.values())
    for hsa_id, n in part.relisted.items():
        log.info("unit closure: %d listed passively at %s", n, hsa_id)
    return part


def _close_one(region: Region, s: Session, row: Listing, now: datetime) -> Listing | None:
    """End one listing at a closing unit, the resident's lock held (the general way)."""
    person = listings.lock_person(s, row.person_id, now)
    listings.end_listing(row, now, "unit_closed")
    if row.home_county != region.county:
        outbox.enqueue(s, region.county, row.home_county, outbox.Notification(
            person_id=row.person_id, new_county=row.home_county,
            home_county=row.home_county, type_code=row.type_code,
            type_system=row.type_system, registered_at=now, effective_at=now,
            purpose="closure"), now)
        return None
    record = s.get(HomeRecord, row.person_id)
    if record is not None and record.listing_county == region.county:
        history.home_record_ends(s, row.person_id, now, "unit_closed")
        # news of a choice older than the one that closed is stale now (update_listing);
        # a choice made after it, not known here yet, still stands. (The listing's own time
        # if chosen again since: a re-choice another home region confirmed.)
        listings.mark_listed_nowhere(person, max(record.event_at, row.registered_at),
                                     region.county)
        s.delete(record)
    s.flush()
    return passive_listing_if_due(region, s, row.person_id, now, ignore_grace=True)


def _relist(region: Region, s: Session, pids: list[str], people: dict[str, Any],
            now: datetime, part: Closure) -> list[str]:
    """List passively, at the nearest unit with room, those of ``pids`` (our residents, in
    order, whose home record names us and is going) who may be: what passive_listing_if_due
    decides one at a time, decided for the batch. Inserts the listings and empties their
    queue places; returns who was listed.

    Home county: the person's row, else ours (the listing is paid by us and the home record
    names us; passive_listing_if_due would ask the population register first). Municipality:
    the person's row, else the population register (``Region.municipality_of``)."""
    if not pids:
        return []
    elsewhere = set(s.execute(select(Listing.person_id).where(  # a listing at another unit
        Listing.person_id.in_(pids), Listing.valid_to.is_(None))).scalars())
    places = _Places(region, s)
    eff = listings.effective_time(region.config.rules.takes_effect, now)
    new_rows, done = [], []
    for pid in pids:
        p = people[pid]
        if p.deceased or p.emigrated or (p.home_county or region.county) != region.county \
                or pid in elsewhere:
            continue
        unit = places.take(p.municipality or region.municipality_of(s, pid))
        if unit is None:
            continue
        new_rows.append({"person_id": pid, "unit_hsa_id": unit.hsa_id,
                         "type_code": ids.LISTING_TYPE_PV,
                         "type_system": ids.LISTING_TYPE_CODE_SYSTEM, "personnel_hsa_id": None,
                         "home_county": region.county, "valid_from": eff, "valid_to": None,
                         "registered_at": now, "origin": "passive", "end_reason": None})
        part.relisted[unit.hsa_id] += 1
        done.append(pid)
    if new_rows:
        s.execute(insert(Listing.__table__), new_rows)
        s.execute(delete(QueueEntry.__table__).where(
            QueueEntry.__table__.c.person_id.in_(done)))
    return done


def _end_home_periods(s: Session, chosen: dict[str, datetime], county: str,
                      at: datetime) -> None:
    """``history.home_record_ends(…, at, "unit_closed")`` and the removal, for many residents
    (person → when the listing that closes, at our unit in ``county``, was chosen): their
    open home-history periods end at ``at``."""
    if not chosen:
        return
    pids = list(chosen)
    hh = HomeHistory.__table__.c
    s.execute(update(HomeHistory.__table__).where(hh.person_id.in_(pids), hh.valid_to.is_(None))
              .values(valid_to=case((hh.valid_from > at, hh.valid_from),
                                    else_=literal(at, hh.valid_from.type)),
                      end_reason="unit_closed"))
    # news of a choice older than the one that closed is stale although no record is left
    # (update_listing); a choice made after it, not known here yet, still stands
    s.connection().execute(_SET_HOME_EVENT, [{"pid": pid, "chosen": when, "county": county}
                                             for pid, when in chosen.items()])


_SET_HOME_EVENT = update(Person.__table__).where(
    Person.__table__.c.person_id == bindparam("pid")).values(
        home_event_at=bindparam("chosen"), home_event_county=bindparam("county"))


def _record_passive(region: Region, s: Session, pids: list[str], now: datetime) -> None:
    """The home records and history periods ``listings.register_listing`` writes for a passive
    listing at our own unit, for many residents (their old period has just ended)."""
    eff = listings.effective_time(region.config.rules.takes_effect, now)
    pv, system = ids.LISTING_TYPE_PV, ids.LISTING_TYPE_CODE_SYSTEM
    hr = HomeRecord.__table__.c
    s.execute(update(HomeRecord.__table__).where(hr.person_id.in_(pids)).values(
        listing_county=region.county, since=now, effective_at=eff, event_at=now,
        type_code=pv, type_system=system))
    s.execute(insert(HomeHistory.__table__), [
        {"person_id": pid, "listing_county": region.county, "valid_from": max(eff, now),
         "valid_to": None, "effective_at": eff, "recorded_at": now, "event_at": now,
         "type_code": pv, "type_system": system, "end_reason": None} for pid in pids])


class _Places:
    """Free places at the region's open units for one transaction: each unit is counted once,
    under its lock, when first needed, and kept up to date as residents are listed there."""

    def __init__(self, region: Region, s: Session) -> None:
        self.region, self.s = region, s
        self.closed = listings.closed_units(s)
        self.queued = set(s.execute(select(QueueEntry.unit_hsa_id).distinct()).scalars())
        self.taken: dict[str, int] = {}
        self.nearest: dict[str | None, tuple[Unit, ...]] = {}

    def take(self, municipality: str | None) -> Unit | None:
        order = self.nearest.get(municipality)
        if order is None:
            order = self.nearest[municipality] = units_by_distance(self.region.config.units,
                                                                   municipality)
        for unit in order:
            if unit.hsa_id in self.closed or unit.hsa_id in self.queued:
                continue
            if unit.hsa_id not in self.taken:
                listings.lock_unit(self.s, unit.hsa_id)  # after the residents' locks
                self.taken[unit.hsa_id] = listings.occupied(self.s, unit.hsa_id)
            if self.taken[unit.hsa_id] < unit.cap:
                self.taken[unit.hsa_id] += 1
                return unit
        return None


# --- passive listing -----------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def units_by_distance(units: tuple[Unit, ...], municipality: str | None) -> tuple[Unit, ...]:
    """The units offering PV, nearest first from the municipality's centre (ties in the
    configuration's order); none for an unknown municipality. Computed once per municipality."""
    muni = ids.municipalities().get(municipality or "")
    if muni is None:
        return ()
    return tuple(sorted((u for u in units if ids.LISTING_TYPE_PV in u.listing_types),
                        key=lambda u: listings.distance_km(muni.latitude, muni.longitude,
                                                           u.latitude, u.longitude)))


def nearest_open_unit(region: Region, s: Session, municipality: str | None) -> Unit | None:
    """``listings.nearest_open_unit``: the nearest unit with a free place offering PV and no
    queue — asking about the nearest first and stopping at the first with room, instead of
    three queries for every unit of the region."""
    candidates = units_by_distance(region.config.units, municipality)
    closed = listings.closed_units(s) if candidates else set()
    for unit in candidates:
        if unit.hsa_id not in closed and listings.occupied(s, unit.hsa_id) < unit.cap \
                and not listings.has_queue(s, unit.hsa_id):
            return unit
    return None


def passive_listing_if_due(region: Region, s: Session, pid: str, now: datetime, *,
                           ignore_grace: bool = False) -> Listing | None:
    """List one of our residents who is listed nowhere at the nearest unit with room, when the
    region lists passively — but not before a newcomer's hand-over has had time to arrive."""
    if not region.config.rules.passive_listing:
        return None
    s.flush()  # a home record the caller has just deleted is gone, not found by s.get below
    person = s.get(Person, pid)
    if person is None or person.deceased or person.emigrated:
        return None
    if region.home_county_of(s, pid) != region.county:
        return None
    if not ignore_grace and person.passive_listing_after and person.passive_listing_after > now:
        return None
    if s.get(HomeRecord, pid) is not None or listings.current_listing(s, pid) is not None:
        return None  # (no current listing: register_listing need not look again)
    unit = nearest_open_unit(region, s, region.municipality_of(s, pid))
    if unit is None:
        return None
    listings.lock_unit(s, unit.hsa_id)
    if listings.occupied(s, unit.hsa_id) >= unit.cap:
        return None  # taken meanwhile; the next run tries again
    choice = listings.ListingChoice(unit, ids.LISTING_TYPE_PV, ids.LISTING_TYPE_CODE_SYSTEM,
                                    None, region.county)
    new, _ = listings.register_listing(region, s, pid, choice, now, origin="passive",
                                       current=None)
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
    # The feed may be read late, several moves at once: act on the net move, from the home we
    # knew to where the register says the person lives now, so a resident who has moved on
    # (or back) is handed over once, to the right region.
    me, pid = region.county, person.person_id
    # A region that keeps a home record (or bills a listing here to itself) has been acting
    # as the home region — on the register's word, before its feed said so.
    own = listings.current_listing(s, pid)
    ended = _ended_here_as_home(s, person, me)
    acting_home = (s.get(HomeRecord, pid) is not None
                   or (own is not None and own.home_county == me) or ended is not None)
    old = me if acting_home else (person.home_county or change.from_county)
    new = region.registered_home_county(pid) or change.to_county
    # the entry's municipality is for its own county; otherwise ask the register when needed
    municipality = change.municipality if new == change.to_county else None
    if old == new or person.home_county == new:
        if new == me and person.home_county != me:
            # Acting as home already (moved back before we read it): the feed catches up, and
            # we answer for the resident as home (GetListingCounty reads the feed's county).
            resident_again(region, s, person, now)
            person.municipality = municipality or person.municipality
        return  # already applied, or moved back before we read it: nothing more to do
    if old == me:
        # Old home region: hand over what we know to the new home region (and to the listing
        # region, so that it bills the right region), then forget the out-of-county record.
        record = s.get(HomeRecord, pid)
        own = listings.current_listing(s, pid)
        where = record.listing_county if record is not None else (me if own else None)
        if where is not None:
            event_at = record.event_at if record is not None else own.registered_at
            # a passive listing of ours goes by the choice it stands in for
            stands_in_for = (listings.stands_in_for(person, own)
                             if own is not None and where == me else None)
            effective_at = record.effective_at if record is not None else own.valid_from
            tcode = record.type_code if record is not None else own.type_code
            tsys = record.type_system if record is not None else own.type_system

            def tell(to: str) -> None:
                outbox.enqueue(s, me, to, outbox.Notification(
                    person_id=pid, new_county=where, home_county=new, type_code=tcode,
                    type_system=tsys, registered_at=event_at, effective_at=effective_at,
                    purpose="handover", stands_in_for=stands_in_for), now)

            # A listing here whose own notice is on its way to the new home region already
            # (chosen with it as home): that notice is the news, counted or refused there; a
            # hand-over of it would be taken in uncounted.
            if record is not None or not listings.awaiting_home(s, own, to=new):
                tell(new)
            if where not in (me, new):
                tell(where)
        elif ended is not None:
            # Listed nowhere since a listing we recorded as home ended (a closure here, say,
            # after the resident had moved but before we read it): the new home region may
            # keep a record from before naming that listing. Say that it ended, ordered by
            # its choice: a record older than that goes.
            chosen = max(ended.event_at, person.home_event_at)  # (the closure's, above)
            outbox.enqueue(s, me, new, outbox.Notification(
                person_id=pid, new_county=new, home_county=new, type_code=None,
                type_system=None, registered_at=chosen, effective_at=ended.valid_to,
                purpose="handover", ended_county=ended.listing_county), now)
        if own is not None:
            history.change_payer(s, own, new, now)
        for q in listings.queue_entries_of(s, pid):
            q.home_county = new
        if record is not None:
            history.home_record_ends(s, pid, now, "moved_away")
            s.delete(record)
        person.home_county = new
        person.municipality = municipality
        person.passive_listing_after = None
    elif new == me:
        resident_again(region, s, person, now)
        person.municipality = municipality
        # Wait for the old home region's hand-over before listing passively.
        person.passive_listing_after = now + timedelta(
            days=region.config.rules.passive_listing_grace_days)
    else:
        person.home_county = new
        person.municipality = None
        # A move between two other regions: a listing here is paid for by the new home region.
        # The old home region's hand-over says so too, but the feed is what settles it when
        # hand-overs arrive out of order.
        own = listings.current_listing(s, pid)
        if own is not None and own.home_county != new:
            history.change_payer(s, own, new, now)
        for q in listings.queue_entries_of(s, pid):
            q.home_county = new


def _ended_here_as_home(s: Session, person: Person, me: str) -> HomeHistory | None:
    """The home-record period that ended last, if we kept the resident's record (acting as
    home region, perhaps on the register's word before our feed said so) until the listing it
    named ended — a closure, or the end of a listing elsewhere — and have handed nothing
    over since; else None."""
    if person.home_event_at is None or person.home_county not in (None, me):
        return None
    last = s.execute(select(HomeHistory).where(HomeHistory.person_id == person.person_id)
                     .order_by(HomeHistory.id.desc()).limit(1)).scalars().first()
    return last if last is not None and last.end_reason in ("unit_closed", "returned") \
        else None


def resident_again(region: Region, s: Session, person: Person, now: datetime) -> None:
    """The person lives here (the feed says so, or the register when our feed lags): our own
    listing and queue places are ours to pay for now (moving back to where the listing is;
    no hand-over reaches the listing-region branch for them)."""
    me = region.county
    person.home_county = me
    own = listings.current_listing(s, person.person_id)
    if own is not None:
        history.change_payer(s, own, me, now)  # records from when we pay (reports)
        _own_listing_is_news(region, s, own, now)
    for q in listings.queue_entries_of(s, person.person_id):
        q.home_county = me


def _own_listing_is_news(region: Region, s: Session, own: Listing, now: datetime) -> None:
    """Home (again), with a listing at our own units chosen while the resident lived
    elsewhere (its notice went to the home region of then). With no home record: record it,
    as for a choice made here — else, should that unit close, no one would learn that the
    resident is listed nowhere, and an older hand-over would name our county for good. A
    record kept from when they last lived here may name a region that lists them from
    before: the newer choice stands — record it and tell that region to end its listing."""
    record = s.get(HomeRecord, own.person_id)
    if record is not None and (record.listing_county == region.county
                               or record.event_at >= own.registered_at):
        return
    if listings.awaiting_home(s, own):
        return  # not known to stand yet: own_listing_settled decides when the verdict comes
    listings.record_listed_here(region, s, own.person_id, now, own.valid_from,
                                own.registered_at, own.type_code, own.type_system)


def own_listing_settled(region: Region, s: Session, pid: str, now: datetime) -> None:
    """The verdict on a notice of a listing here has come (accepted or refused, and anything
    a refusal took back has been taken back). When we are the resident's home region now —
    they moved here while the notice was on its way to the home region of then — news we
    recorded meanwhile was not compared with that listing (update_listing: not known to
    stand yet). Compare now: the newer stands. Our listing newer (or no record): record it
    and tell the region the record named to end its listing. The record newer: our listing
    ends, as if that news had come after it."""
    me = region.county
    if listings.home_county_here(s, pid)[0] != me:
        return  # (one Core read: the common case, a resident of another region, stops here)
    person = listings.lock_person(s, pid, now)
    own = listings.current_listing(s, pid)
    record = s.get(HomeRecord, pid)
    if own is None:
        _ended_choice_settled(region, s, person, record, now)
        return
    # Nothing to do: no listing of ours that a resident chose (or one billed elsewhere —
    # chosen with another home region, no move here read since), a record naming us, or a
    # verdict on the listing still to come.
    if (own.origin == "passive" or own.home_county != me
            or (record is not None and record.listing_county == me)
            or listings.awaiting_home(s, own)):
        return
    if region.registered_home_county(pid) not in (None, me):
        return  # our feed lags behind a move away: the new home region decides
    if record is None or own.registered_at > record.event_at:  # (as _own_listing_is_news)
        listings.record_listed_here(region, s, pid, now, own.valid_from, own.registered_at,
                                    own.type_code, own.type_system)
        return
    listings.end_listing(own, record.effective_at, "listed_elsewhere")
    s.flush()
    listings.admit_from_queue(region, s, own.unit_hsa_id, now)


def _ended_choice_settled(region: Region, s: Session, person: Person,
                          record: HomeRecord | None, now: datetime) -> None:
    """``own_listing_settled`` when that listing has ended meanwhile (its unit closed before
    the resident moved here): a record we took in while its verdict was pending, older than
    the choice, names a listing that choice replaced (update_listing: stale, once settled).
    The resident is listed nowhere: the record goes, and the region it names is told."""
    me, pid = region.county, person.person_id
    if record is None or record.listing_county == me:
        return
    if region.registered_home_county(pid) not in (None, me):
        return  # our feed lags behind a move away: the new home region decides
    chosen = listings.last_ended_choice(s, pid)
    if chosen is None or chosen <= record.event_at:
        return
    listings.tell_to_end(s, me, record.listing_county, pid, chosen, chosen, now)
    history.home_record_ends(s, pid, now, "returned")
    s.delete(record)
    listings.mark_listed_nowhere(person, chosen, me)
    passive_listing_if_due(region, s, pid, now, ignore_grace=True)


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
