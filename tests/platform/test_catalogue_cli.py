"""``listning tak ...`` through the real command line, as an operator runs it.

Each process start costs about two seconds (the CLI imports every part of the project), so
the main flow and the server run as real processes and the many error cases run the same
``listning.cli.main`` in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from listning.cli import main
from routing.snapshot import Snapshot

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = REPO / ".venv" / "bin" / "listning"
LISTNING = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "listning"]
STHLM = "SE2321000016-LST1"
KALMAR = "SE2321000073-LST8"
ESERVICE = "SE5565594230-1177"


def tak(db: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LISTNING_TAK_DB": db}
    done = subprocess.run([*LISTNING, "tak", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def in_process(db: str, *args: str) -> int:
    return main(["tak", *args, "--db", db])


def test_an_operator_connects_two_regions_permits_publishes_and_exports(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = f"sqlite:///{tmp_path / 'tak.db'}"
    tak(db, "connect-region", "08", "--url", "https://127.0.0.1:9008", "--hsa-id", KALMAR,
        "--from", "2026-01-01")
    assert in_process(db, "connect-region", "01", "--url", "https://127.0.0.1:9001",
                      "--hsa-id", STHLM) == 0
    assert in_process(db, "permit", ESERVICE, "all", "*") == 0
    assert in_process(db, "permit", STHLM, "UpdateListing", "08") == 0
    assert in_process(db, "set-timeout", "CreateListing", "20") == 0
    capsys.readouterr()

    listed = tak(db, "list").stdout
    assert "published: nothing yet" in listed
    assert "https://127.0.0.1:9008/CreateListing/2/rivtabp21" in listed
    assert "25 change(s) not published" in listed  # 16 routes + 8 + 1 permissions

    assert in_process(db, "publish") == 0
    assert capsys.readouterr().out.startswith("published ")
    assert in_process(db, "list") == 0
    assert "everything is published" in capsys.readouterr().out

    out = tmp_path / "tak.toml"
    tak(db, "export", "--out", str(out))
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert in_process(copy, "import", str(out)) == 0
    capsys.readouterr()
    assert in_process(copy, "export") == 0
    assert capsys.readouterr().out == out.read_text(encoding="utf-8")

    assert in_process(db, "remove-component", KALMAR.lower()) == 0
    removed = capsys.readouterr().out
    assert "8 endpoint(s), 8 route(s)" in removed
    assert "revoked by removing the component" in removed
    assert in_process(db, "list") == 0
    assert "removed, still published" in capsys.readouterr().out


def test_a_refused_command_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    done = tak(f"sqlite:///{tmp_path / 'tak.db'}", "connect-region", "02", "--url",
               "https://127.0.0.1:9", "--hsa-id", STHLM, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: '02' is not a county code; the counties are 01, 03, 04, 05, 06, 07, 08, 09, "
        "10, 12, 13, 14, 17, 18, 19, 20, 21, 22, 23, 24, 25"]


@pytest.mark.parametrize(("args", "says"), [
    (("connect-region", "02", "--url", "https://127.0.0.1:9", "--hsa-id", STHLM),
     "'02' is not a county code"),
    (("connect-region", "01", "--url", "ftp://x", "--hsa-id", STHLM), "http:// or https://"),
    (("permit", "someone", "GetListing", "01"), "is not an HSA-id"),
    (("permit", ESERVICE, "NoSuchContract", "01"), "unknown service contract 'NoSuchContract'"),
    (("permit", ESERVICE, "GetListing", "01", "--from", "2026-02-30"), "is not a date"),
    (("remove-component", STHLM), "no service component"),
    (("import", "/nonexistent/tak.toml"), "No such file or directory"),
    (("list", "--db", "postgresql://nobody@127.0.0.1:1/none"),
     "cannot open the catalogue database"),
])
def test_errors_are_one_readable_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 args: tuple[str, ...], says: str) -> None:
    db = f"sqlite:///{tmp_path / 'tak.db'}"
    assert main(["tak", *args] if "--db" in args else ["tak", *args, "--db", db]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines


def test_overlap_is_refused_on_the_command_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    db = f"sqlite:///{tmp_path / 'tak.db'}"
    assert in_process(db, "permit", ESERVICE, "GetListing", "01", "--from", "2026-01-01",
                      "--to", "2026-01-31") == 0
    assert in_process(db, "permit", ESERVICE, "GetListing", "01", "--from", "2026-02-01") == 0
    assert in_process(db, "permit", ESERVICE, "GetListing", "01", "--from", "2026-01-31",
                      "--to", "2026-01-31") == 2
    assert "would overlap" in capsys.readouterr().err


def test_serve_serves_the_published_snapshot_until_stopped(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tak.db'}"
    assert in_process(db, "connect-region", "08", "--url", "http://127.0.0.1:9008",
                      "--hsa-id", KALMAR) == 0
    assert in_process(db, "publish") == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*LISTNING, "tak", "serve", "--db", db, "--port", "0"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "catalogue service listening on http://127.0.0.1:" in line, proc.stderr.read()
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/snapshot", timeout=10) as resp:
            served = Snapshot.from_json(resp.read().decode())
        assert {r.logical_address for r in served.routes} == {"08"}
        with urllib.request.urlopen(url + "/status", timeout=10) as resp:
            assert json.loads(resp.read())["routes"] == 8
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
