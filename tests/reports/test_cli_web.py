"""``listning report ...`` as an operator runs it, and the operator port's /reports pages."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from producers.config import REGIONS_DIR
from producers.reports import cli
from producers.reports.progress import Progress
from producers.storage.models import AccessLog

REPO = Path(__file__).resolve().parents[2]
LISTNING = REPO / ".venv" / "bin" / "listning"


def db_url(region) -> str:
    return region.db.engine.url.render_as_string(hide_password=False)


def wired() -> bool:
    """Whether the lead has wired ``listning report`` into the real command yet."""
    if not LISTNING.exists():
        return False
    r = subprocess.run([str(LISTNING), "report", "--help"], capture_output=True, text=True,
                       timeout=60)
    return r.returncode == 0 and "settlement" in r.stdout


def command() -> list[str]:
    """The real ``listning`` once wired; until then the same ``register``d parser."""
    if wired():
        return [str(LISTNING)]
    return [sys.executable, "-m", "producers.reports.cli"]


def test_cli_listed_to_a_file_and_the_access_log(october, tmp_path, capsys):
    r01 = october.regions["01"]
    out = tmp_path / "listed.csv"
    rc = cli.main(["report", "listed", "--config", str(REGIONS_DIR / "01.toml"),
                   "--db", db_url(r01), "--at", "2026-10-31", "--out", str(out),
                   "--operator", "test-operator"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    got = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(got) == 7
    assert sum(1 for r in got if r["home_county"] != "01") == 4
    assert "7 residents listed at the end of 2026-10-31 (4 from other counties)" in printed.out
    assert not re.search(r"\d{12}", printed.out + printed.err)  # no person ids in the summary
    assert "\r" not in printed.err  # no progress bar when stderr is not a terminal
    assert not (tmp_path / "listed.csv.part").exists()
    with r01.db.transaction() as s:
        logged = s.execute(select(AccessLog).where(AccessLog.contract == "Report:listed")
                           ).scalars().all()
    assert [(r.actor_type, r.actor_id, r.person_id) for r in logged][-1] == (
        "OPERATOR", "test-operator", None)


def test_cli_format_from_the_file_name(october, tmp_path, capsys):
    r01 = october.regions["01"]
    out = tmp_path / "settlement.html"
    assert cli.main(["report", "settlement", "--region", "01", "--db", db_url(r01),
                     "--month", "2026-10", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<span id="theirs-here">4</span>' in html
    assert "4 residents of other regions here, 2 of ours elsewhere" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["listed", "--region", "99"], "unknown region '99'"),
    (["settlement", "--region", "01", "--month", "2026-13"], "bad month '2026-13'"),
    (["listed", "--region", "01", "--at", "31/10/2026"], "bad date '31/10/2026'"),
    (["listed", "--config", str(REGIONS_DIR / "01.toml"), "--region", "08"],
     "is region 01, not 08"),
    (["listed", "--region", "01", "--db", "sqlite:////nonexistent/region-01.sqlite"],
     "no region database at /nonexistent/region-01.sqlite"),
    (["listed"], "say which region"),
])
def test_cli_errors_are_one_readable_line(args, message, capsys):
    assert cli.main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("listning report: error: ")
    assert message in err


def test_cli_region_without_shipped_configuration_is_one_readable_line(capsys):
    from interactions import identifiers as ids
    from producers.reports.source import shipped_regions

    missing = sorted(set(ids.counties()) - set(shipped_regions()))
    if not missing:
        pytest.skip("every county ships a configuration")
    assert cli.main(["report", "listed", "--region", missing[0]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"unknown region '{missing[0]}': no configuration shipped" in err


def test_the_installed_command_answers_errors_readably():
    for args, message in ((["settlement", "--region", "01", "--month", "2026-13"],
                           "bad month '2026-13'"),
                          (["listed", "--region", "99"], "unknown region '99'")):
        r = subprocess.run([*command(), "report", *args], capture_output=True, text=True,
                           timeout=120, cwd=REPO)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr


def test_pilot_data_dir(october, tmp_path, capsys):
    r08 = october.regions["08"]
    if not r08.db.is_sqlite:
        pytest.skip("the pilot keeps SQLite files")
    pilot = tmp_path / "pilot"
    region_dir = pilot / "regions" / "08"
    region_dir.mkdir(parents=True)
    src = sqlite3.connect(r08.db.engine.url.database)
    dst = sqlite3.connect(region_dir / "region-08.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    (pilot / "endpoints.json").write_text(json.dumps({"regions": {"08": {
        "config": str(REGIONS_DIR / "08.toml"), "data_dir": str(region_dir)}}}))

    assert cli.main(["report", "out-of-county", "--data-dir", str(pilot), "--region", "08",
                     "--at", "2026-10-31", "--with-persons"]) == 0
    printed = capsys.readouterr()
    got = list(csv.DictReader(io.StringIO(printed.out)))
    o = october
    assert {r["person_id"] for r in got} >= {o.p["a"], o.p["n"]}  # listed in 01
    assert all(r["listing_county"] != "08" for r in got)
    assert cli.main(["report", "listed", "--data-dir", str(pilot), "--region", "01"]) == 2
    assert "the pilot in" in capsys.readouterr().err


def test_progress_bar_only_on_a_terminal():
    quiet = io.StringIO()
    p = Progress("listed", 10, stream=quiet)
    p.tick(10)
    p.close()
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    p = Progress("listed", 10, stream=shown, enabled=True)
    p.tick(10)
    p.close()
    assert "10/10 rows" in shown.getvalue() and "100%" in shown.getvalue()


def test_operator_port_reports(october):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from producers.reports.web import reports_app

    r01 = october.regions["01"]

    async def scenario() -> None:
        app = web.Application()
        app.add_subapp("/reports/", reports_app(r01.db, r01.config))
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/reports/listed?at=2026-10-31")
            html = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert '<span id="total-listed">7</span>' in html and "<svg" in html
            assert october.p["a"] not in html  # figures only on the web
            r = await client.get("/reports/listed?at=2026-10-31&format=csv")
            rows = list(csv.DictReader(io.StringIO(await r.text())))
            assert next(x for x in rows if x["group"] == "total")["listed"] == "7"
            r = await client.get("/reports/settlement?month=2026-10&format=csv")
            rows = list(csv.DictReader(io.StringIO(await r.text())))
            assert {x["counterpart"]: x["theirs_here_at_month_end"] for x in rows} == {
                "03": "2", "08": "2", "total": "4"}
            r = await client.get("/reports/out-of-county?at=2026-10-31")
            assert '<span id="total-out">2</span>' in await r.text()
            r = await client.get("/reports/settlement?month=2026-13")
            assert r.status == 400 and "bad month '2026-13'" in await r.text()
            r = await client.get("/reports/listed?at=yesterday")
            assert r.status == 400 and "bad date" in await r.text()
            r = await client.get("/reports/")
            assert "settlement?month=" in await r.text()

    asyncio.run(scenario())


def test_cli_settlement_persons_are_one_csv_table(october, capsys):
    o, r01 = october, october.regions["01"]
    assert cli.main(["report", "settlement", "--region", "01", "--db", db_url(r01),
                     "--month", "2026-10", "--with-persons", "--operator", "ekonomi"]) == 0
    printed = capsys.readouterr()
    got = list(csv.DictReader(io.StringIO(printed.out)))
    assert all(set(r) == set(got[0]) and None not in r for r in got)  # one table
    mover = [r for r in got if r["person_id"] == o.p["m"]]
    assert [(r["direction"], r["counterpart"], r["at_month_end"], r["end_reason"])
            for r in mover] == [("theirs_here", "03", "True", ""),  # paid by 03 from the move
                                ("theirs_here", "08", "False", "moved")]  # by 08 until then
    ended_h = next(r for r in got if r["person_id"] == o.p["h"])
    assert (ended_h["direction"], ended_h["counterpart"], ended_h["ended_in_month"]) == (
        "ours_there", "08", "True")
    assert sum(r["at_month_end"] == "True" and r["direction"] == "theirs_here"
               for r in got) == 4
    with r01.db.transaction() as s:
        actors = s.execute(select(AccessLog.actor_id).where(
            AccessLog.contract == "Report:settlement")).scalars().all()
    assert "ekonomi" in actors
    assert not re.search(r"\d{12}", printed.err)  # the summary line on stderr: no person ids
