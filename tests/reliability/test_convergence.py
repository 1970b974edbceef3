"""Convergence under faults: three regions (01, 03, 08 — each with its own database and rules)
exchange UpdateListing through a message layer that delays, duplicates, reorders, drops and
refuses messages and takes regions down, while residents choose units at home and elsewhere
(with and without a queue), choose again, change only their fixed doctor contact, move county,
and units close. After quiescence (every region up, every held message delivered, every outbox
empty) each resident is listed in at most one place, the home region knows where, the listing
in force is the resident's last accepted choice (or what the documented rules put in its
place), and no change was applied twice. Numbers: docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from reliability_support import (
    COUNTIES,
    MODES,
    PROFILE,
    Templates,
    World,
    adults,
    all_listings,
    current_listings,
    home_record,
    invariants,
    outbox_rows,
)

from producers import flows, outbox
from producers.inprocess import create, listed_units, listing_counties
from producers.storage.models import Listing, ListingChange

# Units the residents use: two large ones and one with two or three places (queues form).
UNITS = {
    "01": ("SE2321000016-01VC", "SE2321000016-03VC", "SE2321000016-02VC"),
    "03": ("SE2321000024-01VC", "SE2321000024-02VC", "SE2321000024-03VC"),
    "08": ("SE2321000073-01HC", "SE2321000073-03HC", "SE2321000073-02HC"),
}
PER_COUNTY = 2  # residents per county at the start
NOT_ACCEPTED_END = ("refused_by_home", "cancelled")

faults = st.lists(st.sampled_from(MODES), max_size=3)
counties = st.sampled_from(COUNTIES)

# Totals over the whole run, for the report (printed by the last test of the module).
TOTALS: Counter[str] = Counter()


@dataclass
class Choice:
    at: datetime
    county: str
    unit: str
    code: str
    listed: bool  # a listing was registered by this call


@dataclass
class Resident:
    pid: str
    choices: list[Choice] = field(default_factory=list)
    lived_in: list[str] = field(default_factory=list)


class Regions(RuleBasedStateMachine):
    templates: Templates  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.world: World = self.templates.world()
        self.residents: list[Resident] = []
        self.steps = 0
        self.settled = 0

    @initialize()
    def residents_of_every_county(self) -> None:
        for county in COUNTIES:
            self.residents += [Resident(p) for p in
                               adults(self.world.population, county, PER_COUNTY)]

    def teardown(self) -> None:
        try:
            if self.residents:
                self.settle_and_check()
                TOTALS["schedules"] += 1
                TOTALS["steps"] += self.steps
                TOTALS["messages"] += self.world.net.messages
                TOTALS.update({f"fault:{k}": v for k, v in self.world.net.faults.items()})
        finally:
            self.world.close()

    # --- the residents ---------------------------------------------------------------------

    def _resident(self, i: int) -> Resident:
        return self.residents[i % len(self.residents)]

    @rule(i=st.integers(0, 99), county=counties, u=st.integers(0, 2), queue=st.booleans(),
          plan=faults)
    def choose(self, i: int, county: str, u: int, queue: bool, plan: list[str]) -> None:
        """A resident chooses a unit through the e-service (home county from the register)."""
        self.steps += 1
        w, who = self.world, self._resident(i)
        if county in w.net.down:
            return  # the e-service cannot reach that region: nothing happens
        w.clock.advance(seconds=1)  # one person's choices are never in the same second
        home = w.population.home_county(who.pid)
        region, unit = w.region(county), UNITS[county][u]
        w.net.plan.extend(plan)
        answer = region.handle(create(who.pid, unit, home=home, queue=queue), w.ctx())
        w.net.plan.clear()
        code = str(answer.resultCode)
        now = w.clock()
        made = [x for x in all_listings(region, who.pid) if x.registered_at == now
                and x.unit_hsa_id == unit and x.origin == "choice"]
        listed = bool(made) and code in ("OK", "INFO")
        if code not in ("OK", "INFO"):
            # refused: the resident was told so, and the listing is not in force here
            assert all(x.valid_to is not None for x in made), (code, answer.resultText)
        who.choices.append(Choice(now, county, unit, code, listed))
        TOTALS[f"answer:{code}"] += 1

    @rule(i=st.integers(0, 99), u=st.integers(0, 2), queue=st.booleans(), plan=faults)
    def choose_at_home(self, i: int, u: int, queue: bool, plan: list[str]) -> None:
        """Back to (or within) the home region, drawn as often again."""
        home = self.world.population.home_county(self._resident(i).pid) or COUNTIES[0]
        self.choose(i, home, u, queue, plan)

    @rule(i=st.integers(0, 99), other=st.integers(1, 2), u=st.integers(0, 2),
          queue=st.booleans(), plan=faults)
    def choose_in_another_region(self, i: int, other: int, u: int, queue: bool,
                                 plan: list[str]) -> None:
        """The cross-region case, drawn as often again (it is where messages flow)."""
        home = self.world.population.home_county(self._resident(i).pid) or COUNTIES[0]
        county = COUNTIES[(COUNTIES.index(home) + other) % len(COUNTIES)]
        self.choose(i, county, u, queue, plan)

    @rule(i=st.integers(0, 99), k=st.integers(0, 1))
    def change_doctor(self, i: int, k: int) -> None:
        """Only the fixed doctor contact changes: same unit, no change counted anywhere."""
        self.steps += 1
        w, who = self.world, self._resident(i)
        for county, region in w.regions.items():
            if county in w.net.down:
                continue
            for listing in current_listings(region, who.pid):
                unit = region.config.unit(listing.unit_hsa_id)
                if unit is None or not unit.fixed_doctor_contact or not unit.staff:
                    continue
                home = w.population.home_county(who.pid)
                before = self._counted(who.pid)
                w.clock.advance(seconds=1)
                doctor = unit.staff[k % len(unit.staff)].hsa_id
                answer = region.handle(create(who.pid, unit.hsa_id, home=home, doctor=doctor),
                                       w.ctx())
                assert answer.resultCode == "OK", answer.resultText
                after = [x for x in current_listings(region, who.pid)]
                assert [(x.id, x.personnel_hsa_id) for x in after] == [(listing.id, doctor)]
                assert self._counted(who.pid) == before  # not a change of unit
                return

    def _counted(self, pid: str) -> int:
        total = 0
        for region in self.world.regions.values():
            with region.db.transaction() as s:
                total += len(list(s.query(ListingChange).filter_by(person_id=pid)))
        return total

    @rule(i=st.integers(0, 99), to=counties)
    def move(self, i: int, to: str) -> None:
        """The population register records a move to another county."""
        self.steps += 1
        who = self._resident(i)
        home = self.world.population.home_county(who.pid)
        if not who.lived_in:
            who.lived_in.append(home or "")
        if to in who.lived_in:
            return  # never back to a county lived in before: see KNOWN below
        # KNOWN: a notification still in flight when the resident moves can be applied by the
        # old home region as if it were still home (test_old_home_region_keeps_no_record_...,
        # docs/reliability.md Findings): the machine moves residents only at quiescence.
        self.world.quiesce()
        self.world.population.record_move(who.pid, to)
        who.lived_in.append(to)

    @rule(county=counties)
    def read_feed(self, county: str) -> None:
        self.steps += 1
        if county not in self.world.net.down:
            from producers import population_feed

            population_feed.consume(self.world.region(county), self.world.population,
                                    self.world.clock())

    @rule(county=counties, u=st.integers(0, 2))
    def close_unit(self, county: str, u: int) -> None:
        self.steps += 1
        if county not in self.world.net.down:
            flows.close_unit(self.world.region(county), UNITS[county][u])

    # --- the platform and the clock --------------------------------------------------------

    @rule(county=counties, plan=faults)
    def run_outbox(self, county: str, plan: list[str]) -> None:
        self.steps += 1
        w = self.world
        if county in w.net.down:
            return  # a region that is down runs no worker either
        w.net.plan.extend(plan)
        outbox.run_due(w.region(county), w.clock())
        w.net.plan.clear()

    @rule(index=st.integers(0, 99), keep=st.booleans())
    def deliver_late(self, index: int, keep: bool) -> None:
        """A held message arrives late, in any order; with ``keep`` it will arrive again."""
        self.steps += 1
        if self.world.net.release(index, keep=keep) and keep:
            self.world.net.faults["duplicate_late"] += 1

    @rule(county=counties)
    def region_down(self, county: str) -> None:
        self.steps += 1
        if county not in self.world.net.down:
            self.world.net.down.add(county)
            self.world.net.faults["region_went_down"] += 1

    @rule(county=counties)
    def region_up(self, county: str) -> None:
        self.steps += 1
        self.world.net.down.discard(county)

    @rule(span=st.sampled_from(["seconds", "minutes", "hours", "days", "months"]))
    def advance(self, span: str) -> None:
        self.steps += 1
        kw = {"seconds": {"seconds": 5}, "minutes": {"minutes": 3}, "hours": {"hours": 2},
              "days": {"days": 1}, "months": {"days": 40}}[span]
        self.world.clock.advance(**kw)

    @precondition(lambda self: bool(self.residents))
    @rule()
    def settle(self) -> None:
        """Quiescence in the middle of a schedule; the schedule goes on from there."""
        self.steps += 1
        self.settle_and_check()

    # --- what holds at any time ----------------------------------------------------------------

    @invariant()
    def one_listing_per_region_limit_kept_nothing_counted_twice(self) -> None:
        """At any time, in every region: never two current listings for a person, never more
        counted changes in twelve months than the limit, no message counted twice."""
        now = self.world.clock()
        for county, region in self.world.regions.items():
            found = invariants(region, now)
            assert found == ([], [], []), f"{county}: {found}"

    # --- after quiescence ------------------------------------------------------------------------

    def settle_and_check(self) -> None:
        w = self.world
        self.settled += 1
        w.quiesce()
        for who in self.residents:
            self.check_resident(who)

    def check_resident(self, who: Resident) -> None:
        w, pid = self.world, who.pid
        home = w.population.home_county(pid)
        assert home is not None
        everywhere: list[tuple[str, Listing]] = []
        current: list[tuple[str, Listing]] = []
        for county, region in w.regions.items():
            for x in all_listings(region, pid):
                everywhere.append((county, x))
                if x.valid_to is None:
                    current.append((county, x))
        where = f"{pid} (home {home}): {[(c, x.unit_hsa_id, x.origin) for c, x in current]}"
        assert len(current) <= 1, "listed in two places: " + where

        # The home region's record matches the listing region's truth.
        counties_known = listing_counties(w.region(home), pid)
        assert counties_known == [c for c, _ in current], where
        for county, region in w.regions.items():
            if county != home:  # only the home region answers GetListingCounty
                assert listing_counties(region, pid) == [], f"{county} answers: {where}"
                # KNOWN (test_old_home_region_keeps_no_record_after_a_late_change): a change
                # that reaches the old home region after the move leaves a record there, so
                # home_record(region, pid) is not asserted None here.
        if current:
            county, listing = current[0]
            assert listed_units(w.region(county), pid) == [listing.unit_hsa_id], where
            assert listing.home_county == home, "billed to the wrong region: " + where

        # No listing lost: the last accepted choice is in force (or the documented rule).
        accepted = [(c, x) for c, x in everywhere if x.origin in ("choice", "queue")
                    and x.end_reason not in NOT_ACCEPTED_END]
        for c, x in everywhere:
            if x.end_reason == "refused_by_home":
                rows = [r for r in outbox_rows(w.region(c), pid) if r.purpose == "change"
                        and r.payload["registered_at"] == x.registered_at.isoformat()]
                assert [r.result_code for r in rows] == ["ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"], \
                    f"taken back without the home region's refusal: {where}"
        if accepted:
            _, last = max(accepted, key=lambda cx: (cx[1].registered_at, cx[1].id))
            mine = [ch for ch in who.choices if ch.listed]
            taken_back = {(c, x.registered_at) for c, x in everywhere
                          if x.end_reason in NOT_ACCEPTED_END}
            mine = [ch for ch in mine if (ch.county, ch.at) not in taken_back]
            if mine and last.origin == "choice":
                assert (last.unit_hsa_id, last.registered_at) == (mine[-1].unit, mine[-1].at), \
                    f"the newest listing is not the resident's last accepted choice: {where}"
            if last.valid_to is None:
                pass
            elif last.end_reason == "unit_closed":
                assert not current or current[0][1].origin == "passive", where
                assert not current or current[0][1].registered_at >= last.registered_at, where
            else:
                raise AssertionError(
                    f"the last accepted choice ({last.unit_hsa_id} at {last.registered_at}) "
                    f"ended ({last.end_reason}) without a newer one: {where}")
        elif current:
            assert current[0][1].origin == "passive", where


# The whole state machine is one pytest test: on a loaded 2-core machine it may need more than
# the suite's 300 s per test, and a timeout mid-schedule would surface as a confusing
# FlakyStrategyDefinition from hypothesis' replay instead of a plain timeout.
@pytest.mark.timeout(900)
def test_regions_converge_under_faults(templates: Templates) -> None:
    Regions.templates = templates
    TOTALS.clear()
    Regions.TestCase.settings = PROFILE
    Regions.TestCase().runTest()
    print(f"\nreliability totals: {dict(TOTALS)}")
    assert TOTALS["schedules"] >= 1 and TOTALS["messages"] > 0
    assert sum(v for k, v in TOTALS.items() if k.startswith("fault:")) > 0


def test_moving_back_to_the_region_of_the_listing_makes_it_pay(templates: Templates) -> None:
    """Found by the machine above: listed at home in 01, moving to 08 and back to 01 left the
    listing billed to 08 for good (fixed in producers/flows.py::_move)."""
    w = templates.world()
    try:
        pid = adults(w.population, "01", 1)[0]
        assert w.region("01").handle(create(pid, UNITS["01"][0]), w.ctx()).resultCode == "OK"
        for county in ("08", "01"):
            w.population.record_move(pid, county)
            w.clock.advance(minutes=1)
            w.quiesce()
            assert [(x.unit_hsa_id, x.home_county) for x in
                    current_listings(w.region("01"), pid)] == [(UNITS["01"][0], county)]
        assert listing_counties(w.region("01"), pid) == ["01"]
        assert listing_counties(w.region("08"), pid) == []
    finally:
        w.close()


@pytest.mark.xfail(strict=True, reason="open finding: docs/reliability.md (old home region)")
def test_old_home_region_keeps_no_record_after_a_late_change(templates: Templates) -> None:
    """Found by the machine above. A resident of 01 chooses a unit in 03; the notification to
    01 is lost on the way (03 answers INFO and its outbox retries). The resident moves to 03;
    01 reads the feed (no record, nothing to hand over). The retried change then reaches 01,
    which records "listed in 03" for someone who is no longer its resident (and counts the
    change there). Invisible today (01 answers GetListingCounty with nothing for a
    non-resident), but the record is stale: were the resident to move back to 01, 01 would
    start from it."""
    w = templates.world()
    try:
        pid = adults(w.population, "01", 1)[0]
        w.net.plan.append("drop")
        answer = w.region("03").handle(create(pid, UNITS["03"][0], home="01"), w.ctx())
        assert answer.resultCode == "INFO"
        w.population.record_move(pid, "03")
        w.read_feeds()
        w.clock.advance(minutes=1)
        w.quiesce()
        assert listing_counties(w.region("03"), pid) == ["03"]
        assert home_record(w.region("01"), pid) is None
    finally:
        w.close()


def test_two_refused_choices_in_one_region_never_come_back(templates: Templates) -> None:
    """Found by the machine above: with the 12-month limit used up, two choices in 08 made
    while the home region's answer was pending (INFO) are both refused later; taking back the
    second restored the first — itself refused — so the resident was listed in 08 and at home
    at once (fixed in producers/listings.py::undo_listing, with the stale branch of
    update_listing._at_listing_region; docs/reliability.md). Now the listing in force before
    them comes back."""
    w = templates.world()
    try:
        pid = adults(w.population, "01", 1)[0]
        r08, units = w.region("08"), ("SE2321000073-01HC", "SE2321000073-03HC",
                                     "SE2321000073-04HC")
        for unit in (units[0], units[1], units[0]):  # first listing, then two changes
            w.clock.advance(minutes=1)
            assert r08.handle(create(pid, unit, home="01"), w.ctx()).resultCode == "OK"
        for unit in (units[1], units[2]):  # the home region's verdict does not come back
            w.clock.advance(minutes=1)
            w.net.plan.append("drop")
            assert r08.handle(create(pid, unit, home="01"), w.ctx()).resultCode == "INFO"
        w.quiesce()
        assert [x.unit_hsa_id for x in current_listings(r08, pid)] == [units[0]]
        assert listing_counties(w.region("01"), pid) == ["08"]
        assert [r.result_code for r in outbox_rows(r08, pid)][-2:] == [
            "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"] * 2
    finally:
        w.close()
