"""Two choices for the same resident at the same moment end with exactly one listing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from producers import outbox
from producers.inprocess import create, ctx_for, listed_units, listing_counties, wire
from producers.storage.models import HomeRecord, Listing


def unit(region, i: int = 0) -> str:
    return region.config.units[i].hsa_id


def at_once(*calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(run, c) for c in calls]]


def current_count(region, pid) -> int:
    with region.db.transaction() as s:
        return s.execute(select(func.count()).select_from(Listing).where(
            Listing.person_id == pid, Listing.valid_to.is_(None))).scalar_one()


def test_two_choices_at_one_region_at_the_same_moment(make_region, people, clock):
    r01 = make_region("01")
    for _ in range(4):
        pid = people.adult("01")
        # already known and listed, so nothing but the row lock keeps the two apart
        wire(r01.handle(create(pid, unit(r01)), ctx_for(clock)))
        a, b = at_once(lambda p=pid: r01.handle(create(p, unit(r01, 2)), ctx_for(clock)),
                       lambda p=pid: r01.handle(create(p, unit(r01, 3)), ctx_for(clock)))
        assert {a.resultCode, b.resultCode} == {"OK"}
        assert current_count(r01, pid) == 1
        assert len(listed_units(r01, pid)) == 1
        with r01.db.transaction() as s:
            assert s.get(HomeRecord, pid).listing_county == "01"


def test_last_place_at_a_full_unit_goes_to_one_of_two(make_region, people, clock):
    r01 = make_region("01")
    tiny = unit(r01, 5)  # cap 2, no queue
    wire(r01.handle(create(people.adult("01"), tiny), ctx_for(clock)))
    x, y = people.adult("01"), people.adult("01")
    a, b = at_once(lambda: r01.handle(create(x, tiny), ctx_for(clock)),
                   lambda: r01.handle(create(y, tiny), ctx_for(clock)))
    assert sorted([a.resultCode, b.resultCode]) == ["ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT",
                                                    "OK"]
    with r01.db.transaction() as s:
        assert s.execute(select(func.count()).select_from(Listing).where(
            Listing.unit_hsa_id == tiny, Listing.valid_to.is_(None))).scalar_one() == 2


def test_two_regions_chosen_at_the_same_moment(make_region, people, clock, network):
    r01, r08, r03 = make_region("01"), make_region("08"), make_region("03")
    pid = people.adult("01")
    a, b = at_once(lambda: r08.handle(create(pid, unit(r08), home="01"), ctx_for(clock)),
                   lambda: r03.handle(create(pid, unit(r03), home="01"), ctx_for(clock)))
    assert a.resultCode == b.resultCode == "OK"
    for _ in range(3):
        for region in (r01, r08, r03):
            outbox.run_due(region, clock())
    where = listing_counties(r01, pid)
    assert len(where) == 1
    listed = {"08": listed_units(r08, pid), "03": listed_units(r03, pid)}
    assert [c for c, units in listed.items() if units] == where  # one place, the recorded one
