"""Region configuration files and the ``listning region`` commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from listning.cli import main
from producers.config import REGIONS_DIR, ConfigError, load_config, shipped_config
from producers.storage import open_database


@pytest.mark.parametrize("county,units", [("01", (15, 30)), ("08", (8, 12)), ("03", (8, 12))])
def test_shipped_regions_are_valid_and_realistic(county, units):
    cfg = shipped_config(county)
    assert cfg.county == county
    assert units[0] <= len(cfg.units) <= units[1]
    assert cfg.hsa_id.startswith({"01": "SE2321000016", "08": "SE2321000073",
                                  "03": "SE2321000024"}[county])
    assert all(u.municipality.startswith(county) for u in cfg.units)
    assert any(u.cap <= 3 for u in cfg.units)  # a small unit to exercise queues
    assert cfg.listing_types[0].code == "PV"


def test_regions_differ_where_the_brief_says():
    sthlm, kalmar = shipped_config("01"), shipped_config("08")
    assert not sthlm.rules.passive_listing and kalmar.rules.passive_listing
    assert any(u.fixed_doctor_contact and u.staff for u in sthlm.units)
    assert all("Hälsocentralen" in u.name for u in kalmar.units)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_problem_is_reported_with_file_and_key(tmp_path):
    bad = write(tmp_path, """
[region]
county = "99"
name = "Region X"
hsa_id = "SE2321000016-LIST"

[rules]
takes_effect = "tomorrow"
changes_per_12_months = true

[[units]]
hsa_id = "SE123-1"
name = "Vårdcentralen"
municipality = "9999"
latitude = 10.0
longitude = 18.0
cap = 0
listing_types = ["XX"]
""")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    report = str(err.value)
    for key in ("region.county", "rules.takes_effect", "rules.changes_per_12_months",
                "units[0].hsa_id", "units[0].municipality", "units[0].latitude",
                "units[0].cap", "units[0].listing_types"):
        assert f"{bad}: {key}:" in report, key


def test_check_config_command(tmp_path, capsys):
    assert main(["region", "check-config", str(REGIONS_DIR / "01.toml")]) == 0
    assert "Region Stockholm" in capsys.readouterr().out
    bad = write(tmp_path, "[region]\ncounty = '01'\n")
    assert main(["region", "check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "region.name: missing" in err and "units: missing" in err
    assert main(["region", "check-config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["region", "check-config", str(write(tmp_path, "[region"))]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_init_db_creates_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    proc = subprocess.run([sys.executable, "-m", "listning", "region", "init-db", "--config",
                           str(REGIONS_DIR / "08.toml"), "--database-url", url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    db = open_database(url, upgrade=False)
    tables = set(inspect(db.engine).get_table_names())
    db.dispose()
    assert {"persons", "listings", "queue_entries", "home_records", "listing_changes", "outbox",
            "received_messages", "access_log", "feed_position"} <= tables
