"""The reports read what the real region system writes: these fixtures reuse the region
suite's (real SQLite files and PostgreSQL databases, the population register, the in-process
platform) and build a month of cross-region listing by driving ``Region.handle``."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parent.parent / "region" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_region_fixtures_for_reports", _path)
assert _spec is not None and _spec.loader is not None
_region = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _region
_spec.loader.exec_module(_region)

# the region suite's fixtures, registered here too
pg_unreachable = _region.pg_unreachable
sqlite_template = _region.sqlite_template
backend = _region.backend
databases = _region.databases
population_template = _region.population_template
population = _region.population
people = _region.people
network = _region.network
make_region = _region.make_region
Clock = _region.Clock


@pytest.fixture
def pg_databases(tmp_path: Path, pg_unreachable: str | None,
                 sqlite_template: str) -> Iterator[object]:
    """Fresh PostgreSQL databases for one test (skipped when PostgreSQL is not reachable)."""
    dbs = _region.Databases("postgres", tmp_path, pg_unreachable, sqlite_template)
    yield dbs
    dbs.close()


@pytest.fixture
def clock() -> object:
    """The reports' tests live in September–November 2026."""
    return Clock(datetime(2026, 9, 20, 10, 0, 0))


class October:
    """Regions 01, 08 and 03 and a month of listing, moves and endings (see ``october``)."""

    def __init__(self, regions: dict, persons: dict[str, str], clock: object) -> None:
        self.regions, self.p, self.clock = regions, persons, clock


@pytest.fixture(scope="session", params=_region.BACKENDS)
def october(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            pg_unreachable: str | None, sqlite_template: str,
            population_template: Path) -> Iterator[October]:
    """Built once per backend through the real handlers, and only read by the tests.
    Persons (key → what happens):

    a  08-resident listed at 01 unit 0 since Sep 20                (theirs here, at month end)
    b  01-resident at 01 unit 0 since Sep 20; c at 01 unit 1       (local)
    d  08-resident at 01 unit 1 Sep 25, back home in 08 Oct 10     (ends at 01 Oct 11)
    e  03-resident lists at 01 unit 0 Oct 5                        (started in October)
    q  03-resident at 01 unit 0 Oct 3, lists in 08 Oct 20          (started and ended)
    f  01-resident listed in 08 Sep 20                             (ours there)
    g  01-resident lists in 03 Sep 21, takes effect Oct 1          (ours there, started)
    h  01-resident in 08 Sep 22, back home at 01 unit 2 Oct 14     (ours there, ended)
    m  08-resident at 01 unit 2 Sep 20, moves 08 → 03 Oct 15       (paid by 03 at month end)
    n  01-resident at 01 unit 2 Sep 20, moves 01 → 08 Oct 20       (paid by 08 at month end)
    p  08-resident lists at 01 unit 0 Nov 3                        (not in October)

    Then November changes what the home records say now, not what October was:
    g  03 closes its unit 0 on Nov 5: g's listing there ends         (01 no longer records it)
    f  moves 01 → 03 Nov 10 while listed in 08                      (08 bills 03 from then)
    r  08-resident lists at 01 unit 1 Nov 4, moves 08 → 01 Nov 12   (01's own from then)
    """
    from producers import flows, outbox, population_feed
    from producers.config import shipped_config
    from producers.inprocess import Network, create, ctx_for, wire
    from producers.population.register import PopulationRegister
    from producers.region import Region

    tmp = tmp_path_factory.mktemp(f"october-{request.param}")
    dbs = _region.Databases(request.param, tmp, pg_unreachable, sqlite_template)
    shutil.copy(population_template, tmp / "population.sqlite")
    population = PopulationRegister(f"sqlite:///{tmp / 'population.sqlite'}")
    people = _region.People(population)
    clock = Clock(datetime(2026, 9, 20, 10, 0, 0))
    network = Network(clock)
    regions = {}
    for code in ("01", "08", "03"):
        region = Region.open(shipped_config(code), database_url=dbs.url(f"r{code}"),
                             sender=network.sender_for(code), population=population,
                             clock=clock)
        dbs.regions.append(region)
        network.regions[code] = regions[code] = region
    p = {k: people.adult(home) for k, home in (
        ("a", "08"), ("b", "01"), ("c", "01"), ("d", "08"), ("e", "03"), ("q", "03"),
        ("f", "01"), ("g", "01"), ("h", "01"), ("m", "08"), ("n", "01"), ("p", "08"), ("r", "08"))}

    def settle() -> None:
        for _ in range(2):
            for region in regions.values():
                population_feed.consume(region, population, clock())
            for region in regions.values():
                outbox.run_due(region, clock())

    def at(month: int, day: int) -> None:
        clock.now = datetime(2026, month, day, 10, 0, 0)

    def lists(key: str, region: str, unit: int, home: str | None = None) -> None:
        r = regions[region]
        resp = wire(r.handle(create(p[key], r.config.units[unit].hsa_id, home=home),
                             ctx_for(clock)))
        assert resp.resultCode == "OK", (key, resp.resultCode, resp.resultText)
        settle()

    settle()  # the feed's history first
    at(9, 20)
    lists("a", "01", 0, "08")
    lists("b", "01", 0)
    lists("c", "01", 1)
    lists("f", "08", 0, "01")
    lists("m", "01", 2, "08")
    lists("n", "01", 2)
    at(9, 21)
    lists("g", "03", 0, "01")
    at(9, 22)
    lists("h", "08", 0, "01")
    at(9, 25)
    lists("d", "01", 1, "08")
    at(10, 3)
    lists("q", "01", 0, "03")
    at(10, 5)
    lists("e", "01", 0, "03")
    at(10, 10)
    lists("d", "08", 0)
    at(10, 14)
    lists("h", "01", 2)
    at(10, 15)
    population.record_move(p["m"], "03")
    settle()
    at(10, 20)
    population.record_move(p["n"], "08")
    settle()
    lists("q", "08", 0, "03")
    at(11, 3)
    lists("p", "01", 0, "08")
    at(11, 4)
    lists("r", "01", 1, "08")
    at(11, 5)
    flows.close_unit(regions["03"], regions["03"].config.units[0].hsa_id, clock())
    settle()
    at(11, 10)
    population.record_move(p["f"], "03")
    settle()
    at(11, 12)
    population.record_move(p["r"], "01")
    settle()
    at(11, 25)
    settle()
    yield October(regions, p, clock)
    dbs.close()
    population.close()
