"""Migration 0002 adds the history tables to a region database that already has data: each
home record becomes an open period, so out-of-county reads the same before and after."""

from __future__ import annotations

import io
from datetime import date, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from producers.reports import build
from producers.reports.source import open_source
from producers.storage import open_database
from producers.storage.db import MIGRATIONS


def _t(*args: int) -> str:
    """A time as SQLAlchemy stores it in SQLite."""
    return datetime(*args).isoformat(sep=" ", timespec="microseconds")


def test_upgrade_keeps_what_the_home_records_say(tmp_path):
    path = tmp_path / "region-01.sqlite"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text(
            "INSERT INTO home_records (person_id, listing_county, since, effective_at, event_at,"
            " type_code, type_system) VALUES (:p, :c, :s, :e, :s, 'PV', 'x')"), [
            {"p": "195001010001", "c": "08", "s": _t(2026, 9, 1, 10), "e": _t(2026, 9, 2)},
            {"p": "195001010002", "c": "03", "s": _t(2026, 9, 1, 10),
             "e": _t(2026, 11, 1)},  # takes effect later
            {"p": "195001010003", "c": "01", "s": _t(2026, 9, 1, 10),
             "e": _t(2026, 9, 1, 10)}])
        conn.commit()
    engine.dispose()
    open_database(url).dispose()  # the region opens it: upgraded to the newest

    source = open_source(config=None, region="01", db=url)
    try:
        buf = io.BytesIO()
        october = build.write_out_of_county(source, date(2026, 10, 31), "csv", buf)
        november = build.write_out_of_county(source, date(2026, 11, 30), "csv", io.BytesIO())
    finally:
        source.close()
    assert october.figures["per_region"] == {"08": 1}
    assert november.figures["per_region"] == {"03": 1, "08": 1}
