"""Cross-region listing: the transfer at the moment of listing, three-region forwarding,
coming back home, the home region refusing, and GetListingCounty in every situation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from producers import outbox
from producers.inprocess import (
    create,
    ctx_for,
    get_listing,
    listed_units,
    listing_counties,
    wire,
)
from producers.storage.models import AccessLog, OutboxMessage


def unit(region, i: int = 0) -> str:
    return region.config.units[i].hsa_id


def run_outboxes(network, clock, rounds: int = 3) -> None:
    for _ in range(rounds):
        for region in network.regions.values():
            outbox.run_due(region, clock())


def test_listing_in_another_region_moves_the_resident_there(make_region, people, clock,
                                                             network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    assert wire(r01.handle(create(pid, unit(r01)), ctx_for(clock))).resultCode == "OK"

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "OK", resp.resultText
    assert listed_units(r08, pid) == [unit(r08)]
    assert listed_units(r01, pid) == []  # the home region ended its own listing
    assert listing_counties(r01, pid) == ["08"]
    assert listing_counties(r08, pid) == []  # only the home region answers
    # the notification went synchronously, nothing is left in the outbox
    with r08.db.transaction() as s:
        assert outbox.pending_count(s) == 0


def test_listed_in_c_chooses_b_home_forwards_to_c(make_region, people, clock, network):
    r01, r08, r03 = make_region("01"), make_region("08"), make_region("03")
    pid = people.adult("01")
    assert wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock))).resultCode == "OK"
    assert listing_counties(r01, pid) == ["03"]
    clock.advance(minutes=5)

    assert wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock))).resultCode == "OK"
    assert listing_counties(r01, pid) == ["08"]
    assert listed_units(r03, pid) == [unit(r03)]  # not yet: A's forward is in A's outbox
    run_outboxes(network, clock)
    assert listed_units(r03, pid) == []
    assert listed_units(r08, pid) == [unit(r08)]
    forwarded = [(frm, to) for frm, to, _ in network.sent]
    assert ("01", "03") in forwarded


def test_coming_back_home_ends_the_listing_in_the_other_region(make_region, people, clock,
                                                               network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))
    clock.advance(minutes=1)
    resp = wire(r01.handle(create(pid, unit(r01, 2)), ctx_for(clock)))
    assert resp.resultCode == "OK", resp.resultText
    assert listing_counties(r01, pid) == ["01"]
    run_outboxes(network, clock)
    assert listed_units(r08, pid) == []
    assert listed_units(r01, pid) == [unit(r01, 2)]


def test_home_region_limit_reaches_the_resident(make_region, people, clock, network):
    r01, r08 = make_region("01", changes_per_12_months=1), make_region("08")
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))  # first listing: not a change
    clock.advance(days=1)
    wire(r01.handle(create(pid, unit(r01, 2)), ctx_for(clock)))  # change 1 of 1
    clock.advance(days=1)

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
    assert "tolv månaderna" in resp.resultText
    assert listed_units(r08, pid) == []  # taken back: never two places
    assert listed_units(r01, pid) == [unit(r01, 2)]
    assert listing_counties(r01, pid) == ["01"]
    with r08.db.transaction() as s:  # the access log shows the attempt and how it ended
        codes = s.execute(select(AccessLog.result_code).where(
            AccessLog.person_id == pid, AccessLog.contract == "CreateListing")
            .order_by(AccessLog.id)).scalars().all()
    assert codes == ["OK", "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"]


def test_home_down_refuse_mode_says_try_again_and_changes_nothing(make_region, people, clock,
                                                                  network):
    r01, r03 = make_region("01"), make_region("03")  # 03 refuses when home is unreachable
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    network.down.add("01")

    resp = wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock)))

    assert resp.resultCode == "ERROR"
    assert "Försök igen senare" in resp.resultText
    assert listed_units(r03, pid) == []
    network.down.clear()
    run_outboxes(network, clock)  # the cancelled notification is never sent
    assert listed_units(r01, pid) == [unit(r01)]
    assert listing_counties(r01, pid) == ["01"]


def test_home_down_outbox_mode_registers_and_converges(make_region, people, clock, network):
    r01, r08 = make_region("01"), make_region("08")  # 08 registers and queues
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    network.down.add("01")

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "INFO"
    assert "hemregion" in resp.resultText
    assert listed_units(r08, pid) == [unit(r08)]
    clock.advance(minutes=1)
    assert outbox.run_due(r08, clock()) == {"not_delivered": 1}
    with r08.db.transaction() as s:
        row = s.execute(select(OutboxMessage)).scalar_one()
        assert row.status == "pending" and row.attempts == 2
        assert row.next_attempt_at > clock()  # backing off
    network.down.clear()
    clock.advance(hours=2)
    run_outboxes(network, clock)
    assert listing_counties(r01, pid) == ["08"]
    assert listed_units(r01, pid) == []
    with r08.db.transaction() as s:
        assert s.execute(select(OutboxMessage.status)).scalar_one() == "delivered"


def test_queued_notification_refused_later_takes_the_listing_back(make_region, people, clock,
                                                                  network):
    r01, r08 = make_region("01", changes_per_12_months=0), make_region("08")
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    network.down.add("01")
    assert wire(r08.handle(create(pid, unit(r08), home="01"),
                           ctx_for(clock))).resultCode == "INFO"
    network.down.clear()
    clock.advance(hours=1)
    assert outbox.run_due(r08, clock()) == {"refused": 1}
    # the resident keeps the old listing; the new one never took effect
    assert listed_units(r08, pid) == []
    assert listed_units(r01, pid) == [unit(r01)]
    assert listing_counties(r01, pid) == ["01"]


def test_lost_answer_is_retried_and_applied_once(make_region, people, clock, network):
    r01, r03 = make_region("01", changes_per_12_months=1), make_region("03")
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    network.lose_responses.add("01")
    resp = wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock)))
    # the outcome is unknown even in refuse mode: the listing stays and the outbox retries
    assert resp.resultCode == "INFO"
    network.lose_responses.clear()
    clock.advance(hours=1)
    assert outbox.run_due(r03, clock()) == {"delivered": 1}
    # the retry was recognised as the same message: one change counted, not two (limit 1)
    assert listing_counties(r01, pid) == ["03"]
    assert listed_units(r03, pid) == [unit(r03)]
    got = wire(r01.handle(create(pid, unit(r01, 2)), ctx_for(clock)))
    assert got.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"


def test_get_listing_county_in_every_situation(make_region, people, clock, network):
    r01, r08 = make_region("01"), make_region("08")
    never, at_home, away, other = (people.adult("01"), people.adult("01"), people.adult("01"),
                                   people.adult("08"))
    wire(r01.handle(create(at_home, unit(r01)), ctx_for(clock)))
    wire(r08.handle(create(away, unit(r08), home="01"), ctx_for(clock)))
    wire(r08.handle(create(other, unit(r08)), ctx_for(clock)))
    assert listing_counties(r01, never) == []  # a resident listed nowhere
    assert listing_counties(r01, at_home) == ["01"]
    assert listing_counties(r01, away) == ["08"]
    assert listing_counties(r08, away) == []  # not the home region: no counties
    assert listing_counties(r01, other) == []  # not our resident
    assert listing_counties(r08, other) == ["08"]


def test_every_read_and_change_is_in_the_access_log(make_region, people, clock):
    r01 = make_region("01")
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    listing_counties(r01, pid)
    with r01.db.transaction() as s:
        rows = s.execute(select(AccessLog).where(AccessLog.person_id == pid)
                         .order_by(AccessLog.id)).scalars().all()
    assert [(r.contract, r.action, r.actor_type) for r in rows] == [
        ("CreateListing", "change", "CITIZEN"), ("GetListingCounty", "read", "REGION")]
    assert rows[0].caller_hsa_id == "SE5565594230-1177" and rows[0].result_code == "OK"
    assert rows[0].correlation_id


@pytest.mark.parametrize("kind", ["closure"])
def test_unit_closure_hands_residents_back_to_their_home_regions(make_region, people, clock,
                                                                 network, kind):
    from producers import flows

    r01, r08 = make_region("01"), make_region("08")
    visitor, local = people.adult("01"), people.adult("08")
    wire(r08.handle(create(visitor, unit(r08, 2), home="01"), ctx_for(clock)))
    wire(r08.handle(create(local, unit(r08, 2)), ctx_for(clock)))
    clock.advance(days=2)

    assert flows.close_unit(r08, unit(r08, 2)) == 2
    run_outboxes(network, clock)

    assert listed_units(r08, visitor) == []
    assert listing_counties(r01, visitor) == []  # home region has taken responsibility back
    # Kalmar lists passively: its own resident goes to the nearest open unit
    assert listed_units(r08, local) not in ([], [unit(r08, 2)])
    resp = wire(r08.handle(create(people.adult("08"), unit(r08, 2)), ctx_for(clock)))
    assert resp.resultCode == "ERROR" and "stängt" in resp.resultText


def test_late_notification_from_a_region_that_lost_the_race_ends_its_listing(
        make_region, people, clock, network):
    r01, r08, r03 = make_region("01"), make_region("08"), make_region("03")
    pid = people.adult("01")
    network.down.add("01")
    # chosen in 08 first: 01 is down, so 08 lists and leaves the notification to its outbox
    assert wire(r08.handle(create(pid, unit(r08), home="01"),
                           ctx_for(clock))).resultCode == "INFO"
    with r08.db.transaction() as s:  # 08's next attempt comes only after 03's choice
        s.execute(select(OutboxMessage)).scalar_one().next_attempt_at = clock() + timedelta(
            hours=1)
    network.down.clear()
    clock.advance(minutes=1)
    assert wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock))).resultCode == "OK"
    clock.advance(hours=2)
    run_outboxes(network, clock)  # 08's older notification arrives at 01: stale
    assert listing_counties(r01, pid) == ["03"]
    assert listed_units(r08, pid) == []  # 01 told 08 to end it
    assert listed_units(r03, pid) == [unit(r03)]


def test_refused_change_within_the_listing_region_restores_the_old_unit(make_region, people,
                                                                        clock, network):
    r01, r08 = make_region("01", changes_per_12_months=1), make_region("08")
    pid = people.adult("01")
    assert wire(r08.handle(create(pid, unit(r08, 2), home="01"),
                           ctx_for(clock))).resultCode == "OK"  # first listing: no change
    clock.advance(days=2)
    assert wire(r08.handle(create(pid, unit(r08, 3), home="01"),
                           ctx_for(clock))).resultCode == "OK"  # change 1 of 1
    clock.advance(days=2)
    resp = wire(r08.handle(create(pid, unit(r08, 4), home="01"), ctx_for(clock)))
    assert resp.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
    assert listed_units(r08, pid) == [unit(r08, 3)]  # still listed, at the unit before
    assert listing_counties(r01, pid) == ["08"]


def _changes_counted(region, pid) -> int:
    from producers.storage.models import ListingChange

    with region.db.transaction() as s:
        return len(s.execute(select(ListingChange.id).where(
            ListingChange.person_id == pid)).scalars().all())


def test_choosing_again_where_one_is_listed_is_confirmed_by_home_and_changes_nothing(
        make_region, people, clock, network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    assert wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock))).resultCode == "OK"
    before = _changes_counted(r01, pid)
    first = wire(r08.handle(get_listing(pid), ctx_for(clock))).listings[0]
    clock.advance(days=3)
    network.sent.clear()

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "OK" and resp.resultText.startswith("Du är redan listad")
    assert [(frm, to) for frm, to, _ in network.sent] == [("08", "01")]  # home asked
    again = wire(r08.handle(get_listing(pid), ctx_for(clock))).listings[0]
    assert again.validFromDate == first.validFromDate  # the same listing, not a new one
    assert listing_counties(r01, pid) == ["08"]
    assert _changes_counted(r01, pid) == before  # nothing changed at home: nothing counted


def test_choosing_again_after_going_home_is_in_force_when_home_news_arrives_late(
        make_region, people, clock, network):
    """The race the chaos test found: listed in 08, back home at 01 (01's UpdateListing
    ending the 08 listing still in 01's outbox), then at 08 again — 08 must not answer from
    its own state: the home region confirms, and the late news from 01 changes nothing."""
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    assert wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock))).resultCode == "OK"
    clock.advance(minutes=1)
    assert wire(r01.handle(create(pid, unit(r01)), ctx_for(clock))).resultCode == "OK"
    assert listed_units(r08, pid) == [unit(r08)]  # 01's news is still in 01's outbox
    clock.advance(minutes=1)
    before = _changes_counted(r01, pid)

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "OK" and resp.resultText.startswith("Du är redan listad")
    assert listed_units(r01, pid) == []  # home ended its own listing ...
    assert listing_counties(r01, pid) == ["08"]
    assert _changes_counted(r01, pid) == before + 1  # ... and counted a change
    clock.advance(hours=2)
    run_outboxes(network, clock)
    assert listed_units(r08, pid) == [unit(r08)]  # what the resident was told is in force
    assert listing_counties(r01, pid) == ["08"]


def test_choosing_again_is_refused_when_home_has_no_changes_left(make_region, people, clock,
                                                                network):
    r01, r08 = make_region("01", changes_per_12_months=1), make_region("08")
    pid = people.adult("01")
    assert wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock))).resultCode == "OK"
    clock.advance(minutes=1)
    assert wire(r01.handle(create(pid, unit(r01)), ctx_for(clock))).resultCode == "OK"  # 1 of 1
    clock.advance(minutes=1)

    resp = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert resp.resultCode == "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
    assert listed_units(r08, pid) == [unit(r08)]  # as before: 01's news has not arrived yet
    clock.advance(hours=2)
    run_outboxes(network, clock)
    assert listed_units(r08, pid) == []  # now it has: the resident is at home
    assert listed_units(r01, pid) == [unit(r01)]
    assert listing_counties(r01, pid) == ["01"]


def test_choosing_again_while_home_has_not_answered_sends_nothing_new(make_region, people,
                                                                    clock, network):
    """The home region's answer to the choice is lost (the listing stands, INFO); choosing
    the same unit again must not send a second notice the home could confirm as "no change"
    while it refuses the first (the resident would be told "listed" at a unit taken back)."""
    r01 = make_region("01", changes_per_12_months=1)
    r08 = make_region("08")  # 08 keeps the listing and lets its outbox deliver later
    pid = people.adult("01")
    assert wire(r01.handle(create(pid, unit(r01)), ctx_for(clock))).resultCode == "OK"
    clock.advance(minutes=1)
    assert wire(r01.handle(create(pid, unit(r01, 1)), ctx_for(clock))).resultCode == "OK"
    clock.advance(minutes=1)  # the one change of the year is used up
    network.lose_responses.add("01")
    assert wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock))).resultCode == "INFO"
    network.lose_responses.clear()
    clock.advance(minutes=1)
    network.sent.clear()

    again = wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))

    assert again.resultCode == "INFO" and "inte bekräftat" in again.resultText
    assert network.sent == []  # nothing new for the home region to decide on
    clock.advance(hours=2)
    run_outboxes(network, clock)  # the first notice again: refused at the limit
    assert listed_units(r08, pid) == []
    assert listed_units(r01, pid) == [unit(r01, 1)]
    assert listing_counties(r01, pid) == ["01"]


def test_a_new_doctor_in_another_region_is_confirmed_by_home(make_region, people, clock,
                                                            network):
    r01, r08 = make_region("01"), make_region("08")  # 01 refuses when home is unreachable
    pid = people.adult("08")
    fixed = next(u for u in r01.config.units if u.fixed_doctor_contact and len(u.staff) > 1)
    assert wire(r01.handle(create(pid, fixed.hsa_id, home="08"),
                           ctx_for(clock))).resultCode == "OK"
    first, second = fixed.staff[0].hsa_id, fixed.staff[1].hsa_id
    clock.advance(days=1)

    resp = wire(r01.handle(create(pid, fixed.hsa_id, home="08", doctor=first), ctx_for(clock)))
    assert resp.resultCode == "OK" and "läkarkontakt" in resp.resultText, resp.resultText
    assert _doctor(r01, pid) == first

    network.down.add("08")  # the home region cannot confirm: nothing changes
    clock.advance(days=1)
    resp = wire(r01.handle(create(pid, fixed.hsa_id, home="08", doctor=second), ctx_for(clock)))
    assert resp.resultCode == "ERROR" and "Försök igen senare" in resp.resultText
    assert _doctor(r01, pid) == first
    assert listed_units(r01, pid) == [fixed.hsa_id]
    network.down.clear()
    run_outboxes(network, clock)  # the cancelled notification is never sent
    assert listing_counties(r08, pid) == ["01"]


def _doctor(region, pid) -> str | None:
    listing = wire(region.handle(get_listing(pid), ctx_for(region.clock))).listings[0]
    return listing.healthcarePersonnel.id if listing.healthcarePersonnel else None
