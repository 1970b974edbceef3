"""GetListingTypes: without a person every type of the region (PV always); for a resident of
another region only PV and the types shared by agreement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from producers.context import CallContext
from producers.handlers.common import county_code, peek_person_id, person_id, response, run
from producers.handlers.facility_model import cv

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "GetListingTypes"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "read", req, peek_person_id(req.personId),
               lambda s: _read(region, s, req))


def _read(region: Region, s: Session, req: Any) -> Any:
    types = region.config.listing_types
    home: str | None = None
    if req.homeCountyCode is not None:
        home = county_code(req.homeCountyCode)
    if req.personId is not None:
        pid = person_id(req.personId)
        home = home or region.home_county_of(s, pid)
        if home is None:
            home = "unknown"  # not known to be ours: offer what every resident may choose
    if home is not None and home != region.county:
        types = tuple(t for t in types if t.shared or t.national)
    return response(CONTRACT, "OK", listingTypes=[cv(t) for t in types])
