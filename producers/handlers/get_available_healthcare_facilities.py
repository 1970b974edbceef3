"""GetAvailableHealthcareFacilities: this region's open units, optionally only the asked-for
ones and those offering one of the asked-for listing types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from interactions import identifiers as ids
from producers import listings
from producers.context import CallContext
from producers.handlers.common import response, run
from producers.handlers.facility_model import facility, unit_types

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "GetAvailableHealthcareFacilities"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "read", req, None, lambda s: _read(region, s, req))


def _read(region: Region, s: Session, req: Any) -> Any:
    wanted = {ids.normalise_hsa_id(h) for h in req.healthcareFacilities or [] if h}
    types = {(t.code, t.codeSystem) for t in req.listingTypes or []}
    out = []
    for unit in region.config.units:
        if wanted and unit.hsa_id not in wanted:
            continue
        if listings.is_closed(s, unit.hsa_id):
            continue
        if types and not any((t.code, t.code_system) in types for t in unit_types(region, unit)):
            continue
        out.append(facility(region, s, unit))
    return response(CONTRACT, "OK", healthcareFacilities=out)
