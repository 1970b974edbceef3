"""Data protection on the region side (patientdatalagen): every read and change of a
resident's listing through a contract leaves an access-log row saying who (caller and original
consumer), whose (the person), which contract, as which actor, when and how it ended; and the
logs of a busy cross-region day, faults included, never contain a resident's personnummer or
samordningsnummer in any form."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reliability_support import Templates, World, adults
from sqlalchemy import select

from interactions.models import message_class
from producers import flows, outbox, population_feed
from producers.context import CallContext
from producers.inprocess import (
    E_SERVICE,
    create,
    get_county,
    get_listing,
    person_ii,
    region_actor,
)
from producers.storage.models import AccessLog

UNIT01, SMALL01 = "SE2321000016-01VC", "SE2321000016-02VC"
UNIT03 = "SE2321000024-01VC"
UNIT08, UNIT08B = "SE2321000073-01HC", "SE2321000073-03HC"
CAREGIVER = "SE2321000016-0001"  # a caregiver's system reading through the platform


@pytest.fixture
def world(templates: Templates) -> Iterator[World]:
    w = templates.world()
    yield w
    w.close()


def access_rows(world: World, county: str) -> list[AccessLog]:
    with world.region(county).db.transaction() as s:
        return list(s.execute(select(AccessLog).order_by(AccessLog.id)).scalars())


def new_rows(world: World, county: str, call: Callable[[], Any]) -> tuple[Any, list[AccessLog]]:
    before = len(access_rows(world, county))
    answer = call()
    return answer, access_rows(world, county)[before:]


def test_every_contract_that_touches_a_listing_logs_the_access(world: World) -> None:
    pid, other = adults(world.population, "01", 2)
    r01 = world.region("01")

    def ctx(caller: str = E_SERVICE, consumer: str | None = E_SERVICE) -> CallContext:
        world.clock.advance(seconds=7)
        return CallContext(caller_hsa_id=caller, original_consumer=consumer, now=world.clock())

    def check(county: str, request: Any, context: CallContext, contract: str, action: str,
              actor_type: str | None, actor_id: str | None) -> list[AccessLog]:
        answer, rows = new_rows(world, county,
                                lambda: world.region(county).handle(request, context))
        mine = [r for r in rows if r.correlation_id == context.correlation_id]
        assert len(mine) >= 1, f"{contract}: no access-log row"
        row = mine[-1]
        assert (row.at, row.person_id, row.contract, row.action) == (
            context.now, pid, contract, action), contract
        assert (row.caller_hsa_id, row.original_consumer) == (
            context.caller_hsa_id, context.original_consumer), contract
        assert (row.actor_type, row.actor_id) == (actor_type, actor_id), contract
        assert row.result_code == str(answer.resultCode), contract
        return mine

    # CreateListing: a change by the resident, at home and (with the home region's verdict)
    # in another region; a refused change is logged with its error.
    check("01", create(pid, UNIT01), ctx(), "CreateListing", "change", "CITIZEN", pid)
    check("01", create(pid, "SE2321000016-99VC"), ctx(), "CreateListing", "change",
          "CITIZEN", pid)
    check("01", create(pid, UNIT01, by=other), ctx(), "CreateListing", "change",
          "CITIZEN", other)
    c = ctx()
    before_home = len(access_rows(world, "01"))
    check("08", create(pid, UNIT08, home="01"), c, "CreateListing", "change", "CITIZEN", pid)
    # ... which made the listing region call UpdateListing at the home region: logged there,
    # with the calling region as who and no actor (region to region)
    home_rows = [r for r in access_rows(world, "01")[before_home:]
                 if r.contract == "UpdateListing"]
    assert [(r.person_id, r.action, r.caller_hsa_id, r.actor_type, r.result_code)
            for r in home_rows] == [(pid, "change", world.region("08").hsa_id, None, "OK")]

    # UpdateListing sent directly (a redelivery of what 08 sent: answered, and logged again)
    sent = world.net.inner.sent[-1][2]
    check("01", sent, ctx(world.region("08").hsa_id, world.region("08").hsa_id),
          "UpdateListing", "change", None, None)

    # Reads: by the resident, by a region, by a caregiver's system; and the refused read of
    # someone else's listing is logged too.
    check("08", get_listing(pid), ctx(), "GetListing", "read", "CITIZEN", pid)
    check("01", get_county(pid), ctx(), "GetListingCounty", "read", "CITIZEN", pid)
    read_by_region = message_class("GetListing")(actor=region_actor(r01), personId=person_ii(pid))
    check("08", read_by_region, ctx(r01.hsa_id, r01.hsa_id), "GetListing", "read", "REGION",
          r01.hsa_id)
    check("01", get_county(pid, by=other), ctx(CAREGIVER, None), "GetListingCounty", "read",
          "CITIZEN", other)
    check("08", get_listing(pid, kind="HEALTHCARE_ADVISER", by=other), ctx(), "GetListing",
          "read", "HEALTHCARE_ADVISER", other)
    types = message_class("GetListingTypes")(personId=person_ii(pid))
    check("03", types, ctx(), "GetListingTypes", "read", None, None)
    staff = message_class("GetAvailableHealthcarePersonnel")(
        personId=person_ii(pid), healthcareFacilityHSAId=UNIT03)
    check("03", staff, ctx(), "GetAvailableHealthcarePersonnel", "read", None, None)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Every logger's INFO and above: the root's handler, and one on each logger that does not
    pass its records on to the root."""
    cap = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(cap)
    loose = [lg for lg in logging.Logger.manager.loggerDict.values()
             if isinstance(lg, logging.Logger) and not lg.propagate]
    for lg in loose:
        lg.addHandler(cap)
    levels = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    for name in levels:
        if name.startswith(("producers", "interactions", "routing", "consumers", "listning")):
            logging.getLogger(name).setLevel(logging.INFO)
    yield cap
    root.removeHandler(cap)
    root.setLevel(old_level)
    for lg in loose:
        lg.removeHandler(cap)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def forms(pid: str) -> list[str]:
    """The ways an identity number is written: 12 and 10 digits, with or without a dash."""
    return [pid, pid[2:], f"{pid[:8]}-{pid[8:]}", f"{pid[2:8]}-{pid[8:]}"]


def test_logs_of_a_busy_cross_region_day_carry_no_identity_numbers(
        world: World, captured: Capture) -> None:
    pop = world.population
    residents = (adults(pop, "01", 4) + adults(pop, "03", 3) + adults(pop, "08", 3))
    coordination = []
    for county in ("01", "03", "08"):
        try:
            coordination += adults(pop, county, 1, samordning=True)
        except LookupError:
            continue
    assert coordination, "the test population has no adult with a samordningsnummer"
    residents += coordination
    units = {"01": (UNIT01, SMALL01), "03": (UNIT03, "SE2321000024-03VC"),
             "08": (UNIT08, UNIT08B)}

    def choose(pid: str, county: str, k: int, queue: bool = True) -> str:
        world.clock.advance(seconds=11)
        answer = world.region(county).handle(
            create(pid, units[county][k % 2], home=pop.home_county(pid), queue=queue),
            world.ctx())
        return str(answer.resultCode)

    codes: list[str] = []
    for n, pid in enumerate(residents):
        codes.append(choose(pid, ("01", "03", "08")[n % 3], n))
    # every kind of fault and refusal the protocol knows
    world.net.plan.extend(["delay", "duplicate", "lose_answer", "drop", "refuse"])
    for n, pid in enumerate(residents):
        codes.append(choose(pid, ("08", "01", "03")[n % 3], n + 1))
    world.net.down.add("01")
    for n, pid in enumerate(residents):
        codes.append(choose(pid, ("03", "08")[n % 2], n))  # home 01 down: refuse / outbox
    world.net.down.clear()
    for pid in residents:  # the third change in twelve months: refused by the home region
        codes.append(choose(pid, "01", 0))
        codes.append(choose(pid, "08", 1))
    pop.record_move(residents[0], "08")
    pop.record_move(residents[4], "01")
    pop.record_move(coordination[0], "03" if pop.home_county(coordination[0]) != "03"
                    else "01")
    world.read_feeds()
    flows.close_unit(world.region("08"), UNIT08B)
    flows.close_unit(world.region("01"), SMALL01)
    for region in world.regions.values():
        outbox.run_due(region, world.clock())
    world.clock.advance(days=20)
    for region in world.regions.values():
        population_feed.consume(region, pop, world.clock())
    world.quiesce()
    for pid in residents:  # reads, including one with a malformed id and a wrong actor
        for county in ("01", "03", "08"):
            world.region(county).handle(get_listing(pid), world.ctx())
            world.region(county).handle(get_county(pid, by=residents[-1]), world.ctx())
    bad = create(residents[1], UNIT01)
    bad.personId.extension = residents[1][:-1] + str((int(residents[1][-1]) + 1) % 10)
    codes.append(str(world.region("01").handle(bad, world.ctx()).resultCode))

    # the day really was busy: every outcome and many log lines
    assert {"OK", "INFO", "ERROR", "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"} <= set(codes)
    assert world.net.messages > 20 and sum(world.net.faults.values()) >= 5
    assert len(captured.lines) > 50
    text = "\n".join(captured.lines)
    assert "outbox" in text and "CreateListing" in text  # the capture sees the producers
    leaked = sorted({f for pid in [*residents, bad.personId.extension] for f in forms(pid)
                     if f in text})
    assert leaked == [], f"identity numbers in the logs: {leaked}"
