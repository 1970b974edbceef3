"""The register's bulk path: cached personnummer, COPY text format, constraints deferred on
PostgreSQL and made again, with the same people as on SQLite."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import inspect, select

from interactions.identifiers import make_personal_id
from producers.population import PopulationRegister, RegisterError
from producers.population.generator import _personal_id
from producers.population.model import GuardianshipRow, PersonRow
from producers.population.register import _copy_value

from .test_population import AS_OF, _postgres_database


def test_cached_personal_id_is_make_personal_id():
    rng = random.Random(3)
    for _ in range(20_000):
        born = date(1915, 1, 1) + timedelta(days=rng.randrange(41_000))
        serial, samordning = rng.randrange(1000), rng.random() < 0.3
        assert _personal_id(born, serial, samordning) == make_personal_id(born, serial,
                                                                          samordning)


def test_copy_text_format_escapes():
    assert _copy_value(None) == "\\N"
    assert _copy_value("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"
    assert _copy_value(date(2020, 1, 2)) == "2020-01-02"
    assert _copy_value(59.5) == "59.5"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_database()


def _everything(reg: PopulationRegister) -> tuple[list[tuple], list[tuple]]:
    with reg.engine.connect() as conn:
        persons = [tuple(r) for r in conn.execute(
            select(PersonRow.__table__).order_by(PersonRow.person_id))]
        guards = [tuple(r) for r in conn.execute(
            select(GuardianshipRow.__table__).order_by(GuardianshipRow.child_id,
                                                       GuardianshipRow.guardian_id))]
    return persons, guards


@pytest.mark.postgres
def test_postgres_bulk_load_matches_sqlite_and_keeps_its_constraints(pg_url, tmp_path):
    pg = PopulationRegister(pg_url)
    lite = PopulationRegister(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        assert pg.generate(3000, seed=4, as_of=AS_OF, batch_size=700) == 3005
        lite.generate(3000, seed=4, as_of=AS_OF, batch_size=700)
        assert _everything(pg) == _everything(lite)
        insp = inspect(pg.engine)
        assert insp.get_pk_constraint("persons")["constrained_columns"] == ["person_id"]
        assert insp.get_pk_constraint("guardianships")["constrained_columns"] == [
            "child_id", "guardian_id"]
        assert {i["name"] for i in insp.get_indexes("persons")} == {"ix_persons_county"}
        assert {i["name"] for i in insp.get_indexes("guardianships")} == {
            "ix_guardianships_guardian"}
        fks = insp.get_foreign_keys("guardianships")
        assert sorted(f["constrained_columns"][0] for f in fks) == ["child_id", "guardian_id"]
        assert all(f["options"].get("ondelete") == "CASCADE" for f in fks)
        with pytest.raises(RegisterError):
            pg.generate(10, seed=1)  # not empty any more
        # the change path still works on the bulk-loaded register
        pid = _everything(pg)[0][-1][0]
        change = pg.record_move(pid, "09" if pg.home_county(pid) != "09" else "08")
        assert change.seq == 1
    finally:
        pg.close()
        lite.close()
