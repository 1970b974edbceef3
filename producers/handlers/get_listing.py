"""GetListing: the resident's listings (and queue places) at this region's units, whatever
the resident's home region; ``remainingChanges`` only when this is the home region."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from interactions.models import type_class
from producers import listings
from producers.context import CallContext
from producers.handlers.common import check_actor, peek_person_id, person_id, response, run
from producers.handlers.facility_model import cv_of, facility, personnel

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "GetListing"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "read", req, peek_person_id(req.personId),
               lambda s: _read(region, s, req, ctx))


def _read(region: Region, s: Session, req: Any, ctx: CallContext) -> Any:
    pid = person_id(req.personId)
    check_actor(region, s, req.actor, pid, ctx, change=False)
    remaining = (listings.remaining_changes(region, s, pid, ctx.now)
                 if region.home_county_of(s, pid) == region.county else None)
    item = type_class("ListingHealthcareFacilityType")
    out = []
    for row in listings.visible_listings(s, pid, ctx.now):
        unit = region.config.unit(row.unit_hsa_id)
        if unit is None:
            continue  # a unit removed from the configuration
        member = unit.staff_member(row.personnel_hsa_id) if row.personnel_hsa_id else None
        out.append(item(validFromDate=row.valid_from, validToDate=row.valid_to,
                        listingType=cv_of(region, row.type_code, row.type_system),
                        healthcareFacility=facility(region, s, unit),
                        healthcarePersonnel=personnel(member) if member else None,
                        isInQueue=False, remainingChanges=remaining))
    for q in listings.queue_places_of(s, pid):
        unit = region.config.unit(q.unit_hsa_id)
        if unit is None:
            continue
        position = listings.queue_position(s, q)
        member = unit.staff_member(q.personnel_hsa_id) if q.personnel_hsa_id else None
        out.append(item(listingType=cv_of(region, q.type_code, q.type_system),
                        healthcareFacility=facility(region, s, unit),
                        healthcarePersonnel=personnel(member) if member else None,
                        isInQueue=True, queuePosition=position,
                        estimatedWaitInQueue=listings.estimated_wait(unit, position),
                        remainingChanges=remaining))
    return response(CONTRACT, "OK", listings=out)
