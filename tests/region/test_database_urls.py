"""Which database a region's commands open, and the URLs they accept.

Every command that opens a region's database from its TOML file (``region serve``,
``region init-db``, the reports) takes the first of: the command line's URL, the file's
``database_url``, SQLite in the command line's ``--data-dir``, else in the file's ``data_dir``.
A bare ``postgresql://user@host/db`` works wherever a URL is taken (checked against the real
PostgreSQL server when it is reachable; each test makes and drops its own database, the
``pg_database`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from listning.cli import main
from listning.supervisor import Service, free_port
from producers.config import REGIONS_DIR
from producers.population.register import PopulationRegister
from producers.population.test_persons import KALMAR_RESIDENT
from routing import pki

PLATFORM_ID = "SE165565594230-VP01"
REGION_TABLES = {"persons", "listings", "outbox", "access_log"}


def region_file(directory: Path, **region_keys: str) -> Path:
    """Region 08's shipped file with its ``data_dir`` line replaced by ``region_keys``."""
    text_ = (REGIONS_DIR / "08.toml").read_text(encoding="utf-8")
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in region_keys.items())
    assert 'data_dir = "region-data"\n' in text_
    path = directory / "region-08.toml"
    path.write_text(text_.replace('data_dir = "region-data"\n', lines), encoding="utf-8")
    return path


def tables(url: str) -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def sqlite_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.sqlite")}


# --- which database -----------------------------------------------------------------------------

@pytest.mark.parametrize("region_keys,options,expected", [
    ({"data_dir": "{tmp}/toml-dir"}, [], "toml-dir/region-08.sqlite"),
    ({"data_dir": "{tmp}/toml-dir"}, ["--data-dir", "{tmp}/cli-dir"], "cli-dir/region-08.sqlite"),
    ({"data_dir": "{tmp}/toml-dir", "database_url": "sqlite:///{tmp}/named.sqlite"},
     ["--data-dir", "{tmp}/cli-dir"], "named.sqlite"),
    ({"database_url": "sqlite:///{tmp}/named.sqlite"},
     ["--database-url", "sqlite:///{tmp}/given.sqlite", "--data-dir", "{tmp}/cli-dir"],
     "given.sqlite"),
], ids=["toml-data-dir", "cli-data-dir", "toml-url-over-data-dir", "cli-url-over-all"])
def test_init_db_takes_the_first_database_given(region_keys, options, expected, tmp_path,
                                                capsys):
    keys = {k: v.format(tmp=tmp_path) for k, v in region_keys.items()}
    config = region_file(tmp_path, **keys)
    argv = ["region", "init-db", "--config", str(config),
            *(o.format(tmp=tmp_path) for o in options)]
    assert main(argv) == 0
    assert sqlite_files(tmp_path) == {expected}
    assert str(tmp_path / expected) in capsys.readouterr().out
    assert tables(f"sqlite:///{tmp_path / expected}") >= REGION_TABLES


def test_reports_read_the_database_the_region_file_names(tmp_path, capsys):
    """The pilot's region directory stands for ``--data-dir``: a ``database_url`` in the
    region's file comes first, as it does for ``region serve``."""
    named = tmp_path / "named.sqlite"
    config = region_file(tmp_path, database_url=f"sqlite:///{named}")
    assert main(["region", "init-db", "--config", str(config)]) == 0
    pilot = tmp_path / "pilot"
    (pilot / "regions" / "08").mkdir(parents=True)  # no database in it
    (pilot / "endpoints.json").write_text(json.dumps({"regions": {"08": {
        "config": str(config), "data_dir": str(pilot / "regions" / "08")}}}), encoding="utf-8")
    capsys.readouterr()
    for where in (["--config", str(config)], ["--data-dir", str(pilot), "--region", "08"]):
        assert main(["report", "listed", *where, "--totals-only", "--format", "csv"]) == 0, where
        out = capsys.readouterr().out
        assert out.startswith("group,code,name,listed") and "SE2321000073-01HC" in out
    assert sqlite_files(tmp_path) == {"named.sqlite"}


@pytest.mark.parametrize("region_lines,problem", [
    ({"database_url": "not a url :: secret"}, "region.database_url: expected a database URL"),
    ({"database_url": "mysql://u:pw@db/region08"}, "region.database_url: expected a database URL"),
    ({"data_dir": ""}, "region.data_dir: empty"),
    ({"databse_url": "sqlite:///x.sqlite"}, "region.databse_url: unknown key"),
])
def test_check_config_names_a_bad_database_setting(region_lines, problem, tmp_path, capsys):
    config = region_file(tmp_path, **region_lines)
    assert main(["region", "check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: {problem}" in err
    assert "secret" not in err and "pw@" not in err  # a URL may hold a password


# --- region serve ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(d)
    me = pki.issue(d, "region08", "SE2321000073-LIST", ca=ca)
    return {"cert": me.cert, "key": me.key, "ca": ca.cert}


def serve_region(config: Path, certs: dict[str, Path], log: Path, *options: str) -> Service:
    """``listning region serve`` until it listens; the caller stops it."""
    port = free_port()
    argv = [sys.executable, "-m", "listning", "region", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--port", str(port), "--cert", str(certs["cert"]),
            "--key", str(certs["key"]), "--ca", str(certs["ca"]),
            "--platform-url", f"https://127.0.0.1:{free_port()}",
            "--platform-hsa-id", PLATFORM_ID, *options]
    service = Service("region 08", argv, port, log, ready_timeout=120)
    service.start()
    try:
        service.wait_ready()
    except Exception:
        service.stop()
        raise
    return service


def stop_cleanly(service: Service) -> list[str]:
    """SIGTERM, as an operator would: exit 0 after "stopped"; the log's lines."""
    service.stop(grace=30)
    lines = service.log_path.read_text(encoding="utf-8").splitlines()
    assert service.proc is not None and service.proc.returncode == 0, lines[-20:]
    assert lines[-1].endswith("stopped"), lines[-5:]
    assert f"region 08 listening on https://127.0.0.1:{service.port}" in lines
    return lines


def test_serve_without_data_dir_keeps_sqlite_in_the_files_data_dir(tmp_path, certs):
    config = region_file(tmp_path, data_dir=str(tmp_path / "toml-dir"))
    service = serve_region(config, certs, tmp_path / "serve.log")
    lines = stop_cleanly(service)
    assert any("database SQLite" in line for line in lines)
    assert sqlite_files(tmp_path) == {"toml-dir/region-08.sqlite"}
    assert tables(f"sqlite:///{tmp_path / 'toml-dir' / 'region-08.sqlite'}") >= REGION_TABLES


# --- bare postgresql:// URLs, on the real server --------------------------------------------------

@pytest.mark.postgres
def test_serve_opens_the_postgresql_database_the_region_file_names(tmp_path, certs, pg_database):
    """A bare postgresql:// URL in the region's file; ``--data-dir`` does not move it."""
    config = region_file(tmp_path, database_url=pg_database)
    service = serve_region(config, certs, tmp_path / "serve.log",
                           "--data-dir", str(tmp_path / "cli-dir"))
    lines = stop_cleanly(service)
    assert any("database PostgreSQL" in line for line in lines)
    assert tables(pg_database) >= REGION_TABLES  # migrated by serve
    assert sqlite_files(tmp_path) == set()


@pytest.mark.postgres
def test_init_db_and_reports_take_a_bare_postgresql_url(tmp_path, pg_database, capsys):
    config = region_file(tmp_path)
    assert main(["region", "init-db", "--config", str(config), "--database-url", pg_database]) == 0
    assert tables(pg_database) >= REGION_TABLES
    capsys.readouterr()
    assert main(["report", "listed", "--config", str(config), "--db", pg_database,
                 "--totals-only", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("group,code,name,listed")
    named = region_file(tmp_path, database_url=pg_database)  # the same, from the region's file
    assert main(["report", "out-of-county", "--config", str(named)]) == 0


@pytest.mark.postgres
def test_the_population_register_takes_a_bare_postgresql_url(pg_database, capsys):
    pid = KALMAR_RESIDENT.person_id  # a test person: added on top of the generated ones
    assert main(["population", "generate", "--db", pg_database, "-n", "30",
                 "--counties", "08"]) == 0
    assert main(["population", "move", "--db", pg_database, pid, "--to", "01"]) == 0
    capsys.readouterr()
    assert main(["population", "show", "--db", pg_database, pid]) == 0
    assert json.loads(capsys.readouterr().out)["county"] == "01"
    register = PopulationRegister(pg_database)
    try:
        assert register.count() >= 30
        assert [c.person_id for c in register.changes_since(0)] == [pid]
    finally:
        register.close()


def test_pg_reachable_tells_a_server_that_answers_from_one_that_does_not(pg_database):
    from listning.runtime import pg_reachable

    assert pg_reachable(pg_database)  # a bare postgresql:// URL, as the benchmarks take it
    closed = pg_database.replace(":5432/", f":{free_port()}/")
    assert closed != pg_database
    assert not pg_reachable(closed, timeout=1)
