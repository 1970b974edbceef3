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
    closed = listings.closed_units(s)
    units = [u for u in region.config.units
             if (not wanted or u.hsa_id in wanted) and u.hsa_id not in closed
             and (not types or any((t.code, t.code_system) in types
                                   for t in unit_types(region, u)))]
    # three queries in all, not two per unit
    counts = listings.unit_counts(s, [u.hsa_id for u in units])
    return response(CONTRACT, "OK", healthcareFacilities=[
        facility(region, s, u, counts[u.hsa_id]) for u in units])
