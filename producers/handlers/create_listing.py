"""CreateListing: a resident (or a guardian) chooses one of this region's units.

For a resident of another region the listing is registered together with an UpdateListing
for the home region in the outbox — also when they choose the unit they are listed at here
again (the home region may have listed them elsewhere since: ``listings.reaffirm_listing``)
— and that notification is delivered while the request is being handled, so the home
region's answer (ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED in particular) reaches the resident.
If the home region cannot be reached the region follows ``rules.home_unreachable``:
``refuse`` takes the listing back and answers "försök igen senare" (only when the
notification certainly was not delivered), ``outbox`` keeps the listing and leaves the
notification to the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from producers import listings, outbox
from producers.context import CallContext
from producers.handlers.common import (
    Refusal,
    check_actor,
    check_guardian_consent,
    county_code,
    peek_person_id,
    person_id,
    response,
    run,
)
from producers.storage.models import Listing, OutboxMessage, QueueEntry
from producers.texts import text

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "CreateListing"


@dataclass
class _Pending:
    """Registered here; the home region's answer is still to come."""

    outbox_id: int
    listing: Listing
    message: tuple[str, Any]  # the row's receiver and request, built as it was written
    confirmed: str | None = None  # the answer once the home region agrees (default: listed)


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    result = run(region, ctx, CONTRACT, "change", req, peek_person_id(req.personId),
                 lambda s: _register(region, s, req, ctx))
    if not isinstance(result, _Pending):
        return result
    return _confirm_with_home(region, result, req, ctx)


def _unit_name(region: Region, hsa_id: str) -> str:
    unit = region.config.unit(hsa_id)
    return unit.name if unit else hsa_id


def _register(region: Region, s: Session, req: Any, ctx: CallContext) -> Any:
    cfg, now = region.config, ctx.now
    pid = person_id(req.personId)
    unit = cfg.unit(req.healthcareFacilityHSAId)
    if unit is None:
        raise Refusal("ERROR", text("unknown_unit", region=cfg.name))
    if listings.is_closed(s, unit.hsa_id):
        raise Refusal("ERROR", text("unit_closed"))
    if req.newListingCounty is not None and county_code(req.newListingCounty) != cfg.county:
        raise Refusal("ERROR", text("wrong_listing_county", region=cfg.name))
    if req.homeCounty is not None:
        home = county_code(req.homeCounty)
    else:
        known = region.home_county_of(s, pid)
        if known is None:
            raise Refusal("ERROR", text("person_unknown", region=cfg.name))
        if known != cfg.county:
            raise Refusal("ERROR", text("home_county_needed"))
        home = cfg.county
    lt = req.listingType
    ltype = cfg.listing_type(getattr(lt, "code", None), getattr(lt, "codeSystem", None))
    if ltype is None or ltype.code not in unit.listing_types:
        raise Refusal("ERROR", text("type_not_offered", type=getattr(lt, "code", "?")))
    if home != cfg.county and not ltype.shared:
        raise Refusal("ERROR", text("type_not_shared", type=ltype.display_name,
                                    region=cfg.name))
    personnel = None
    if req.healthcarePersonnel:
        if not unit.fixed_doctor_contact:
            raise Refusal("ERROR", text("no_fixed_doctor"))
        member = unit.staff_member(req.healthcarePersonnel)
        if member is None:
            raise Refusal("ERROR", text("unknown_doctor"))
        personnel = member.hsa_id

    listings.lock_person(s, pid, now, req.personId.root)
    check_actor(region, s, req.actor, pid, ctx, change=True)
    check_guardian_consent(region, s, req.actor, pid, unit.hsa_id, ctx)

    # Choices that are not a change of unit: no change consumed, no one else told.
    entries = listings.queue_places_of(s, pid)
    queued = next((q for q in entries if q.unit_hsa_id == unit.hsa_id), None)
    if queued is not None:
        position = listings.queue_position(s, queued)
        if req.addToQueue is False:
            s.execute(delete(QueueEntry).where(QueueEntry.id == queued.id))
            return response(CONTRACT, "OK", text("left_queue", unit=unit.name))
        return response(CONTRACT, "OK", text("already_queued", unit=unit.name, position=position))
    # A row (a Core read): only choosing the unit again changes the listing itself (the object).
    current = listings.current_listing_row(s, pid)
    if current is not None and current.unit_hsa_id == unit.hsa_id and home != cfg.county:
        # Listed here already, as far as we know: but the home region may have listed the
        # resident elsewhere since, its UpdateListing ending this listing still on its way.
        # Only the home region can tell, so it confirms this choice like any other.
        changed_doctor = personnel is not None and personnel != current.personnel_hsa_id
        listing = _object(s, current)
        if listings.awaiting_home(s, listing):
            # The home region has not yet answered the notice of this very listing (the choice
            # of it, or an earlier re-choice): a second notice adds nothing it could decide
            # on, and it could be taken for a newer choice while the first is being refused.
            # The doctor and type change here; the answer is the one still awaited.
            if personnel is not None:
                listing.personnel_hsa_id = personnel
            listing.type_code, listing.type_system = ltype.code, ltype.code_system
            return response(CONTRACT, "INFO", text(
                "home_pending", unit=unit.name, date=listing.valid_from.date().isoformat()))
        row = listings.reaffirm_listing(region, s, listing, home, personnel, ltype.code,
                                        ltype.code_system, now)
        return _Pending(row.id, listing, _lease(s, row, now), text(
            "doctor_changed" if changed_doctor else "unchanged", unit=unit.name))
    if current is not None and current.unit_hsa_id == unit.hsa_id:
        changed_doctor = personnel is not None and personnel != current.personnel_hsa_id
        listing = _object(s, current)
        if personnel is not None:
            listing.personnel_hsa_id = personnel
        listing.type_code, listing.type_system = ltype.code, ltype.code_system
        key = "doctor_changed" if changed_doctor else "unchanged"
        return response(CONTRACT, "OK", text(key, unit=unit.name))

    at_home = home == cfg.county
    # The 12-month limit is the home region's: checked here only for our own residents.
    is_change = at_home and listings.has_listing_anywhere(region, s, pid, current)
    if is_change and listings.limit_reached(region, s, pid, now):
        raise Refusal("ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED", text(
            "annual_limit", limit=cfg.rules.changes_per_12_months,
            next_date=listings.next_change_date(region, s, pid, now)))

    listings.lock_unit(s, unit.hsa_id)
    taken, has_queue = listings.occupancy(s, unit.hsa_id)
    if taken >= unit.cap or has_queue:
        if not (unit.queue_allowed and cfg.rules.queue_at_cap):
            raise Refusal("ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT", text("unit_full_no_queue"))
        if not req.addToQueue:
            raise Refusal("ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT", text("unit_full"))
        entry = QueueEntry(person_id=pid, unit_hsa_id=unit.hsa_id, type_code=ltype.code,
                           type_system=ltype.code_system, personnel_hsa_id=personnel,
                           home_county=home, queued_at=now)
        s.add(entry)
        s.flush()
        return response(CONTRACT, "OK", text("queued", unit=unit.name,
                                             position=listings.queue_position(s, entry)))

    if is_change:
        listings.record_change(s, pid, now, cfg.county)
    choice = listings.ListingChoice(unit, ltype.code, ltype.code_system, personnel, home)
    # ``current`` and ``entries`` were read under the person's lock and nothing since has
    # changed them
    new, row = listings.register_listing(region, s, pid, choice, now, origin="choice",
                                         current=current, queued=entries)
    if row is None:
        return response(CONTRACT, "OK", text("listed", unit=unit.name,
                                             date=new.valid_from.date().isoformat()))
    return _Pending(row.id, new, _lease(s, row, now))


def _object(s: Session, row: Any) -> Listing:
    """The session's object for a listing read as a row, to change it."""
    listing = s.get(Listing, row.id)
    assert listing is not None  # read under the person's lock
    return listing


def _lease(s: Session, row: OutboxMessage, now: datetime) -> tuple[str, Any]:
    """This request delivers the row: keep the workers off it, and build its message now (the
    row is at hand; ``outbox.deliver`` need not read it back)."""
    outbox.lease(s, row.id, now)
    return row.to_county, outbox.build_request(row)


def _confirm_with_home(region: Region, pending: _Pending, req: Any, ctx: CallContext) -> Any:
    """Deliver the notification to the home region now; the resident gets its answer."""
    answer = _home_verdict(region, pending, ctx)
    if answer.resultCode != "OK":  # the access log shows how the change really ended
        with region.db.transaction() as s:
            region.log_access(s, ctx, CONTRACT, "change", pending.listing.person_id, req.actor,
                              str(answer.resultCode))
    return answer


def _home_verdict(region: Region, pending: _Pending, ctx: CallContext) -> Any:
    unit = _unit_name(region, pending.listing.unit_hsa_id)
    day = pending.listing.valid_from.date().isoformat()
    delivery = outbox.deliver(region, pending.outbox_id, ctx.now, pending.message)
    if delivery.outcome == "delivered":
        if delivery.result_code == "INFO":
            return response(CONTRACT, "INFO", delivery.result_text)
        return response(CONTRACT, "OK", pending.confirmed or text("listed", unit=unit, date=day))
    if delivery.outcome == "refused":
        code = delivery.result_code or "ERROR"
        message = delivery.result_text or text(
            "annual_limit_home" if code == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
            else "home_refused")
        return response(CONTRACT, code, message)
    refuse = region.config.rules.home_unreachable == "refuse"
    if delivery.outcome == "not_delivered" and refuse and outbox.cancel(
            region, pending.outbox_id, ctx.now):
        return response(CONTRACT, "ERROR", text("home_unreachable"))
    # Outcome unknown, or the region registers and lets the outbox deliver: the worker retries;
    # a later refusal takes the listing back (the resident keeps the old one).
    return response(CONTRACT, "INFO", text("home_pending", unit=unit, date=day))
