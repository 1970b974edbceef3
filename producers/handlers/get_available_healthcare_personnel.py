"""GetAvailableHealthcarePersonnel: the staff a resident may choose as fixed doctor contact
at one of this region's units."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from producers import listings
from producers.context import CallContext
from producers.handlers.common import (
    Refusal,
    peek_person_id,
    person_id,
    response,
    run,
)
from producers.handlers.facility_model import personnel, unit_types
from producers.texts import text

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "GetAvailableHealthcarePersonnel"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "read", req, peek_person_id(req.personId),
               lambda s: _read(region, s, req))


def _read(region: Region, s: Session, req: Any) -> Any:
    person_id(req.personId)
    unit = region.config.unit(req.healthcareFacilityHSAId)
    if unit is None or listings.is_closed(s, unit.hsa_id):
        raise Refusal("ERROR", text("unknown_unit", region=region.config.name))
    types = {(t.code, t.codeSystem) for t in req.listingTypes or []}
    if types and not any((t.code, t.code_system) in types for t in unit_types(region, unit)):
        return response(CONTRACT, "OK", healthcarePersonnel=[])
    staff = [personnel(m) for m in unit.staff] if unit.fixed_doctor_contact else []
    return response(CONTRACT, "OK", healthcarePersonnel=staff)
