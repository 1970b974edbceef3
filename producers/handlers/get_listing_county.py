"""GetListingCounty: answered by the resident's home region only — where the resident is
listed. Any other region answers OK with no counties."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from interactions import identifiers as ids
from interactions.models import type_class
from producers import listings
from producers.context import CallContext
from producers.handlers.common import check_actor, peek_person_id, person_id, response, run
from producers.storage.models import HomeRecord

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "GetListingCounty"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "read", req, peek_person_id(req.personId),
               lambda s: _read(region, s, req, ctx))


def _read(region: Region, s: Session, req: Any, ctx: CallContext) -> Any:
    pid = person_id(req.personId)
    check_actor(region, s, req.actor, pid, ctx, change=False)
    if region.home_county_of(s, pid) != region.county:
        return response(CONTRACT, "OK", listingCounties=[])
    record = s.get(HomeRecord, pid)
    county = record.listing_county if record is not None else (
        region.county if listings.current_listing(s, pid) is not None else None)
    ii = type_class("IIType")
    found = [ii(root=ids.COUNTY_OID, extension=county)] if county else []
    return response(CONTRACT, "OK", listingCounties=found)
