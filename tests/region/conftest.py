"""Fixtures for the region listing system: real databases (SQLite files and, when reachable,
PostgreSQL databases made and dropped per test), a real population register, and a small
in-process "platform" that carries UpdateListing between regions as validated XML."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from producers.config import shipped_config
from producers.context import local_now
from producers.inprocess import Network
from producers.population.model import GuardianshipRow, PersonRow
from producers.population.register import PopulationRegister
from producers.region import Region
from producers.storage import open_database

PG_URL = os.environ.get("LISTNING_TEST_POSTGRES_URL",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_unreachable() -> str | None:
    return _pg_reachable()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated empty SQLite database, made once and copied by each test."""
    path = str(tmp_path_factory.mktemp("template") / "region.sqlite")
    open_database(f"sqlite:///{path}").dispose()
    return path


class Databases:
    """Hands out fresh databases for one test and removes them afterwards.

    SQLite: a copy of a migrated file per region. PostgreSQL: one database per test, made and
    dropped here, with one schema per region in it (``search_path``), which is much quicker
    than a database per region and just as separate."""

    def __init__(self, backend: str, tmp: Path, pg_unreachable: str | None,
                 sqlite_template: str) -> None:
        if backend == "postgres" and pg_unreachable:
            pytest.skip(pg_unreachable)
        self.backend, self.tmp, self.sqlite_template = backend, tmp, sqlite_template
        self.database: str | None = None
        self.regions: list[Region] = []

    def url(self, label: str) -> str:
        if self.backend == "sqlite":
            path = self.tmp / f"{label}-{uuid.uuid4().hex[:6]}.sqlite"
            shutil.copy(self.sqlite_template, path)
            return f"sqlite:///{path}"
        if self.database is None:
            self.database = f"listning_test_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.database}"'))
            admin.dispose()
        base = PG_URL.rsplit("/", 1)[0] + "/" + self.database
        schema = f"{label}_{uuid.uuid4().hex[:6]}".lower()
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return f"{base}?options=-csearch_path%3D{schema}"

    def close(self) -> None:
        for r in self.regions:
            r.db.dispose()
        if self.database is None:
            return
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def databases(backend: str, tmp_path: Path, pg_unreachable: str | None,
              sqlite_template: str) -> Iterator[Databases]:
    dbs = Databases(backend, tmp_path, pg_unreachable, sqlite_template)
    yield dbs
    dbs.close()


# --- the population register ----------------------------------------------------------------

@pytest.fixture(scope="session")
def population_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("population") / "template.sqlite"
    reg = PopulationRegister(f"sqlite:///{path}")
    reg.generate(400, seed=11, counties=["01", "03", "08"])
    reg.close()
    return path


@pytest.fixture
def population(population_template: Path, tmp_path: Path) -> Iterator[PopulationRegister]:
    copy = tmp_path / "population.sqlite"
    shutil.copy(population_template, copy)
    reg = PopulationRegister(f"sqlite:///{copy}")
    yield reg
    reg.close()


class People:
    """Picks persons with given properties from the register, each one only once."""

    def __init__(self, register: PopulationRegister) -> None:
        self.register = register
        self.used: set[str] = set()

    def _pick(self, q: Any) -> str:
        with self.register.engine.connect() as conn:
            for pid in conn.execute(q).scalars():
                if pid not in self.used:
                    self.used.add(pid)
                    return pid
        raise LookupError("no such person left in the test population")

    def adult(self, county: str) -> str:
        born_before = date.today() - timedelta(days=365 * 20)
        return self._pick(select(PersonRow.person_id).where(
            PersonRow.county == county, PersonRow.birth_date < born_before,
            PersonRow.deceased_on.is_(None), PersonRow.emigrated_on.is_(None))
            .order_by(PersonRow.person_id))

    def child(self, county: str, guardians: int = 2, max_age: int = 10,
              min_age: int = 1) -> tuple[str, list[str]]:
        today = date.today()
        q = (select(GuardianshipRow.child_id).join(
            PersonRow, PersonRow.person_id == GuardianshipRow.child_id).where(
            PersonRow.county == county,
            PersonRow.birth_date > today - timedelta(days=365 * max_age),
            PersonRow.birth_date < today - timedelta(days=365 * min_age))
            .group_by(GuardianshipRow.child_id)
            .having(func.count() == guardians).order_by(GuardianshipRow.child_id))
        pid = self._pick(q)
        return pid, [g.person_id for g in self.register.guardians_of(pid)]


@pytest.fixture
def people(population: PopulationRegister) -> People:
    return People(population)


# --- time and the in-process platform --------------------------------------------------------

class Clock:
    """The tests' time: regions, contexts and the network read it; tests move it on."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # mid-morning on a weekday, so "next day" and "first of next month" are distinct from now
    return Clock(local_now().replace(hour=10, minute=0, second=0))


@pytest.fixture
def network(clock: Clock) -> Network:
    return Network(clock)



@pytest.fixture
def make_region(databases: Databases, network: Network, population: PopulationRegister,
                clock: Clock) -> Callable[..., Region]:
    def make(county: str, **rules: Any) -> Region:
        cfg = shipped_config(county)
        if rules:
            from dataclasses import replace
            cfg = replace(cfg, rules=replace(cfg.rules, **rules))
        region = Region.open(cfg, database_url=databases.url(f"r{county}"),
                             sender=network.sender_for(county), population=population,
                             clock=clock)
        databases.regions.append(region)
        network.regions[county] = region
        return region
    return make


