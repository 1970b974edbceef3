"""Building the response types that describe this region's units, staff and listings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from interactions.models import type_class
from producers import listings
from producers.config import ListingType, Staff, Unit

if TYPE_CHECKING:
    from producers.region import Region


def cv(t: ListingType) -> Any:
    return type_class("CVType")(code=t.code, codeSystem=t.code_system, displayName=t.display_name)


def cv_of(region: Region, code: str, system: str) -> Any:
    t = region.config.listing_type(code, system)
    return cv(t) if t else type_class("CVType")(code=code, codeSystem=system)


def unit_types(region: Region, unit: Unit) -> list[ListingType]:
    return [t for t in region.config.listing_types if t.code in unit.listing_types]


def facility(region: Region, s: Session, unit: Unit,
             counts: listings.UnitCounts | None = None) -> Any:
    """The unit as a HealthcareFacilityType; ``counts`` from ``listings.unit_counts`` when the
    caller describes several units (otherwise two counting queries for this one)."""
    if counts is None:
        counts = listings.unit_counts(s, [unit.hsa_id])[unit.hsa_id]
    queue = counts.queued
    full = counts.occupied >= unit.cap
    return type_class("HealthcareFacilityType")(
        id=unit.hsa_id, name=unit.name,
        hasQueue=bool(queue) or (full and unit.queue_allowed),
        supportedListingTypes=[cv(t) for t in unit_types(region, unit)],
        supportsHealthcarePersonnel=unit.fixed_doctor_contact,
        queueLength=queue if unit.queue_allowed else None,
        estimatedWaitInQueue=(listings.estimated_wait(unit, queue + 1)
                              if unit.queue_allowed and (queue or full) else None),
    )


def personnel(member: Staff) -> Any:
    return type_class("HealthcarePersonnelType")(id=member.hsa_id, name=member.name,
                                                 title=member.title)
