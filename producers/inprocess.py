"""Regions side by side in one process: a stand-in for the platform and request builders.

``Network`` carries UpdateListing between ``Region`` objects the way the platform would: the
request and the answer become XML, are validated against the contract's XSDs and parsed again
on the other side, so the extension elements travel exactly as they will over SOAP. A county in
``down`` cannot be reached (``NotDelivered``); one in ``lose_responses`` applies the message but
its answer is lost (a timeout: outcome unknown). Used by the tests and handy for demos.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from lxml import etree

from interactions import identifiers as ids
from interactions.models import from_element, message_class, to_element, type_class
from interactions.validation import validate_element
from producers.context import CallContext
from producers.outbox import NotDelivered
from producers.region import Region

E_SERVICE = "SE5565594230-1177"  # a consumer HSA-id standing in for 1177's e-service


def _check(el: etree._Element) -> None:
    problems = validate_element(el)
    if problems:
        raise ValueError("not valid against the contract: " + "; ".join(map(str, problems)))


class Network:
    """Carries UpdateListing between regions as the platform would: the request and response
    become XML, are validated against the contract and parsed again on the other side."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.regions: dict[str, Region] = {}
        self.down: set[str] = set()
        self.lose_responses: set[str] = set()  # delivered, but the answer is lost (timeout)
        self.sent: list[tuple[str, str, Any]] = []

    def sender_for(self, county: str) -> Callable[[str, Any], Any]:
        def send(to: str, request: Any) -> Any:
            if to in self.down or to not in self.regions:
                raise NotDelivered(f"VP009 region {to} cannot be reached")
            el = to_element(request)
            _check(el)
            self.sent.append((county, to, request))
            sender = self.regions[county]
            ctx = CallContext(caller_hsa_id=sender.hsa_id, original_consumer=sender.hsa_id,
                              now=self.clock())
            answer = self.regions[to].handle(from_element(el), ctx)
            out = to_element(answer)
            _check(out)
            if to in self.lose_responses:
                raise TimeoutError("the producer did not answer in time")
            return from_element(out)
        return send


# --- building requests and reading answers (tests, demos) ---------------------------------

II = type_class("IIType")
CV = type_class("CVType")


def person_ii(pid: str) -> Any:
    return II(root=ids.personal_id_root(pid), extension=pid)


def county_ii(code: str) -> Any:
    return II(root=ids.COUNTY_OID, extension=code)


def actor(pid: str, kind: str = "CITIZEN") -> Any:
    return type_class("ActorType")(actorId=person_ii(pid), actorType=kind)


def pv() -> Any:
    return CV(code=ids.LISTING_TYPE_PV, codeSystem=ids.LISTING_TYPE_CODE_SYSTEM)


def create(pid: str, unit: str, *, home: str | None = None, by: str | None = None,
           kind: str = "CITIZEN", queue: bool | None = None, doctor: str | None = None,
           listing_type: Any = None) -> Any:
    return message_class("CreateListing")(
        actor=actor(by or pid, kind), personId=person_ii(pid), healthcareFacilityHSAId=unit,
        listingType=listing_type or pv(), healthcarePersonnel=doctor, addToQueue=queue,
        homeCounty=county_ii(home) if home else None)


def get_listing(pid: str, by: str | None = None, kind: str = "CITIZEN") -> Any:
    return message_class("GetListing")(actor=actor(by or pid, kind), personId=person_ii(pid))


def get_county(pid: str, by: str | None = None, kind: str = "CITIZEN") -> Any:
    return message_class("GetListingCounty")(actor=actor(by or pid, kind),
                                             personId=person_ii(pid))


def ctx_for(clock: Callable[[], datetime], caller: str = E_SERVICE) -> CallContext:
    return CallContext(caller_hsa_id=caller, original_consumer=caller, now=clock())


def wire(response: Any) -> Any:
    """A response as a consumer would see it: validated XML, parsed again."""
    el = to_element(response)
    _check(el)
    return from_element(el)


def region_actor(region: Region) -> Any:
    return type_class("ActorType")(actorId=II(root=ids.HSA_ID_OID, extension=region.hsa_id),
                                   actorType="REGION")


def listed_units(region: Region, pid: str) -> list[str]:
    """Units of ``region`` where the resident is listed with no end date (GetListing)."""
    req = message_class("GetListing")(actor=region_actor(region), personId=person_ii(pid))
    r = wire(region.handle(req, CallContext(caller_hsa_id=region.hsa_id, now=region.clock())))
    if r.resultCode != "OK":
        raise AssertionError(f"GetListing: {r.resultCode} {r.resultText}")
    return [x.healthcareFacility.id for x in r.listings
            if not x.isInQueue and x.validToDate is None]


def listing_counties(region: Region, pid: str) -> list[str]:
    """GetListingCounty at ``region`` (the answer only the home region gives)."""
    req = message_class("GetListingCounty")(actor=region_actor(region), personId=person_ii(pid))
    r = wire(region.handle(req, CallContext(caller_hsa_id=region.hsa_id, now=region.clock())))
    if r.resultCode != "OK":
        raise AssertionError(f"GetListingCounty: {r.resultCode} {r.resultText}")
    return [c.extension for c in r.listingCounties]
