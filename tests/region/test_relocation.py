"""Moves between counties, births, deaths: the regions read the population feed and hand a
resident's listing over from the old home region to the new one."""

from __future__ import annotations

from sqlalchemy import select

from producers import outbox, population_feed
from producers.inprocess import create, ctx_for, listed_units, listing_counties, wire
from producers.storage.models import Listing


def unit(region, i: int = 0) -> str:
    return region.config.units[i].hsa_id


def settle(network, population, clock) -> None:
    """Every region reads the feed, then every outbox is delivered."""
    for _ in range(2):
        for region in network.regions.values():
            population_feed.consume(region, population, clock())
        for region in network.regions.values():
            outbox.run_due(region, clock())


def payer(region, pid) -> str:
    with region.db.transaction() as s:
        return s.execute(select(Listing.home_county).where(
            Listing.person_id == pid, Listing.valid_to.is_(None))).scalar_one()


def test_listed_in_c_moving_from_a_to_d(make_region, people, population, clock, network):
    r01, r03, r08 = make_region("01"), make_region("03"), make_region("08")
    pid = people.adult("01")
    assert wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock))).resultCode == "OK"
    settle(network, population, clock)
    population.record_move(pid, "08")
    settle(network, population, clock)

    assert listing_counties(r08, pid) == ["03"]  # the new home region knows
    assert listing_counties(r01, pid) == []  # the old one has forgotten
    assert listed_units(r03, pid) == [unit(r03)]  # the listing itself is untouched
    assert payer(r03, pid) == "08"  # and is billed to the new home region
    clock.advance(days=20)
    settle(network, population, clock)
    assert listed_units(r08, pid) == []  # no passive listing: the resident is listed in 03


def test_listed_at_the_old_home_moving_away(make_region, people, population, clock, network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
    # the new home reads the feed first: it must wait for the hand-over, not list passively
    population.record_move(pid, "08")
    population_feed.consume(r08, population, clock())
    assert listed_units(r08, pid) == []
    settle(network, population, clock)
    assert listing_counties(r08, pid) == ["01"]
    assert listing_counties(r01, pid) == []
    assert listed_units(r01, pid) == [unit(r01)]
    assert payer(r01, pid) == "08"
    clock.advance(days=20)
    settle(network, population, clock)
    assert listed_units(r08, pid) == []
    # now a resident of 08: choosing a unit in 08 ends the listing in 01
    assert wire(r08.handle(create(pid, unit(r08)), ctx_for(clock))).resultCode == "OK"
    settle(network, population, clock)
    assert listed_units(r01, pid) == []
    assert listing_counties(r08, pid) == ["08"]


def test_newcomer_listed_nowhere_is_listed_passively_after_the_hand_over_period(
        make_region, people, population, clock, network):
    make_region("03")  # the old home region, listing no one
    r08 = make_region("08")
    pid = people.adult("03")
    change = population.record_move(pid, "08", municipality="0882")  # Oskarshamn
    settle(network, population, clock)
    assert listed_units(r08, pid) == []  # waiting for a hand-over that may come
    clock.advance(days=15)
    settle(network, population, clock)
    [listed] = listed_units(r08, pid)
    oskarshamn = next(u for u in r08.config.units if u.municipality == change.municipality)
    assert listed == oskarshamn.hsa_id  # the nearest unit
    assert listing_counties(r08, pid) == ["08"]


def test_death_ends_listings_everywhere(make_region, people, population, clock, network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("01")
    wire(r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)))
    clock.advance(days=3)
    population.record_death(pid, clock().date())
    settle(network, population, clock)
    assert listed_units(r08, pid) == []
    assert listing_counties(r01, pid) == []
    # reading the feed again applies nothing twice
    assert population_feed.consume(r08, population, clock()) == 0


def test_births_are_known_to_the_home_region(make_region, people, population, clock, network):
    r08 = make_region("08")
    mother = people.adult("08")
    baby = population.record_birth([mother], born=clock().date())
    settle(network, population, clock)
    # Kalmar lists passively; a newborn has nothing to hand over, so it is listed at once
    assert len(listed_units(r08, baby.person_id)) == 1


def test_late_hand_over_beats_a_passive_listing(make_region, people, population, clock,
                                                network):
    r01, r03, r08 = make_region("01"), make_region("03"), make_region("08")
    pid = people.adult("01")
    wire(r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock)))
    population.record_move(pid, "08")
    network.down.add("08")  # the old home's hand-over cannot get through for weeks
    settle(network, population, clock)
    clock.advance(days=20)
    settle(network, population, clock)
    assert len(listed_units(r08, pid)) == 1  # passive listing after the waiting period
    network.down.clear()
    clock.advance(hours=2)
    settle(network, population, clock)
    # the resident's own choice (in 03) wins over the passive listing
    assert listed_units(r08, pid) == []
    assert listing_counties(r08, pid) == ["03"]
    assert listed_units(r03, pid) == [unit(r03)]
    assert listing_counties(r01, pid) == []
