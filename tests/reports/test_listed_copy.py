"""The ``listed`` person list on PostgreSQL is written by the database (``COPY ... TO STDOUT``);
it must be the same file, byte for byte, as the Python path makes (SQLite, HTML, xlsx)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime

import pytest

from producers.config import shipped_config
from producers.reports import build, data
from producers.reports.source import source_for
from producers.storage import open_database
from producers.storage.models import Listing, Person, QueueEntry

pytestmark = pytest.mark.postgres

AT = date(2026, 10, 31)
PV = ("PV", "1.2.752.129.2.2.1.18")


@pytest.fixture
def odd_region(pg_databases):
    """Region 01 with names that need quoting in CSV (comma, quote, line break, non-ASCII),
    listings with and without fixed doctor, an unknown unit, an ended and a future listing,
    queue places at two units."""
    dbs = pg_databases
    base = shipped_config("01")
    u0, u1, u2 = base.units[0], base.units[1], base.units[2]
    doctor = dataclasses.replace(u0.staff[0], name='Dr "Åsa", Öberg')
    units = (dataclasses.replace(u0, name="Vårdcentralen Gubbängen, Hus A", staff=(
                 doctor, *u0.staff[1:])),
             dataclasses.replace(u1, name='Mottagning "Söder"\nplan 2'),
             *base.units[2:])
    cfg = dataclasses.replace(base, units=units)
    db = open_database(dbs.url("r01"))
    t = datetime(2026, 9, 1, 8, 30)
    pids = [str(195001010000 + i) for i in range(12)]
    with db.transaction() as s:
        for i, pid in enumerate(pids):
            s.add(Person(person_id=pid, id_root="1.2.752.129.2.1.3.1",
                         home_county="01" if i % 3 else "08", updated_at=t))
        s.flush()
        for i, pid in enumerate(pids[:10]):
            unit = (u0, u1, u2)[i % 3]
            s.add(Listing(person_id=pid, unit_hsa_id=unit.hsa_id, type_code=PV[0],
                          type_system=PV[1],
                          personnel_hsa_id=doctor.hsa_id if unit is u0 and i % 2 else None,
                          home_county="01" if i % 3 else "08", valid_from=t, valid_to=None,
                          registered_at=t, origin="choice"))
        s.add(Listing(person_id=pids[10], unit_hsa_id="SE0000000000-GONE", type_code="X9",
                      type_system="local", personnel_hsa_id="SE0000000000-NOBODY",
                      home_county="03", valid_from=t, valid_to=None, registered_at=t,
                      origin="queue"))
        s.add(Listing(person_id=pids[11], unit_hsa_id=u0.hsa_id, type_code=PV[0],
                      type_system=PV[1], home_county="01", valid_from=t,
                      valid_to=datetime(2026, 10, 2), registered_at=t, origin="choice"))
        s.add(Listing(person_id=pids[11], unit_hsa_id=u1.hsa_id, type_code=PV[0],
                      type_system=PV[1], home_county="01", valid_from=datetime(2026, 11, 1),
                      valid_to=None, registered_at=t, origin="choice"))
        for n, (pid, unit) in enumerate([(pids[1], u1), (pids[4], u1), (pids[1], u2)]):
            s.add(QueueEntry(person_id=pid, unit_hsa_id=unit.hsa_id, type_code=PV[0],
                             type_system=PV[1], home_county="01",
                             queued_at=datetime(2026, 10, 1, 9, n)))
    try:
        yield cfg, db
    finally:
        db.dispose()


def _listed(cfg, db, monkeypatch, *, copy: bool) -> bytes:
    monkeypatch.setattr(data, "can_copy", lambda conn: copy)
    source = source_for(cfg, db.engine)
    buf = io.BytesIO()
    try:
        outcome = build.write_listed(source, AT, "csv", buf)
    finally:
        source.close()
    assert outcome.rows == 11
    return buf.getvalue()


def test_copy_and_python_paths_write_the_same_csv(odd_region, monkeypatch):
    cfg, db = odd_region
    by_copy = _listed(cfg, db, monkeypatch, copy=True)
    by_python = _listed(cfg, db, monkeypatch, copy=False)
    assert by_copy == by_python
    rows = list(csv.DictReader(io.StringIO(by_copy.decode("utf-8"), newline="")))
    assert len(rows) == 11  # the ended and the not yet started listing are not in force
    by_pid = {r["person_id"]: r for r in rows}
    queued = by_pid["195001010001"]
    assert queued["queue_status"] == ('queued at Mottagning "Söder"\nplan 2 (#1); '
                                      f"queued at {cfg.units[2].name} (#1)")
    assert by_pid["195001010004"]["queue_status"].endswith("(#2)")
    assert by_pid["195001010003"]["fixed_doctor_name"] == 'Dr "Åsa", Öberg'
    assert by_pid["195001010000"]["home_county_name"] == "Kalmar län"
    gone = by_pid["195001010010"]
    assert (gone["unit_name"], gone["listing_type_name"], gone["fixed_doctor_name"]) == (
        "", "X9", "")


def test_the_real_path_on_postgresql_is_copy(odd_region):
    cfg, db = odd_region
    source = source_for(cfg, db.engine)
    try:
        with source.snapshot() as conn:
            assert data.can_copy(conn)
    finally:
        source.close()
