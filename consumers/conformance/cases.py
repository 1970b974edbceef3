"""The conformance cases, in the order they run (later cases build on earlier ones' state).

Each case's name says the situation and the answer the contract calls for; a failure message
says what came back instead. Cases never put a personnummer in their messages.
"""

from __future__ import annotations

import math
import re

from consumers.conformance.suite import (
    CaseFailed,
    CaseSkipped,
    Suite,
    case,
    child_text,
    children,
    counties_of,
    expect_code,
    expect_done,
    listings,
    raw_request,
    read_answer,
    result_of,
)
from consumers.conformance.testdata import TestPerson
from interactions import identifiers as ids
from interactions.contracts import DOMAIN_NS
from interactions.models import type_class

CAP = "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT"
LIMIT = "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
ERRORS = ("ERROR", LIMIT, CAP, "ERROR_GUARDIAN_CONSENT_NEEDED", "ERROR_AGE_LIMIT")

CREATED = "CreateListing: a resident lists at a unit with room -> OK"
CROSS = "CreateListing: a resident of another county lists here (homeCounty) -> OK or INFO"
ELSEWHERE = "UpdateListing: the resident chose a unit in another region -> OK, county recorded"
LIMITED = "CreateListing: a change over the 12-month limit -> " + LIMIT


# --- helpers -------------------------------------------------------------------------------------

def _get_listing(s: Suite, p: TestPerson, what: str, actor: object = None) -> list:
    """GetListing for ``p``, asked by ``p`` (or ``actor``): its listings, or CaseFailed."""
    payload = s.call("GetListing", actor=s.citizen(p) if actor is None else actor,
                     personId=s.person(p))
    expect_done(payload, what)
    return listings(payload)


def _listed_at(s: Suite, p: TestPerson, unit: str, what: str) -> list:
    """``p``'s listings at ``unit`` (GetListing)."""
    return [x for x in _get_listing(s, p, what) if x.unit == unit.upper()]


def _get_counties(s: Suite, p: TestPerson, what: str) -> list[str]:
    payload = s.call("GetListingCounty", actor=s.citizen(p), personId=s.person(p))
    expect_done(payload, what)
    return counties_of(payload)


def _create_payload(s: Suite, p: TestPerson, unit: str, add_to_queue: bool | None = None):
    """CreateListing by ``p`` for a PV listing at ``unit`` (homeCounty and newListingCounty
    when ``p`` lives in another county): the response payload."""
    fields = {"actor": s.citizen(p), "personId": s.person(p), "healthcareFacilityHSAId": unit,
              "listingType": s.pv()}
    if add_to_queue is not None:
        fields["addToQueue"] = add_to_queue
    if p.county != s.data.county:
        fields["homeCounty"] = s.county(p.county)
        fields["newListingCounty"] = s.county(s.data.county)
    return s.call("CreateListing", **fields)


def _create(s: Suite, p: TestPerson, unit: str, *, add_to_queue: bool | None = None) -> tuple:
    """CreateListing (``_create_payload``): (resultCode, resultText)."""
    return result_of(_create_payload(s, p, unit, add_to_queue))


def _create_checked(s: Suite, p: TestPerson, unit: str, codes: tuple[str, ...], what: str,
                    add_to_queue: bool | None = None) -> tuple:
    """CreateListing (``_create_payload``) that must answer one of ``codes``: (code, payload)."""
    payload = _create_payload(s, p, unit, add_to_queue)
    return expect_code(payload, codes, what), payload


def _update(s: Suite, p: TestPerson, new: str, home: str) -> tuple:
    return result_of(s.call("UpdateListing", personId=s.person(p),
                            newListingCounty=s.county(new), homeCounty=s.county(home)))


def _accepted(result: tuple, what: str, expected: str = "") -> str:
    """The resultCode of ``result`` when it is OK or INFO, else CaseFailed
    "<what>: resultCode <code> (<text>)<expected>"."""
    code, text = result
    if code not in ("OK", "INFO"):
        raise CaseFailed(f"{what}: resultCode {code} ({text or 'no text'}){expected}")
    return code


def _units_of(found: list) -> set[str]:
    return {x.unit for x in found}


# --- PingForConfiguration ------------------------------------------------------------------------

@case("PingForConfiguration", "PingForConfiguration: answers with version and pingDateTime")
def ping(s: Suite) -> str:
    c = s.contracts["GetListing"]
    payload = s.call("PingForConfiguration", serviceContractNamespace=c.namespace,
                     logicalAddress=s.logical_address)
    version, when = child_text(payload, "version"), child_text(payload, "pingDateTime")
    if not version:
        raise CaseFailed("PingForConfigurationResponse has an empty version")
    if not when or not re.fullmatch(r"\d{14}", when):
        raise CaseFailed(f"pingDateTime {when!r} is not YYYYMMDDhhmmss")
    return f"version {version}, {len(children(payload, 'configuration'))} configuration pair(s)"


# --- GetAvailableHealthcareFacilities ------------------------------------------------------------

def _facility_ids(payload) -> list[str]:
    return [(child_text(f, "id") or "").upper() for f in children(payload, "healthcareFacilities")]


@case("GetAvailableHealthcareFacilities",
      "GetAvailableHealthcareFacilities: all units (empty request) -> OK with the units")
def facilities_all(s: Suite) -> str:
    payload = s.call("GetAvailableHealthcareFacilities")
    expect_done(payload, "GetAvailableHealthcareFacilities")
    found = set(_facility_ids(payload))
    missing = [u for u in s.data.all_units() if u.upper() not in found]
    if missing:
        raise CaseFailed(f"the units of the test data are missing from the answer: "
                         f"{', '.join(missing)}")
    foreign = [u for u in found if ids.county_of_hsa_id(u) not in (None, s.data.county)]
    if foreign:
        raise CaseFailed(f"units of another region in the answer: {', '.join(sorted(foreign))}")
    return f"{len(found)} units"


@case("GetAvailableHealthcareFacilities",
      "GetAvailableHealthcareFacilities: one named unit -> that unit only")
def facilities_one(s: Suite) -> str:
    s.need("with_room")
    unit = s.data.with_room[0]
    payload = s.call("GetAvailableHealthcareFacilities", healthcareFacilities=[unit])
    expect_done(payload, "GetAvailableHealthcareFacilities")
    found = _facility_ids(payload)
    if found != [unit.upper()]:
        raise CaseFailed(f"asked for {unit}; the answer holds {found or 'no unit'}")
    return unit


# --- GetAvailableHealthcarePersonnel -------------------------------------------------------------

@case("GetAvailableHealthcarePersonnel",
      "GetAvailableHealthcarePersonnel: a unit with fixed doctor contact -> its staff")
def personnel(s: Suite) -> str:
    s.need("staff", "resident")
    st = s.data.staff
    payload = s.call("GetAvailableHealthcarePersonnel", personId=s.person(s.data.resident),
                     healthcareFacilityHSAId=st.unit, listingTypes=[s.pv()])
    expect_done(payload, "GetAvailableHealthcarePersonnel")
    found = {(child_text(p, "id") or "").upper() for p in children(payload, "healthcarePersonnel")}
    missing = [x for x in st.personnel if x.upper() not in found]
    if missing:
        raise CaseFailed(f"staff of {st.unit} missing from the answer: {', '.join(missing)}")
    return f"{len(found)} staff"


# --- GetListingTypes -----------------------------------------------------------------------------

def _types(payload) -> list[tuple[str, str]]:
    return [(child_text(t, "code") or "", child_text(t, "codeSystem") or "")
            for t in children(payload, "listingTypes")]


PV = (ids.LISTING_TYPE_PV, ids.LISTING_TYPE_CODE_SYSTEM)


@case("GetListingTypes", "GetListingTypes: without a person -> all types, including PV")
def types_all(s: Suite) -> str:
    payload = s.call("GetListingTypes")
    expect_done(payload, "GetListingTypes")
    found = _types(payload)
    if PV not in found:
        raise CaseFailed(f"the national type PV ({ids.LISTING_TYPE_CODE_SYSTEM}) is missing: "
                         f"{found}")
    missing = [t for t in s.data.not_shared_types if t not in found]
    if missing:
        raise CaseFailed(f"regional types missing without a person: {missing}")
    return ", ".join(code for code, _ in found)


@case("GetListingTypes",
      "GetListingTypes: a resident of another county -> PV, no unshared regional type")
def types_other(s: Suite) -> str:
    s.need("other_resident")
    o = s.data.other_resident
    payload = s.call("GetListingTypes", personId=s.person(o), homeCountyCode=s.county(o.county))
    expect_done(payload, "GetListingTypes")
    found = _types(payload)
    if PV not in found:
        raise CaseFailed("PV is missing for a resident of another county")
    wrong = [code for code, system in found if (code, system) in s.data.not_shared_types]
    if wrong:
        raise CaseFailed(f"types not shared with other regions were offered: {', '.join(wrong)}")
    return ", ".join(code for code, _ in found)


# --- GetListingCounty / GetListing before anything is listed -------------------------------------

@case("GetListingCounty",
      "GetListingCounty: not the resident's home region -> no counties")
def county_not_home(s: Suite) -> str:
    s.need("other_resident")
    found = _get_counties(s, s.data.other_resident, "GetListingCounty")
    if found:
        raise CaseFailed(f"a region that is not the home region answered counties {found}; "
                         "only the home region answers GetListingCounty")
    return "no counties"


@case("GetListing", "GetListing: a person never listed here -> no listings")
def never_listed(s: Suite) -> str:
    s.need("unlisted")
    found = _get_listing(s, s.data.unlisted, "GetListing", actor=s.region_actor())
    if found:
        raise CaseFailed(f"listings for a person never listed here: {sorted(_units_of(found))} "
                         "(another person's data?)")
    return "no listings"


@case("GetListing", "GetListing: the test resident starts with no listing (precondition)")
def resident_fresh(s: Suite) -> str:
    s.need("resident")
    found = _get_listing(s, s.data.resident, "GetListing")
    if found:
        raise CaseFailed(f"the resident is already listed at {sorted(_units_of(found))}: the "
                         "test data expects a resident listed nowhere (fresh data or database)")
    return "no listing"


# --- CreateListing -------------------------------------------------------------------------------

@case("CreateListing", "CreateListing: actor REGION -> ERROR")
def actor_region(s: Suite) -> str:
    s.need("resident", "with_room")
    r = s.data.resident
    payload = s.call("CreateListing", actor=s.region_actor(), personId=s.person(r),
                     healthcareFacilityHSAId=s.data.with_room[0], listingType=s.pv())
    code = expect_code(payload, ERRORS, "CreateListing by a REGION actor")
    return code


@case("CreateListing", "CreateListing: a unit the region does not have -> ERROR")
def unknown_unit(s: Suite) -> str:
    s.need("resident")
    unit = f"{ids.region_hsa_prefix(s.data.county)}-NOSUCHUNIT9"
    code, _ = _create_checked(s, s.data.resident, unit, ERRORS, "CreateListing at no such unit")
    return code


@case("CreateListing", CREATED, needs=("GetListing: the test resident starts with no listing "
                                       "(precondition)",))
def create(s: Suite) -> str:
    unit = s.data.with_room[0]
    code = _accepted(_create(s, s.data.resident, unit), f"CreateListing at {unit}")
    s.state["resident_unit"] = unit
    return code


@case("GetListing", "Consistency: CreateListing -> GetListing -> GetListingCounty",
      needs=(CREATED,))
def consistency(s: Suite) -> str:
    r, unit = s.data.resident, s.state["resident_unit"]
    found = _get_listing(s, r, "GetListing after CreateListing")
    at = [x for x in found if x.unit == unit.upper()]
    if not at:
        raise CaseFailed(f"GetListing does not show the new listing at {unit} "
                         f"(shows {sorted(_units_of(found)) or 'nothing'})")
    if at[0].in_queue:
        raise CaseFailed(f"the listing at {unit}, a unit with room, is shown as in queue")
    counties = _get_counties(s, r, "GetListingCounty after CreateListing")
    if counties != [s.data.county]:
        raise CaseFailed(f"GetListingCounty at the home region answers {counties or 'nothing'}; "
                         f"the resident is listed in {s.data.county}")
    rc = at[0].remaining_changes
    if rc is None:
        raise CaseFailed("GetListing at the resident's home region has no remainingChanges "
                         "(2.1 extension); the home region fills it in")
    if not 0 <= rc <= s.data.changes_per_12_months:
        raise CaseFailed(f"remainingChanges {rc} is outside 0..{s.data.changes_per_12_months}")
    return f"listed at {unit}, remainingChanges {rc}"


@case("CreateListing", "CreateListing: re-choosing the current unit -> OK, no change used",
      needs=(CREATED,))
def rechoose(s: Suite) -> str:
    r, unit = s.data.resident, s.state["resident_unit"]
    before = _listed_at(s, r, unit, "GetListing")
    code = _accepted(_create(s, r, unit), "re-choosing the current unit")
    after = _listed_at(s, r, unit, "GetListing")
    if not after:
        raise CaseFailed("after re-choosing the current unit the listing is gone")
    if before and before[0].remaining_changes is not None \
            and after[0].remaining_changes != before[0].remaining_changes:
        raise CaseFailed(f"re-choosing the current unit used a change: remainingChanges "
                         f"{before[0].remaining_changes} -> {after[0].remaining_changes}")
    return code


# --- UpdateListing at the home region ------------------------------------------------------------

@case("UpdateListing", ELSEWHERE, needs=(CREATED,))
def update_elsewhere(s: Suite) -> str:
    r, other = s.data.resident, s.other_county()
    _accepted(_update(s, r, other, s.data.county),
              f"UpdateListing new={other} home={s.data.county}")
    counties = _get_counties(s, r, "GetListingCounty after UpdateListing")
    if counties != [other]:
        raise CaseFailed(f"after UpdateListing new={other}, GetListingCounty answers "
                         f"{counties or 'nothing'}; expected [{other}]")
    return f"listed in {other}"


@case("UpdateListing",
      "UpdateListing: listing elsewhere ended, home takes back (new=home) -> OK",
      needs=(ELSEWHERE,))
def update_takeback(s: Suite) -> str:
    r, other = s.data.resident, s.other_county()
    _accepted(_update(s, r, s.data.county, s.data.county), "UpdateListing new=home")
    counties = _get_counties(s, r, "GetListingCounty after the home region took back")
    if other in counties:
        raise CaseFailed(f"the home region still names county {other} after taking the "
                         "resident back")
    return f"counties now {counties or 'none'}"


# --- the change limit ----------------------------------------------------------------------------

@case("CreateListing", LIMITED, needs=(CREATED,))
def change_limit(s: Suite) -> str:
    r, limit = s.data.resident, s.data.changes_per_12_months
    units = [u.upper() for u in s.data.with_room]
    accepted, last = 0, None
    for _ in range(limit + 2):
        current = _get_listing(s, r, "GetListing")
        here = _units_of(current)
        target = next((u for u in units if u != last and u not in here),
                      next(u for u in units if u != last))
        remaining = next((x.remaining_changes for x in current
                          if x.remaining_changes is not None), None)
        code, text = _create(s, r, target)
        if code in ("OK", "INFO"):
            if remaining == 0:
                raise CaseFailed("a change was accepted although GetListing reported "
                                 "remainingChanges 0")
            accepted, last = accepted + 1, target
            after = _get_listing(s, r, "GetListing after a change")
            if target not in _units_of(after):
                raise CaseFailed(f"the change to {target} was accepted ({code}) but GetListing "
                                 "does not show it")
            continue
        if code != LIMIT:
            raise CaseFailed(f"change {accepted + 1}: resultCode {code} ({text or 'no text'}); "
                             f"expected OK, INFO or {LIMIT}")
        if not text:
            raise CaseFailed(f"{LIMIT} without resultText")
        if accepted > limit:
            raise CaseFailed(f"{accepted} changes were accepted before {LIMIT}; the limit is "
                             f"{limit}")
        after = _get_listing(s, r, "GetListing after the refused change")
        if target in _units_of(after):
            raise CaseFailed(f"the change was refused with {LIMIT} but GetListing shows the new "
                             "unit")
        s.state["limit_reached"] = True
        return f"refused after {accepted} accepted change(s) in this run (limit {limit})"
    raise CaseFailed(f"{accepted} changes within 12 months were all accepted; the limit is "
                     f"{limit}: expected {LIMIT}")


@case("UpdateListing", "UpdateListing: a change over the 12-month limit -> " + LIMIT,
      needs=(LIMITED,))
def update_over_limit(s: Suite) -> str:
    r, other = s.data.resident, s.other_county()
    code, text = _update(s, r, other, s.data.county)
    if code != LIMIT:
        raise CaseFailed(f"UpdateListing new={other} for a resident over the limit: resultCode "
                         f"{code} ({text or 'no text'}); expected {LIMIT}")
    if not text:
        raise CaseFailed(f"{LIMIT} without resultText")
    return code


# --- cross-region and the cap --------------------------------------------------------------------

@case("CreateListing", CROSS)
def cross_region(s: Suite) -> str:
    s.need("other_resident", "with_room")
    o, unit = s.data.other_resident, s.data.with_room[0]
    code = _accepted(_create(s, o, unit),
                     f"CreateListing at {unit} for a resident of {o.county} (homeCounty given)")
    found = _get_listing(s, o, "GetListing after a cross-region CreateListing")
    if unit.upper() not in _units_of(found):
        raise CaseFailed(f"GetListing at the listing region does not show the listing at {unit}")
    counties = _get_counties(s, o, "GetListingCounty at a region that is not home")
    if counties:
        raise CaseFailed(f"GetListingCounty answered {counties} for a resident of another county;"
                         " only the home region answers counties")
    s.state["other_units"] = {unit.upper()}
    return code


@case("UpdateListing", "UpdateListing: the home region reports a listing in another region -> "
      "this region ends its listing", needs=(CROSS,))
def update_listing_region(s: Suite) -> str:
    o, unit = s.data.other_resident, s.data.with_room[0]
    third = next(c for c in ("03", "12", "14", "01", "08") if c not in (s.data.county, o.county))
    _accepted(_update(s, o, third, o.county),
              f"UpdateListing new={third} home={o.county} at the region holding the listing")
    found = _listed_at(s, o, unit, "GetListing after UpdateListing")
    if found and not found[0].valid_to:
        raise CaseFailed(f"the listing at {unit} is still shown, with no validToDate, after the "
                         f"home region reported the resident listed in {third}")
    return "listing ended" if not found else f"listing ends {found[0].valid_to}"


@case("CreateListing", "CreateListing: a child below the age limit acting alone -> "
      "ERROR_AGE_LIMIT")
def age_limit(s: Suite) -> str:
    s.need("child", "with_room")
    code, _ = _create_checked(s, s.data.child, s.data.with_room[0], ("ERROR_AGE_LIMIT",),
                              "CreateListing by a child acting alone")
    return code


@case("CreateListing", "CreateListing: one of two guardians chooses -> "
      "ERROR_GUARDIAN_CONSENT_NEEDED; the other's same choice -> OK")
def guardian_consent(s: Suite) -> str:
    s.need("guardian_consent", "with_room")
    fam, unit = s.data.guardian_consent, s.data.with_room[0]
    answers = []
    for i, guardian in enumerate(fam.guardians):
        actor = type_class("ActorType")(actorId=s.person(guardian), actorType="GUARDIAN")
        fields = {"actor": actor, "personId": s.person(fam.child),
                  "healthcareFacilityHSAId": unit, "listingType": s.pv()}
        if fam.child.county != s.data.county:
            fields["homeCounty"] = s.county(fam.child.county)
        payload = s.call("CreateListing", **fields)
        if i == 0:
            answers.append(expect_code(payload, ("ERROR_GUARDIAN_CONSENT_NEEDED",),
                                       "the first guardian's choice"))
        else:
            answers.append(expect_done(payload, "the second guardian's same choice"))
    shown = s.call("GetListing", actor=type_class("ActorType")(
        actorId=s.person(fam.guardians[0]), actorType="GUARDIAN"), personId=s.person(fam.child))
    if unit.upper() not in _units_of(listings(shown)):
        raise CaseFailed(f"after both guardians chose {unit}, GetListing does not show it")
    return " then ".join(answers)


def _fill_cap(s: Suite) -> int:
    """List the fill persons at the cap unit; a cap answer means it is full already."""
    cap = s.data.cap
    filled = 0
    for p in cap.fill:
        code, text = _create(s, p, cap.unit)
        if code == CAP:
            break
        if code not in ("OK", "INFO"):
            raise CaseFailed(f"could not bring {cap.unit} to its cap: CreateListing answered "
                             f"{code} ({text or 'no text'})")
        filled += 1
    return filled


@case("CreateListing", "CreateListing: unit at its cap, no addToQueue -> " + CAP)
def cap_no_queue(s: Suite) -> str:
    s.need("cap", "other_resident")
    cap, o = s.data.cap, s.data.other_resident
    filled = _fill_cap(s)
    code, _ = _create_checked(s, o, cap.unit, (CAP,), f"CreateListing at {cap.unit} (full)",
                              add_to_queue=False)
    after = _get_listing(s, o, "GetListing after the refusal")
    if any(x.unit == cap.unit.upper() for x in after):
        raise CaseFailed(f"refused with {CAP}, yet GetListing shows {cap.unit}")
    s.state["cap_full"] = True
    return f"{filled} fill listing(s), then {code}"


@case("CreateListing", "CreateListing: unit at its cap, addToQueue=true -> queued (OK) or "
      + CAP + " if it has no queue",
      needs=("CreateListing: unit at its cap, no addToQueue -> " + CAP,))
def cap_queue(s: Suite) -> str:
    cap, o = s.data.cap, s.data.other_resident
    if not cap.queues:
        code, _ = _create_checked(s, o, cap.unit, (CAP,), f"addToQueue at {cap.unit} (no queue)",
                                  add_to_queue=True)
        return f"no queue: {code}"
    _accepted(_create(s, o, cap.unit, add_to_queue=True),
              "addToQueue=true at a full unit that queues", "; expected OK (queued)")
    found = _listed_at(s, o, cap.unit, "GetListing after queueing")
    if not found or not found[0].in_queue:
        raise CaseFailed(f"GetListing does not show the resident in the queue at {cap.unit}")
    s.state.setdefault("other_units", set()).add(cap.unit.upper())
    return "queued"


# --- no leaks ------------------------------------------------------------------------------------

@case("GetListing", "No data for another person leaks into a response")
def no_leak(s: Suite) -> str:
    persons = {p.id for p in s.data.persons()}
    if not persons:
        raise CaseSkipped("the test data names no persons")
    if s.data.unlisted is not None:
        found = _get_listing(s, s.data.unlisted, "GetListing", actor=s.region_actor())
        if found:
            raise CaseFailed("GetListing for a person never listed here shows listings "
                             f"{sorted(_units_of(found))} (another person's?)")
    o = s.data.other_resident
    if o is not None and s.state.get("other_units"):
        shown = _units_of(_get_listing(s, o, "GetListing"))
        foreign = shown - s.state["other_units"]
        if foreign:
            raise CaseFailed(f"GetListing shows units the person never chose: {sorted(foreign)}")
    for ex in s.all_exchanges:
        asked = {pid for pid in persons if pid.encode() in ex.request}
        if not ex.body:
            continue
        leaked = [pid for pid in persons - asked if pid.encode() in ex.body]
        if leaked:
            raise CaseFailed(f"a {ex.contract} response names {len(leaked)} person(s) the request "
                             "was not about")
    return f"{len(s.all_exchanges)} responses checked"


# --- service level -------------------------------------------------------------------------------

@case("GetListing", "SLA: 95 % of calls answered within 1 s")
def sla(s: Suite) -> str:
    n = s.sla_calls
    if n <= 0:
        raise CaseSkipped("--sla-calls 0")
    who = s.data.resident or s.data.other_resident or s.data.unlisted
    times, failures = [], 0
    current = s._current
    slowest = None
    for i in range(n):
        s._current = None  # not every call into the report
        if i % 2 == 0 or who is None:
            a = s.send("GetAvailableHealthcareFacilities")
        else:
            a = s.send("GetListing", actor=s.region_actor(), personId=s.person(who))
        s._current = current
        times.append(a.exchange.seconds)
        if a.problem or a.fault:
            failures += 1
        if slowest is None or a.exchange.seconds > slowest.seconds:
            slowest = a.exchange
        if i < 2:
            current.exchanges.append(a.exchange)
    if slowest is not None and slowest not in current.exchanges:
        current.exchanges.append(slowest)
    ordered = sorted(times)
    p95 = ordered[max(0, math.ceil(0.95 * n) - 1)]
    note = f"p95 {p95 * 1000:.0f} ms over {n} calls (max {ordered[-1] * 1000:.0f} ms)"
    if failures:
        raise CaseFailed(f"{failures} of {n} calls got no proper response; {note}")
    if p95 >= 1.0:
        raise CaseFailed(f"{note}: the 95th percentile is not under 1 s")
    return note


# --- robustness ----------------------------------------------------------------------------------

_GET_LISTING_NS = "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2"


def _robust(s: Suite, data: bytes, what: str) -> str:
    a = read_answer(s.post("GetListing", data))
    if a.exchange.timed_out:
        raise CaseFailed(f"{what}: no answer ({a.exchange.error}); a producer must not hang")
    if a.payload is None or (a.problem and not a.fault):
        raise CaseFailed(f"{what}: {a.problem}; expected a SOAP fault or an ERROR response")
    if a.fault:
        return f"SOAP fault, HTTP {a.exchange.status}"
    code, text = result_of(a.payload)
    if a.payload.tag.endswith("Response") and code.startswith("ERROR"):
        if not text:
            raise CaseFailed(f"{what}: {code} without resultText")
        return code
    raise CaseFailed(f"{what}: answered {a.payload.tag} {code or ''}; expected a SOAP fault or "
                     "an ERROR response")


def _valid_get_listing(s: Suite, ns: str = _GET_LISTING_NS, with_person: bool = True) -> str:
    pid = s.data.unlisted.id if s.data.unlisted else "191212121212"
    person = (f"<personId><c:root>{ids.personal_id_root(pid)}</c:root>"
              f"<c:extension>{pid}</c:extension></personId>") if with_person else ""
    hsa = s.data.hsa_id or f"{ids.region_hsa_prefix(s.data.county)}-LIST"
    return (f'<GetListing xmlns="{ns}" xmlns:c="{DOMAIN_NS}"><actor><c:actorId>'
            f"<c:root>{ids.HSA_ID_OID}</c:root><c:extension>{hsa}</c:extension></c:actorId>"
            f"<c:actorType>REGION</c:actorType></actor>{person}</GetListing>")


@case("Robustness", "Robustness: a body that is not XML -> SOAP fault or ERROR")
def robust_not_xml(s: Suite) -> str:
    return _robust(s, b"this is not XML <<<", "not XML")


@case("Robustness", "Robustness: a DOCTYPE (entity) in the request -> SOAP fault or ERROR")
def robust_doctype(s: Suite) -> str:
    body = raw_request(s.contracts["GetListing"], _valid_get_listing(s), s.logical_address)
    decl = b'<!DOCTYPE x [<!ENTITY e "entity">]>'
    data = body.replace(b"?>", b"?>" + decl, 1)
    return _robust(s, data, "DOCTYPE")


@case("Robustness", "Robustness: no LogicalAddress header -> SOAP fault or ERROR")
def robust_no_address(s: Suite) -> str:
    return _robust(s, raw_request(s.contracts["GetListing"], _valid_get_listing(s), None),
                   "no LogicalAddress")


@case("Robustness", "Robustness: body element in the wrong namespace -> SOAP fault or ERROR")
def robust_namespace(s: Suite) -> str:
    wrong = _GET_LISTING_NS.replace(":2", ":9")
    return _robust(s, raw_request(s.contracts["GetListing"], _valid_get_listing(s, wrong),
                                  s.logical_address), "wrong namespace")


@case("Robustness", "Robustness: a schema-invalid request (no personId) -> SOAP fault or ERROR")
def robust_schema(s: Suite) -> str:
    return _robust(s, raw_request(s.contracts["GetListing"],
                                  _valid_get_listing(s, with_person=False), s.logical_address),
                   "schema-invalid")


# --- the WSDL ------------------------------------------------------------------------------------

@case("GetListing", "WSDL: <contract path>?wsdl answers the contract's own WSDL")
def wsdl(s: Suite) -> str:
    if s.via_platform:
        raise CaseSkipped("the platform does not serve WSDLs; run against the producer directly")
    from interactions.xmlload import XmlInputError, parse_bytes

    checked = 0
    for name in ("GetListing", "CreateListing"):
        c = s.contracts[name]
        url = s.transport.url(c) + "?wsdl"
        try:
            r = s.transport.get(url)
        except Exception as exc:
            raise CaseFailed(f"GET {c.path}?wsdl: {type(exc).__name__}") from None
        try:
            root = parse_bytes(r.content)
        except XmlInputError as exc:
            raise CaseFailed(f"GET {c.path}?wsdl (HTTP {r.status_code}): not XML ({exc})") from None
        tns = root.get("targetNamespace")
        if tns != c.wsdl_namespace:
            raise CaseFailed(f"GET {c.path}?wsdl: targetNamespace {tns!r}; expected "
                             f"{c.wsdl_namespace}")
        checked += 1
    return f"{checked} WSDLs"
