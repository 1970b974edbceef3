"""`listning region close-unit` against a real region database, and the closure behind it
(``producers.flows.closure``): batches, a closure interrupted half way and finished by running
the command again, the set-based path equal to the one-resident-at-a-time path, and a home
region that lists passively taking a resident back after a closure elsewhere."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from listning.cli import main
from producers import flows, outbox
from producers.config import REGIONS_DIR, default_database_url, shipped_config
from producers.context import local_now
from producers.inprocess import create, ctx_for, listed_units, listing_counties, wire
from producers.population.api import ApiServer
from producers.region import Region
from producers.storage import open_database
from producers.storage.models import (
    AccessLog,
    HomeHistory,
    HomeRecord,
    Listing,
    OutboxMessage,
    Person,
    QueueEntry,
    UnitClosure,
)

KALMAR = str(REGIONS_DIR / "08.toml")
UNIT = "SE2321000073-01HC"  # Hälsocentralen Kalmar centrum


def url_of(region: Region) -> str:
    return region.db.engine.url.render_as_string(hide_password=False)


def close(*args: str) -> int:
    return main(["region", "close-unit", *args])


def seed(region: Region, people, clock, own: int, visitors: int, *, known: int = 0,
         population=None) -> tuple[list[str], list[str]]:
    """``own`` residents of 08 and ``visitors`` from 01 listed at UNIT (01 is not reachable
    from this region's sender or is: whatever the test wired); the first ``known`` of the own
    residents with home county and municipality in the region's database, as the population
    feed leaves them (the set-based path); the others known only to the register."""
    mine = [people.adult("08") for _ in range(own)]
    away = [people.adult("01") for _ in range(visitors)]
    for pid in mine:
        assert wire(region.handle(create(pid, UNIT), ctx_for(clock))).resultCode == "OK"
    for pid in away:
        assert wire(region.handle(create(pid, UNIT, home="01"), ctx_for(clock))).resultCode \
            in ("OK", "INFO")
    with region.db.transaction() as s:
        for pid in mine[:known]:
            s.execute(update(Person).where(Person.person_id == pid).values(
                home_county="08", municipality=population.person(pid).municipality))
    return mine, away


def current(region: Region, pid: str) -> list[str]:
    with region.db.transaction() as s:
        return list(s.execute(select(Listing.unit_hsa_id).where(
            Listing.person_id == pid, Listing.valid_to.is_(None))).scalars())


def closure_rows(region: Region) -> list[tuple[str, str]]:
    with region.db.transaction() as s:
        return sorted(s.execute(select(OutboxMessage.person_id, OutboxMessage.to_county).where(
            OutboxMessage.purpose == "closure")).all())


# --- the command ------------------------------------------------------------------------------

def test_close_unit_ends_relists_queues_notifications_and_is_idempotent(
        make_region, people, population, clock, capsys):
    clock.now = local_now() - timedelta(days=3)  # listed before the command's "now"
    r01, r08 = make_region("01"), make_region("08")
    mine, away = seed(r08, people, clock, own=5, visitors=2, known=3, population=population)
    assert all(listing_counties(r01, pid) == ["08"] for pid in away)

    with ApiServer(population) as register:  # for the two it alone knows where they live
        assert close(UNIT, "--config", KALMAR, "--db", url_of(r08), "--batch", "3",
                     "--operator", "driftledare", "--population-url", register.url) == 0
    out = capsys.readouterr().out
    assert "Region Kalmar län: closed Hälsocentralen Kalmar centrum (SE2321000073-01HC)" in out
    assert "listings ended: 7; queue places ended: 0" in out
    assert "own residents relisted here (passive listing): 5 (" in out
    assert "listed nowhere until they choose: 0" in out
    assert "UpdateListing queued for their home regions: 2 (01 2)" in out

    for pid in mine:  # Kalmar lists passively: each at one open unit, not the closed one
        assert len(current(r08, pid)) == 1 and current(r08, pid) != [UNIT]
    assert all(current(r08, pid) == [] for pid in away)
    assert closure_rows(r08) == sorted((pid, "01") for pid in away)
    with r08.db.transaction() as s:
        log = s.execute(select(AccessLog).where(
            AccessLog.contract == "Operator:close-unit")).scalar_one()
        assert (log.actor_type, log.actor_id, log.person_id) == ("OPERATOR", "driftledare", None)

    clock.now = local_now()  # the running region's outbox worker delivers them
    assert outbox.run_due(r08, clock()) == {"delivered": 2}
    assert all(listing_counties(r01, pid) == [] for pid in away)  # home took them back

    # Again: nothing left, nothing changed, exit 0
    assert close(UNIT, "--config", KALMAR, "--db", url_of(r08)) == 0
    assert "was closed on " in (out := capsys.readouterr().out) and "nothing left to do" in out
    assert len(closure_rows(r08)) == 2
    resp = wire(r08.handle(create(people.adult("08"), UNIT), ctx_for(clock)))
    assert resp.resultCode == "ERROR" and "stängt" in resp.resultText


def test_close_unit_with_the_pilot_data_directory(tmp_path, capsys):
    d = tmp_path / "pilot-data"
    open_database(default_database_url("08", d / "regions" / "08")).dispose()
    assert close("SE2321000073-02HC", "--data-dir", str(d), "--region", "08") == 0
    out = capsys.readouterr().out
    assert "closed Hälsocentralen Lindsdal" in out and "listings ended: 0" in out
    assert close("SE2321000073-02hc", "--data-dir", str(d), "--region", "08") == 0
    assert "nothing left to do" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["SE2321000073-99HC", "--config", KALMAR, "--db", "{db}"],
     "SE2321000073-99HC is not a unit of Region Kalmar län"),
    (["SE2321000016-01VC", "--config", KALMAR, "--db", "{db}"],  # Stockholm's
     "is not a unit of Region Kalmar län"),
    ([UNIT, "--config", KALMAR, "--db", "sqlite:///{tmp}/nope.sqlite"],
     "no region database at"),
    ([UNIT, "--config", KALMAR, "--db", "sqlite:///{tmp}/empty.sqlite"],
     "is not a region database"),
    ([UNIT, "--region", "08"], "say which region database"),
    ([UNIT], "say which region database"),
    ([UNIT, "--data-dir", "{tmp}/pilot"], "--data-dir needs --region NN"),
    ([UNIT, "--data-dir", "{tmp}/pilot", "--region", "01"], "unknown region '01'"),
    ([UNIT, "--config", "{tmp}/missing.toml"], "missing.toml"),
    ([UNIT, "--config", KALMAR, "--db", "{db}", "--batch", "0"], "--batch must be at least 1"),
])
def test_close_unit_problems_are_one_line_and_exit_2(tmp_path: Path, capsys, sqlite_template,
                                                    args, message):
    db = tmp_path / "region-08.sqlite"
    shutil.copy(sqlite_template, db)
    (tmp_path / "empty.sqlite").write_bytes(b"")
    (tmp_path / "pilot" / "regions" / "08").mkdir(parents=True)
    shutil.copy(sqlite_template, tmp_path / "pilot" / "regions" / "08" / "region-08.sqlite")
    argv = [a.format(db=f"sqlite:///{db}", tmp=tmp_path) for a in args]
    assert close(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("listning region close-unit: error: ") and message in err, err
    assert len(err.splitlines()) == 1
    with open_database(f"sqlite:///{db}").transaction() as s:  # and nothing was closed
        assert s.execute(select(UnitClosure)).first() is None


def test_without_the_population_register_those_only_it_places_are_listed_nowhere(
        make_region, people, population, clock, capsys):
    clock.now = local_now() - timedelta(days=3)
    r08 = make_region("08")
    mine, _ = seed(r08, people, clock, own=2, visitors=0, known=1, population=population)
    assert close(UNIT, "--config", KALMAR, "--db", url_of(r08)) == 0
    out = capsys.readouterr().out
    assert "relisted here (passive listing): 1 (" in out
    assert "listed nowhere until they choose: 1" in out
    assert "UpdateListing queued for their home regions: 0" in out
    assert len(current(r08, mine[0])) == 1 and current(r08, mine[1]) == []


# --- interrupted half way -------------------------------------------------------------------

def test_an_interrupted_closure_is_finished_by_running_the_command_again(
        make_region, people, population, clock, capsys, monkeypatch):
    clock.now = local_now() - timedelta(days=3)
    r01, r08 = make_region("01"), make_region("08")
    mine, away = seed(r08, people, clock, own=6, visitors=2, known=6, population=population)
    real, calls = flows._close_batch, []

    def interrupted(*args, **kwargs):  # Ctrl-C while the second batch runs
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flows, "_close_batch", interrupted)
    assert close(UNIT, "--config", KALMAR, "--db", url_of(r08), "--batch", "3") == 130
    assert "run the same command again" in capsys.readouterr().err
    with r08.db.transaction() as s:  # closed, first batch done and committed, the rest not
        assert s.get(UnitClosure, UNIT) is not None
        left = s.execute(select(Listing).where(Listing.unit_hsa_id == UNIT,
                                               Listing.valid_to.is_(None))).scalars().all()
        assert len(left) == 5
    resp = wire(r08.handle(create(people.adult("08"), UNIT), ctx_for(clock)))
    assert resp.resultCode == "ERROR"  # closed for new listings meanwhile

    # A process killed in a batch: the batch's transaction is rolled back whole
    monkeypatch.setattr(flows, "_close_batch", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        flows.closure(r08, UNIT, local_now(), batch=3)

    monkeypatch.setattr(flows, "_close_batch", real)
    assert close(UNIT, "--config", KALMAR, "--db", url_of(r08), "--batch", "3") == 0
    out = capsys.readouterr().out
    assert "was closed on" in out and "its closure is finished now" in out
    assert "listings ended: 5" in out
    for pid in mine:  # every resident exactly once: relisted once, notified once
        assert len(current(r08, pid)) == 1 and current(r08, pid) != [UNIT]
    assert closure_rows(r08) == sorted((pid, "01") for pid in away)
    clock.now = local_now()
    outbox.run_due(r08, clock())
    assert all(listing_counties(r01, pid) == [] for pid in away)


# --- the set-based path does what the one-at-a-time path does ---------------------------------

def _state(region: Region) -> dict[str, list]:
    with region.db.transaction() as s:
        def rows(q) -> list:
            return sorted(tuple(r) for r in s.execute(q).all())
        return {
            "listings": rows(select(Listing.id, Listing.person_id, Listing.unit_hsa_id,
                                    Listing.home_county, Listing.valid_from, Listing.valid_to,
                                    Listing.registered_at, Listing.origin, Listing.end_reason,
                                    Listing.type_code)),
            "home_records": rows(select(HomeRecord.person_id, HomeRecord.listing_county,
                                        HomeRecord.since, HomeRecord.effective_at,
                                        HomeRecord.event_at, HomeRecord.type_code)),
            "home_history": rows(select(HomeHistory.person_id, HomeHistory.listing_county,
                                        HomeHistory.valid_from, HomeHistory.valid_to,
                                        HomeHistory.effective_at, HomeHistory.recorded_at,
                                        HomeHistory.event_at, HomeHistory.end_reason)),
            "outbox": sorted((r.person_id, r.to_county, r.purpose, r.status,
                              sorted(r.payload.items())) for r in
                             s.execute(select(OutboxMessage)).scalars()),
            "queue": rows(select(QueueEntry.person_id, QueueEntry.unit_hsa_id)),
        }


def test_set_based_closure_equals_one_resident_at_a_time(databases, people, population,
                                                         clock, monkeypatch):
    cfg = shipped_config("08")
    # two places per unit but the closing one, so units fill and the next nearest takes over
    cfg = replace(cfg, units=tuple(u if u.hsa_id == UNIT else replace(u, cap=2)
                                   for u in cfg.units))
    regions = []
    for _ in range(2):
        r = Region.open(cfg, database_url=databases.url("r08"), population=population,
                        clock=clock)
        databases.regions.append(r)
        regions.append(r)
    bulk, single = regions
    clock.now = local_now() - timedelta(days=3)
    start = clock.now
    chosen = [people.adult("08") for _ in range(9)] + [people.adult("01") for _ in range(2)]
    lindsdal = [people.adult("08") for _ in range(2)]  # the unit nearest to Kalmar: full
    for r in regions:  # the same residents, the same choices, the same times in both
        clock.now = start
        for pid in lindsdal:
            assert wire(r.handle(create(pid, "SE2321000073-02HC"), ctx_for(clock))).resultCode \
                == "OK"
        for i, pid in enumerate(chosen):
            home = "01" if i >= 9 else None
            assert wire(r.handle(create(pid, UNIT, home=home), ctx_for(clock))).resultCode \
                in ("OK", "INFO")
            clock.advance(minutes=1)
        # one of them queued at the full unit (the queue place goes with a passive listing)
        assert wire(r.handle(create(chosen[0], "SE2321000073-02HC", queue=True),
                             ctx_for(clock))).resultCode == "OK"
        with r.db.transaction() as s:
            for pid in chosen[:9]:
                s.execute(update(Person).where(Person.person_id == pid).values(
                    home_county="08", municipality=population.person(pid).municipality))
    now = local_now()
    monkeypatch.setattr(flows, "SET_BASED", True)
    a = flows.closure(bulk, UNIT, now, batch=4)
    monkeypatch.setattr(flows, "SET_BASED", False)
    b = flows.closure(single, UNIT, now, batch=4)
    assert (a.ended, a.relisted, a.notified, a.listed_nowhere, a.batches) == \
        (b.ended, b.relisted, b.notified, b.listed_nowhere, b.batches)
    assert a.ended == 11 and sum(a.relisted.values()) == 9 and a.notified == {"01": 2}
    assert len(a.relisted) >= 3  # units filled up one after another
    assert _state(bulk) == _state(single)
    with bulk.db.transaction() as s:
        assert s.execute(select(QueueEntry)).first() is None


# --- the home region lists passively ----------------------------------------------------------

def test_a_home_region_that_lists_passively_relists_a_resident_whose_unit_closed_elsewhere(
        make_region, people, clock, network):
    r01, r08 = make_region("01"), make_region("08")
    pid = people.adult("08")
    wire(r08.handle(create(pid, UNIT), ctx_for(clock)))
    clock.advance(days=2)
    stockholm = r01.config.units[0].hsa_id
    assert wire(r01.handle(create(pid, stockholm, home="08"), ctx_for(clock))).resultCode == "OK"
    assert listing_counties(r08, pid) == ["01"] and listed_units(r08, pid) == []
    clock.advance(days=2)

    result = flows.closure(r01, stockholm)
    assert result.notified == {"08": 1} and not result.relisted  # 01 does not list passively
    outbox.run_due(r01, clock())

    assert listed_units(r01, pid) == []
    assert listing_counties(r08, pid) == ["08"]  # 08 took the resident back and listed them
    assert len(current(r08, pid)) == 1
