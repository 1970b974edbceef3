"""The simulated population register: generator, register and feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from datetime import date, timedelta
from itertools import pairwise

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from interactions.identifiers import (
    SAMORDNINGSNUMMER_OID,
    check_personal_id,
    counties,
    municipalities,
    personal_id_root,
)
from producers.population import PopulationRegister, RegisterError
from producers.population import cli as population_cli
from producers.population.api import ApiServer, PopulationApiError, PopulationClient
from producers.population.generator import generate_population
from producers.population.test_persons import (
    CHILD,
    GUARDIAN,
    KALMAR_RESIDENT,
    SAMORDNING,
    TEST_PERSONS,
    TOLVAN,
)
from routing import pki

AS_OF = date(2026, 6, 1)
PG_URL = os.environ.get("LISTNING_TEST_POSTGRES_URL",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _age(born: date, on: date = AS_OF) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- databases: a fresh SQLite file or a uniquely named PostgreSQL database per test ------

def _postgres_database() -> Iterator[str]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}: "
                    f"{exc.orig}")
    name = f"listning_population_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'population.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def register(db_url: str) -> Iterator[PopulationRegister]:
    reg = PopulationRegister(db_url)
    reg.generate(400, seed=11, counties=["01", "08", "09"], as_of=AS_OF)
    try:
        yield reg
    finally:
        reg.close()


# --- the generator (no database) -----------------------------------------------------

@pytest.fixture(scope="module")
def generated() -> tuple[list[dict], list[tuple[str, str]]]:
    batches = list(generate_population(20_000, seed=5, as_of=AS_OF))
    return [p for b in batches for p in b.persons], [g for b in batches for g in b.guardianships]


@pytest.fixture(scope="module")
def population(generated: tuple[list[dict], list[tuple[str, str]]]) -> list[dict]:
    return generated[0]


@pytest.fixture(scope="module")
def guardianships(generated: tuple[list[dict], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return generated[1]


def test_every_generated_number_is_valid_and_unique(population: list[dict]) -> None:
    ids = [p["person_id"] for p in population]
    assert len(ids) == 20_000 + len(TEST_PERSONS) == len(set(ids))
    bad = [i for i in ids if check_personal_id(i, personal_id_root(i))]
    assert bad == []
    # the sex is in the birth number: odd for men, even for women
    assert all(int(p["person_id"][10]) % 2 == (p["sex"] == "M") for p in population)


def test_about_one_percent_have_a_samordningsnummer(population: list[dict]) -> None:
    share = sum(personal_id_root(p["person_id"]) == SAMORDNINGSNUMMER_OID
                for p in population) / len(population)
    assert 0.006 < share < 0.014


def test_the_test_persons_are_always_there(population: list[dict]) -> None:
    by_id = {p["person_id"]: p for p in population}
    tolvan = by_id["191212121212"]
    assert (tolvan["first_name"], tolvan["last_name"], tolvan["county"]) == \
        ("Tolvan", "Tolvansson", "01")
    assert _age(tolvan["birth_date"]) >= 18
    assert by_id[KALMAR_RESIDENT.person_id]["county"] == "08"
    assert _age(by_id[CHILD.person_id]["birth_date"], date.today()) < 13
    assert personal_id_root(SAMORDNING.person_id) == SAMORDNINGSNUMMER_OID
    for tp in TEST_PERSONS:
        assert check_personal_id(tp.person_id, personal_id_root(tp.person_id)) is None
        assert tp.person_id in by_id
        assert municipalities()[tp.municipality].county_code == tp.county


def test_home_counties_follow_the_county_populations(population: list[dict]) -> None:
    total_pop = sum(c.population for c in counties().values())
    seen = Counter(p["county"] for p in population)
    for code, c in counties().items():
        expected = c.population / total_pop
        assert abs(seen[code] / len(population) - expected) < 0.012, code
    # and within a county, over its municipalities, each near its centre
    stockholm = Counter(p["municipality"] for p in population if p["county"] == "01")
    assert len(stockholm) == 26 and stockholm.most_common(1)[0][0] == "0180"
    munis = municipalities()
    for p in population:
        m = munis[p["municipality"]]
        assert m.county_code == p["county"]
        assert abs(p["latitude"] - m.latitude) < 0.5 and abs(p["longitude"] - m.longitude) < 0.8


def test_the_age_distribution_is_swedish(population: list[dict]) -> None:
    ages = [_age(p["birth_date"]) for p in population[len(TEST_PERSONS):]]
    children = sum(a < 18 for a in ages) / len(ages)
    old = sum(a >= 65 for a in ages) / len(ages)
    assert 0.18 < children < 0.24  # Sweden: about 21 %
    assert 0.17 < old < 0.23  # Sweden: about 20 %
    assert max(ages) < 100 and min(ages) >= 0


def test_children_have_one_or_two_adult_guardians_in_their_county(
        population: list[dict], guardianships: list[tuple[str, str]]) -> None:
    by_id = {p["person_id"]: p for p in population}
    guardians: dict[str, list[str]] = {}
    for child, guardian in guardianships:
        guardians.setdefault(child, []).append(guardian)
    children = [p for p in population if _age(p["birth_date"]) < 18]
    assert children and all(1 <= len(guardians.get(c["person_id"], [])) <= 2 for c in children)
    for child_id, gs in guardians.items():
        child = by_id[child_id]
        for g in gs:
            assert by_id[g]["county"] == child["county"]
            assert _age(by_id[g]["birth_date"]) >= 18
    two = sum(len(g) == 2 for g in guardians.values()) / len(guardians)
    assert 0.65 < two < 0.85
    assert guardians[CHILD.person_id] == [GUARDIAN.person_id]


def test_even_a_tiny_population_gives_every_child_a_guardian_in_its_county() -> None:
    for seed in range(40):
        batches = list(generate_population(2, seed=seed, as_of=AS_OF))
        people = {p["person_id"]: p for b in batches for p in b.persons}
        guarded = {c: people[g]["county"] for b in batches for c, g in b.guardianships}
        for p in people.values():
            if _age(p["birth_date"]) < 18:
                assert guarded.get(p["person_id"]) == p["county"], seed


def test_generation_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list:
        return [(b.persons, b.guardianships)
                for b in generate_population(1500, seed=seed, as_of=AS_OF, batch_size=500)]
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_generation_can_be_limited_to_some_counties() -> None:
    people = [p for b in generate_population(2000, seed=1, counties=["01", "08"], as_of=AS_OF)
              for p in b.persons]
    assert {p["county"] for p in people} == {"01", "08"}
    with pytest.raises(ValueError, match="99"):
        list(generate_population(10, seed=1, counties=["99"]))


# --- the register ----------------------------------------------------------------------

def test_the_register_answers_about_persons(register: PopulationRegister) -> None:
    assert register.count() == 400 + len(TEST_PERSONS)
    tolvan = register.person(TOLVAN.person_id)
    assert tolvan is not None and tolvan.first_name == "Tolvan" and tolvan.home_county == "01"
    assert register.home_county(KALMAR_RESIDENT.person_id) == "08"
    assert register.person("191212121213") is None and register.home_county("x") is None
    assert [g.person_id for g in register.guardians_of(CHILD.person_id)] == [GUARDIAN.person_id]
    assert CHILD.person_id in [c.person_id for c in register.children_of(GUARDIAN.person_id)]
    samordning = register.person(SAMORDNING.person_id)
    assert samordning is not None and samordning.root == SAMORDNINGSNUMMER_OID
    with pytest.raises(RegisterError, match="already holds"):
        register.generate(10, seed=1)


def test_a_move_updates_the_person_and_the_feed_together(register: PopulationRegister) -> None:
    change = register.record_move(TOLVAN.person_id, "08", "0880")
    tolvan = register.person(TOLVAN.person_id)
    assert tolvan is not None and (tolvan.county, tolvan.municipality) == ("08", "0880")
    assert abs(tolvan.latitude - 56.67) < 0.5
    assert register.changes_since(0) == [change]
    assert (change.kind, change.from_county, change.to_county, change.municipality) == \
        ("move", "01", "08", "0880")
    # refused changes leave both untouched
    with pytest.raises(RegisterError, match="already lives"):
        register.record_move(TOLVAN.person_id, "08")
    with pytest.raises(RegisterError, match="not in county"):
        register.record_move(TOLVAN.person_id, "01", "0880")
    with pytest.raises(RegisterError):
        register.record_move("191212121213", "01")
    assert register.changes_since(0) == [change]
    assert register.home_county(TOLVAN.person_id) == "08"


def test_a_failing_feed_write_rolls_the_person_back(register: PopulationRegister,
                                                    db_url: str) -> None:
    # A real fault in the database, not a mock: a trigger that refuses feed rows.
    engine = create_engine(db_url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER feed_down BEFORE INSERT ON changes "
                              "BEGIN SELECT RAISE(ABORT, 'feed down'); END"))
        else:
            conn.execute(text("CREATE FUNCTION feed_down() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'feed down'; END $$"))
            conn.execute(text("CREATE TRIGGER feed_down BEFORE INSERT ON changes "
                              "FOR EACH ROW EXECUTE FUNCTION feed_down()"))
    engine.dispose()
    with pytest.raises(Exception, match="feed down"):
        register.record_move(TOLVAN.person_id, "08")
    with pytest.raises(Exception, match="feed down"):
        register.record_death(KALMAR_RESIDENT.person_id)
    assert register.home_county(TOLVAN.person_id) == "01"
    assert register.home_county(KALMAR_RESIDENT.person_id) == "08"
    assert register.changes_since(0) == []


def test_births_deaths_and_emigrations(register: PopulationRegister) -> None:
    today = date.today()
    baby = register.record_birth([GUARDIAN.person_id], seed=1)
    assert check_personal_id(baby.person_id) is None and baby.birth_date == today
    assert (baby.county, baby.municipality, baby.last_name) == ("01", "0180", "Lindberg")
    assert [g.person_id for g in register.guardians_of(baby.person_id)] == [GUARDIAN.person_id]
    with pytest.raises(RegisterError, match="same county"):
        register.record_birth([GUARDIAN.person_id, KALMAR_RESIDENT.person_id])

    died = register.record_death(TOLVAN.person_id)
    left = register.record_emigration(KALMAR_RESIDENT.person_id, on=today - timedelta(days=1))
    assert register.home_county(TOLVAN.person_id) is None
    assert register.person(TOLVAN.person_id).status == "deceased"  # type: ignore[union-attr]
    assert register.person(KALMAR_RESIDENT.person_id).emigrated_on == \
        today - timedelta(days=1)  # type: ignore[union-attr]
    with pytest.raises(RegisterError, match="deceased"):
        register.record_move(TOLVAN.person_id, "08")
    feed = register.changes_since(0)
    assert [(c.kind, c.person_id) for c in feed] == [
        ("birth", baby.person_id), ("death", TOLVAN.person_id),
        ("emigration", KALMAR_RESIDENT.person_id)]
    assert (feed[0].to_county, died.from_county, left.from_county) == ("01", "01", "08")


def test_the_feed_pages_in_order_under_concurrent_writers(register: PopulationRegister) -> None:
    adults = _some_ids(register, 40)
    assert len(adults) == 40

    def move_all(ids: list[str]) -> None:
        for pid in ids:
            p = register.person(pid)
            assert p is not None
            register.record_move(pid, "08" if p.county == "01" else "01")

    threads = [threading.Thread(target=move_all, args=(adults[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    pages, since = [], 0
    while page := register.changes_since(since, limit=15):
        pages.append(page)
        since = page[-1].seq
    seqs = [c.seq for page in pages for c in page]
    assert [len(p) for p in pages] == [15, 15, 10]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40
    assert {c.person_id for page in pages for c in page} == set(adults)
    for c in (c for page in pages for c in page):  # the feed and the persons agree
        assert register.home_county(c.person_id) == c.to_county
    assert register.changes_since(seqs[-1]) == []
    with pytest.raises(ValueError):
        register.changes_since(0, limit=0)


def test_concurrent_moves_of_one_person_form_a_consistent_chain(
        register: PopulationRegister) -> None:
    targets = ["03", "04", "05", "06", "07"]

    def mover(offset: int) -> None:
        for i in range(8):
            with suppress(RegisterError):  # already there: another thread moved them first
                register.record_move(TOLVAN.person_id, targets[(i + offset) % len(targets)])

    threads = [threading.Thread(target=mover, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    feed = register.changes_since(0)
    assert len(feed) >= 8
    # every move starts where the one before it ended: read and write were one transaction
    assert feed[0].from_county == "01"
    for before, after in pairwise(feed):
        assert after.from_county == before.to_county != after.to_county
    assert register.home_county(TOLVAN.person_id) == feed[-1].to_county


def _some_ids(register: PopulationRegister, n: int) -> list[str]:
    with register.engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT person_id FROM persons WHERE county IN ('01', '08') "
            "ORDER BY person_id LIMIT :n"), {"n": n}).scalars())


# --- the read API over real HTTP ---------------------------------------------------------

@pytest.fixture
def api(register: PopulationRegister) -> Iterator[tuple[ApiServer, PopulationClient]]:
    with ApiServer(register) as server, PopulationClient(server.url) as client:
        yield server, client


def test_a_person_over_http(api: tuple[ApiServer, PopulationClient],
                            caplog: pytest.LogCaptureFixture) -> None:
    server, client = api
    assert server.url.startswith("http://127.0.0.1:")
    with caplog.at_level(logging.INFO):  # urllib3 logs URLs at DEBUG; INFO must stay clean
        tolvan = client.person(TOLVAN.person_id)
        child = client.person(CHILD.person_id)
        guardian = client.person(GUARDIAN.person_id)
    assert tolvan is not None and (tolvan.first_name, tolvan.last_name) == ("Tolvan",
                                                                            "Tolvansson")
    assert (tolvan.home_county, tolvan.birth_date, tolvan.status) == \
        ("01", date(1912, 12, 12), "resident")
    assert child is not None and child.age() < 13
    assert [g.person_id for g in child.guardians] == [GUARDIAN.person_id]
    assert child.guardians[0].home_county == "01"
    assert guardian is not None and CHILD.person_id in [c.person_id for c in guardian.children]
    assert client.home_county(KALMAR_RESIDENT.person_id) == "08"
    assert TOLVAN.person_id not in caplog.text  # aiohttp's access log would show it at INFO


def test_unknown_and_malformed_numbers_get_clear_json_errors(
        api: tuple[ApiServer, PopulationClient]) -> None:
    server, client = api
    missing = requests.get(f"{server.url}/persons/191212121220", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not-found"
    assert "no person" in missing.json()["message"]
    assert client.person("191212121220") is None
    bad = requests.get(f"{server.url}/persons/191212121213", timeout=5)
    assert bad.status_code == 400 and "check digit" in bad.json()["message"]
    with pytest.raises(PopulationApiError) as err:
        client.person("19121212-1212")
    assert err.value.status == 400 and "12 digits" in str(err.value)


def test_the_change_feed_over_http(api: tuple[ApiServer, PopulationClient],
                                   register: PopulationRegister) -> None:
    server, client = api
    movers = _some_ids(register, 5)
    for pid in movers:
        p = register.person(pid)
        assert p is not None
        register.record_move(pid, "08" if p.county == "01" else "01")
    first = client.changes_since(0, limit=2)
    assert [c.person_id for c in first] == movers[:2]
    assert [c.person_id for c in client.changes_since(first[-1].seq, limit=2)] == movers[2:4]
    every = list(client.iter_changes(0, page=2))
    assert [c.person_id for c in every] == movers
    assert [c.seq for c in every] == sorted(c.seq for c in every)
    assert every[0] == register.changes_since(0, 1)[0]  # the same Change, dates and all
    assert list(client.iter_changes(every[-1].seq)) == []
    bad = requests.get(f"{server.url}/changes?since=abc", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "bad-parameter"
    health = requests.get(f"{server.url}/health", timeout=5).json()
    assert health == {"status": "ok", "persons": 405, "last_seq": every[-1].seq}


def test_the_api_with_mutual_tls(tmp_path) -> None:
    pki.create_ca(tmp_path)
    server_id = pki.issue(tmp_path, "population", "SE2321000016-POP1")
    region = pki.issue(tmp_path, "region01", "SE2321000016-REG1")
    reg = PopulationRegister(f"sqlite:///{tmp_path / 'p.db'}")
    reg.generate(10, seed=1)
    try:
        with ApiServer(reg, cert=server_id.cert, key=server_id.key,
                       ca=tmp_path / "ca.pem") as server:
            assert server.url.startswith("https://")
            with PopulationClient(server.url, cert=region.cert, key=region.key,
                                  ca=tmp_path / "ca.pem") as client:
                assert client.home_county(TOLVAN.person_id) == "01"
            with PopulationClient(server.url, ca=tmp_path / "ca.pem") as anonymous, \
                    pytest.raises(PopulationApiError, match="unreachable"):
                anonymous.person(TOLVAN.person_id)
        with pytest.raises(ValueError, match="loopback"):
            ApiServer(reg, host="0.0.0.0")  # noqa: S104 -- refused, which is the point
    finally:
        reg.close()


# --- the command line --------------------------------------------------------------------

def test_the_population_commands(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="listning")
    population_cli.register(parser.add_subparsers())
    db = f"sqlite:///{tmp_path / 'p.db'}"

    def run(*argv: str) -> int:
        args = parser.parse_args(["population", *argv, "--db", db])
        return args.handler(args)

    assert run("generate", "-n", "50", "--seed", "2", "--counties", "01,08") == 0
    assert "55 persons written" in capsys.readouterr().err
    assert run("generate", "-n", "50") == 1
    assert "already holds 55 persons" in capsys.readouterr().err
    assert run("move", TOLVAN.person_id, "--to", "08", "--municipality", "0880") == 0
    assert run("move", TOLVAN.person_id, "--to", "08") == 1
    assert "already lives in county 08" in capsys.readouterr().err
    assert run("birth", "--guardian", GUARDIAN.person_id) == 0
    assert run("death", KALMAR_RESIDENT.person_id) == 0
    capsys.readouterr()
    assert run("show", TOLVAN.person_id) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["home_county"], shown["municipality"]) == ("08", "0880")
    assert run("changes", "--since", "0") == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds == ["move", "birth", "death"]
    assert run("generate", "-n", "20", "--seed", "3", "--replace") == 0
    reg = PopulationRegister(db)
    try:
        assert reg.count() == 25 and reg.changes_since(0) == []
    finally:
        reg.close()
