"""Every contract at one region, and every result code a resident can get."""

from __future__ import annotations

from datetime import timedelta

from interactions import identifiers as ids
from interactions.models import message_class
from producers.inprocess import (
    CV,
    actor,
    county_ii,
    create,
    ctx_for,
    get_listing,
    listed_units,
    person_ii,
    wire,
)


def ask(region, request, clock):
    return wire(region.handle(request, ctx_for(clock)))


def unit(region, i: int = 0) -> str:
    return region.config.units[i].hsa_id


def remaining(region, pid, clock) -> int:
    r = ask(region, get_listing(pid), clock)
    return r.listings[0].remainingChanges


# --- reading units, staff, types ---------------------------------------------------------------

def test_available_facilities_all_filtered_and_queue_figures(make_region, people, clock):
    r01 = make_region("01")
    facilities = message_class("GetAvailableHealthcareFacilities")
    every = ask(r01, facilities(), clock)
    assert every.resultCode == "OK"
    assert len(every.healthcareFacilities) == len(r01.config.units)
    one = ask(r01, facilities(healthcareFacilities=[unit(r01, 3).lower()]), clock)
    assert [f.id for f in one.healthcareFacilities] == [unit(r01, 3)]
    hlm = r01.config.listing_type("HLM", r01.config.listing_types[1].code_system)
    by_type = ask(r01, facilities(listingTypes=[CV(code=hlm.code, codeSystem=hlm.code_system)]),
                  clock)
    assert {f.id for f in by_type.healthcareFacilities} == {
        u.hsa_id for u in r01.config.units if "HLM" in u.listing_types}
    # fill the small unit (cap 3) and queue one resident
    small = unit(r01, 1)
    for _ in range(3):
        assert ask(r01, create(people.adult("01"), small), clock).resultCode == "OK"
    assert ask(r01, create(people.adult("01"), small, queue=True), clock).resultCode == "OK"
    f = ask(r01, facilities(healthcareFacilities=[small]), clock).healthcareFacilities[0]
    assert f.hasQueue is True and f.queueLength == 1
    assert f.estimatedWaitInQueue == 2 * r01.config.units[1].days_per_queue_place


def test_available_personnel(make_region, people, clock):
    r01, r08 = make_region("01"), make_region("08")
    req = message_class("GetAvailableHealthcarePersonnel")
    pid = people.adult("01")
    staff = ask(r01, req(personId=person_ii(pid), healthcareFacilityHSAId=unit(r01)), clock)
    assert staff.resultCode == "OK"
    assert [p.id for p in staff.healthcarePersonnel] == [s.hsa_id for s in
                                                         r01.config.units[0].staff]
    assert all(p.name and p.title for p in staff.healthcarePersonnel)
    none = ask(r08, req(personId=person_ii(pid), healthcareFacilityHSAId=unit(r08)), clock)
    assert none.resultCode == "OK" and none.healthcarePersonnel == []
    unknown = ask(r01, req(personId=person_ii(pid), healthcareFacilityHSAId="SE2321000016-NOPE"),
                  clock)
    assert unknown.resultCode == "ERROR" and "finns inte" in unknown.resultText


def test_listing_types_for_everyone_own_residents_and_visitors(make_region, people, clock):
    r01 = make_region("01")
    req = message_class("GetListingTypes")
    assert [t.code for t in ask(r01, req(), clock).listingTypes] == ["PV", "HLM", "BMM"]
    own = ask(r01, req(personId=person_ii(people.adult("01"))), clock)
    assert [t.code for t in own.listingTypes] == ["PV", "HLM", "BMM"]
    visitor = ask(r01, req(personId=person_ii(people.adult("08"))), clock)
    assert [t.code for t in visitor.listingTypes] == ["PV", "BMM"]  # BMM shared by agreement
    by_code = ask(r01, req(homeCountyCode=county_ii("03")), clock)
    assert [t.code for t in by_code.listingTypes] == ["PV", "BMM"]
    assert by_code.listingTypes[0].displayName == "Primärvårdslistning"
    bad = ask(r01, req(personId=person_ii("199001011234")), clock)
    assert bad.resultCode == "ERROR" and "Personnumret" in bad.resultText


def test_ping_for_configuration(make_region, clock):
    r08 = make_region("08")
    req = message_class("PingForConfiguration")(serviceContractNamespace="x", logicalAddress="08")
    resp = ask(r08, req, clock)
    assert resp.pingDateTime == clock().strftime("%Y%m%d%H%M%S")
    conf = {c.name: c.value for c in resp.configuration}
    assert conf["county"] == "08" and conf["outboxPending"] == "0"


# --- CreateListing: who may choose ---------------------------------------------------------------

def test_bad_input_and_actor_rules_give_swedish_errors(make_region, people, clock):
    r01 = make_region("01")
    pid, other = people.adult("01"), people.adult("01")
    cases = [
        (create("199001011234", unit(r01)), "ERROR", "Personnumret"),
        (create(pid, unit(r01), by=r01.hsa_id, kind="REGION"), "ERROR", "vårdnadshavare"),
        (create(pid, unit(r01), by=other), "ERROR", "för dig själv"),
        (create(pid, unit(r01), kind="GUARDIAN", by=other), "ERROR_AGE_LIMIT", "under 13 år"),
        (create(pid, "SE2321000016-NOPE"), "ERROR", "finns inte i Region Stockholm"),
        (create(pid, unit(r01), home="99"), "ERROR", "Länskoden"),
        (create(pid, unit(r01), doctor="SE2321000016-NOBODY"), "ERROR", "läkaren"),
        (create(pid, unit(r01, 5), doctor=r01.config.units[0].staff[0].hsa_id), "ERROR",
         "läkaren"),
        (create(pid, unit(r01, 1), listing_type=CV(code="HLM", codeSystem="x")), "ERROR",
         "listningstypen"),
    ]
    for request, code, words in cases:
        resp = ask(r01, request, clock)
        assert resp.resultCode == code, (words, resp.resultText)
        assert words in resp.resultText
    assert listed_units(r01, pid) == []
    # refusals are logged too (patientdatalagen): who tried to change whose listing
    from sqlalchemy import select

    from producers.storage.models import AccessLog

    with r01.db.transaction() as s:
        logged = s.execute(select(AccessLog.result_code, AccessLog.actor_type).where(
            AccessLog.person_id == pid, AccessLog.contract == "CreateListing")).all()
    assert len(logged) == len(cases) - 1  # the invalid personnummer is logged without one
    assert ("ERROR_AGE_LIMIT", "GUARDIAN") in logged and ("ERROR", "REGION") in logged


def test_visitor_needs_home_county_and_shared_types(make_region, people, clock):
    r01 = make_region("01")
    visitor = people.adult("08")
    resp = ask(r01, create(visitor, unit(r01)), clock)
    assert resp.resultCode == "ERROR" and "Hemlän" in resp.resultText
    hlm = r01.config.listing_types[1]
    resp = ask(r01, create(visitor, unit(r01), home="08",
                           listing_type=CV(code=hlm.code, codeSystem=hlm.code_system)), clock)
    assert resp.resultCode == "ERROR" and "folkbokförda i Region Stockholm" in resp.resultText


def test_children_and_guardians(make_region, people, clock):
    r01 = make_region("01")  # guardians act below 13; both guardians must consent
    child, (mother, father) = people.child("01", guardians=2, max_age=10)
    stranger = people.adult("01")
    resp = ask(r01, create(child, unit(r01)), clock)
    assert resp.resultCode == "ERROR_AGE_LIMIT" and "13 år" in resp.resultText
    resp = ask(r01, create(child, unit(r01), by=stranger, kind="GUARDIAN"), clock)
    assert resp.resultCode == "ERROR" and "vårdnadshavare" in resp.resultText
    resp = ask(r01, create(child, unit(r01), by=mother, kind="GUARDIAN"), clock)
    assert resp.resultCode == "ERROR_GUARDIAN_CONSENT_NEEDED"
    assert "Båda vårdnadshavarna" in resp.resultText
    assert listed_units(r01, child) == []
    clock.advance(days=2)
    resp = ask(r01, create(child, unit(r01), by=father, kind="GUARDIAN"), clock)
    assert resp.resultCode == "OK", resp.resultText
    assert listed_units(r01, child) == [unit(r01)]
    # a guardian may read the child's listing
    r = ask(r01, get_listing(child, by=mother, kind="GUARDIAN"), clock)
    assert [x.healthcareFacility.id for x in r.listings] == [unit(r01)]


def test_one_guardian_is_enough_where_the_region_says_so(make_region, people, clock):
    r08 = make_region("08")
    child, (mother, _father) = people.child("08", guardians=2, max_age=10)
    resp = ask(r08, create(child, unit(r08), by=mother, kind="GUARDIAN"), clock)
    assert resp.resultCode == "OK", resp.resultText


# --- CreateListing: caps, queues and the change limit -----------------------------------

def test_full_unit_queue_and_admission(make_region, people, clock):
    r01 = make_region("01")
    small = unit(r01, 1)  # cap 3, queue allowed
    first = [people.adult("01") for _ in range(3)]
    for pid in first:
        assert ask(r01, create(pid, small), clock).resultCode == "OK"
    waiting = people.adult("01")
    assert ask(r01, create(waiting, unit(r01, 2)), clock).resultCode == "OK"
    resp = ask(r01, create(waiting, small), clock)
    assert resp.resultCode == "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT"
    assert "kö" in resp.resultText
    resp = ask(r01, create(waiting, small, queue=True), clock)
    assert resp.resultCode == "OK" and "plats 1" in resp.resultText
    listing = ask(r01, get_listing(waiting), clock).listings
    assert [(x.healthcareFacility.id, x.isInQueue, x.queuePosition) for x in listing] == [
        (unit(r01, 2), False, None), (small, True, 1)]
    assert remaining(r01, waiting, clock) == 2  # queueing is not a change
    # one of the three moves on: the first in the queue gets the place
    clock.advance(days=1)
    assert ask(r01, create(first[0], unit(r01, 3)), clock).resultCode == "OK"
    assert listed_units(r01, waiting) == [small]
    assert remaining(r01, waiting, clock) == 1


def test_leaving_a_queue_is_not_a_change(make_region, people, clock):
    r01 = make_region("01")
    small = unit(r01, 1)
    for _ in range(3):
        ask(r01, create(people.adult("01"), small), clock)
    pid = people.adult("01")
    ask(r01, create(pid, unit(r01)), clock)
    ask(r01, create(pid, small, queue=True), clock)
    resp = ask(r01, create(pid, small, queue=False), clock)
    assert resp.resultCode == "OK" and "lämnat kön" in resp.resultText
    assert [x.isInQueue for x in ask(r01, get_listing(pid), clock).listings] == [False]
    assert remaining(r01, pid, clock) == 2


def test_unit_without_queue_refuses_even_with_add_to_queue(make_region, people, clock):
    r01 = make_region("01")
    tiny = unit(r01, 5)  # cap 2, no queue
    for _ in range(2):
        ask(r01, create(people.adult("01"), tiny), clock)
    resp = ask(r01, create(people.adult("01"), tiny, queue=True), clock)
    assert resp.resultCode == "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT"
    assert "ingen kö" in resp.resultText


def test_same_unit_and_doctor_changes_cost_nothing_but_changes_do(make_region, people, clock):
    r01 = make_region("01")
    pid = people.adult("01")
    staff = r01.config.units[0].staff
    assert ask(r01, create(pid, unit(r01)), clock).resultCode == "OK"
    assert remaining(r01, pid, clock) == 2  # the first listing is not a change
    resp = ask(r01, create(pid, unit(r01).lower(), doctor=staff[1].hsa_id), clock)
    assert resp.resultCode == "OK" and "läkarkontakt" in resp.resultText
    resp = ask(r01, create(pid, unit(r01)), clock)
    assert resp.resultCode == "OK" and "redan listad" in resp.resultText
    r = ask(r01, get_listing(pid), clock).listings[0]
    assert r.healthcarePersonnel.id == staff[1].hsa_id and r.remainingChanges == 2
    for i in (2, 3):
        clock.advance(days=30)
        assert ask(r01, create(pid, unit(r01, i)), clock).resultCode == "OK"
    assert remaining(r01, pid, clock) == 0
    clock.advance(days=30)
    resp = ask(r01, create(pid, unit(r01, 4)), clock)
    assert resp.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
    expected = (clock() - timedelta(days=60) + timedelta(days=365)).date().isoformat()
    assert expected in resp.resultText
    assert listed_units(r01, pid) == [unit(r01, 3)]
    clock.advance(days=340)  # the first change has left the 12-month window
    assert ask(r01, create(pid, unit(r01, 4)), clock).resultCode == "OK"


def test_effective_time_follows_the_regions_rule(make_region, people, clock):
    r03 = make_region("03")  # first of next month
    pid = people.adult("03")
    assert ask(r03, create(pid, unit(r03)), clock).resultCode == "OK"
    listing = ask(r03, get_listing(pid), clock).listings[0]
    assert listing.validFromDate.day == 1 and listing.validFromDate > clock()


# --- UpdateListing directly: duplicates, stale, foreign peers, bad input --------------------------

def update(pid, new, home, *meta):
    from producers import ext

    req = message_class("UpdateListing")(personId=person_ii(pid),
                                         newListingCounty=county_ii(new),
                                         homeCounty=county_ii(home))
    if meta:
        req.any_ = ext.to_elements(ext.NotificationMeta(*meta))
    return req


def from_region(clock, county):
    from producers.context import CallContext

    hsa = ids.region_hsa_prefix(county) + "-LIST"
    return CallContext(caller_hsa_id=hsa, original_consumer=hsa, now=clock())


def counties(region, pid, clock):
    from producers.inprocess import listing_counties

    return listing_counties(region, pid)


def test_duplicate_update_listing_is_applied_once(make_region, people, clock):
    r01 = make_region("01", changes_per_12_months=1)
    pid = people.adult("01")
    ask(r01, create(pid, unit(r01)), clock)
    msg = update(pid, "08", "01", "08-abc", clock(), clock(), "change")
    first = wire(r01.handle(msg, from_region(clock, "08")))
    again = wire(r01.handle(msg, from_region(clock, "08")))
    assert first.resultCode == again.resultCode == "OK"
    assert counties(r01, pid, clock) == ["08"]
    # one change counted, so the limit (1) is reached now — not exceeded twice over
    other = update(pid, "03", "01", "03-xyz", clock(), clock(), "change")
    refused = wire(r01.handle(other, from_region(clock, "03")))
    assert refused.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
    assert wire(r01.handle(other, from_region(clock, "03"))).resultCode == refused.resultCode


def test_stale_update_listing_does_not_overwrite_a_newer_one(make_region, people, clock, network):
    r01 = make_region("01")
    pid = people.adult("01")
    early, late = clock() - timedelta(minutes=10), clock()
    newer = update(pid, "03", "01", "03-new", late, late, "change")
    older = update(pid, "08", "01", "08-old", early, early, "change")
    assert wire(r01.handle(newer, from_region(clock, "03"))).resultCode == "OK"
    resp = wire(r01.handle(older, from_region(clock, "08")))
    assert resp.resultCode == "OK" and "äldre" in resp.resultText
    assert counties(r01, pid, clock) == ["03"]


def test_peer_without_extension_elements_is_applied_in_arrival_order(make_region, people,
                                                                     clock):
    r01 = make_region("01")
    pid = people.adult("01")
    ask(r01, create(pid, unit(r01)), clock)
    clock.advance(minutes=1)
    resp = wire(r01.handle(update(pid, "08", "01"), from_region(clock, "08")))
    assert resp.resultCode == "OK"
    assert counties(r01, pid, clock) == ["08"]
    assert listed_units(r01, pid) == []


def test_update_listing_bad_input(make_region, people, clock):
    r01 = make_region("01")
    pid = people.adult("01")
    bad_pid = wire(r01.handle(update("199001011234", "08", "01"), from_region(clock, "08")))
    assert bad_pid.resultCode == "ERROR" and "Personnumret" in bad_pid.resultText
    bad_county = wire(r01.handle(update(pid, "00", "01"), from_region(clock, "08")))
    assert bad_county.resultCode == "ERROR" and "Länskoden" in bad_county.resultText


def test_reading_someone_elses_listing_as_citizen_is_refused(make_region, people, clock):
    r01 = make_region("01")
    pid, nosy = people.adult("01"), people.adult("01")
    ask(r01, create(pid, unit(r01)), clock)
    resp = ask(r01, get_listing(pid, by=nosy), clock)
    assert resp.resultCode == "ERROR" and resp.listings == []
    resp = ask(r01, message_class("GetListingCounty")(actor=actor(nosy), personId=person_ii(pid)),
               clock)
    assert resp.resultCode == "ERROR"
