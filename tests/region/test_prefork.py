"""``listning region serve --processes N``: one region served by several processes (real
processes, real PostgreSQL, mutual TLS), and stopped without leaving any behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import requests

from interactions.contracts import SOAP11_ENV, all_contracts
from interactions.identifiers import (
    COUNTY_OID,
    LISTING_TYPE_CODE_SYSTEM,
    LISTING_TYPE_PV,
    make_personal_id,
    personal_id_root,
)
from listning.supervisor import free_port
from routing import pki

REPO = Path(__file__).resolve().parents[2]
PLATFORM_ID = "SE165565594230-VP01"
REGION_01 = "SE2321000016-LIST"
CORE = "urn:riv:supportprocess:logistics:carelisting:2"


@dataclass(frozen=True)
class Certs:
    ca: Path
    platform: pki.Identity
    region: pki.Identity


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(d)
    return Certs(ca.cert, pki.issue(d, "platform", PLATFORM_ID, ca=ca),
                 pki.issue(d, "region01", REGION_01, ca=ca))


def command(certs: Certs, data_dir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "listning", "region", "serve",
            "--config", str(REPO / "producers/regions/01.toml"), "--data-dir", str(data_dir),
            "--host", "127.0.0.1", "--port", str(port), "--cert", str(certs.region.cert),
            "--key", str(certs.region.key), "--ca", str(certs.ca),
            "--platform-url", f"https://127.0.0.1:{free_port()}",
            "--platform-hsa-id", PLATFORM_ID, *extra]


@dataclass
class Running:
    proc: subprocess.Popen
    url: str
    log: Path

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]


def start(argv: list[str], work: Path, timeout: float = 120) -> Running:
    out, log = work / "stdout.txt", work / "stderr.txt"
    with out.open("wb") as stdout, log.open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = out.read_text()
        if "listening on" in line:
            return Running(proc, line.split("listening on", 1)[1].split()[0], log)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(proc)
    raise AssertionError(f"the region did not start:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def gone(pid: int) -> bool:
    """The process has ended (a zombie left for a non-reaping init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def create_listing(pid: str) -> bytes:
    ns = all_contracts()["CreateListing"].namespace
    ii = (f"<core:root>{personal_id_root(pid)}</core:root>"
          f"<core:extension>{pid}</core:extension>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}">'
            '<soap:Header><LogicalAddress xmlns="urn:riv:itintegration:registry:1">01'
            f'</LogicalAddress></soap:Header><soap:Body><CreateListing xmlns="{ns}" '
            f'xmlns:core="{CORE}"><actor><core:actorId>{ii}</core:actorId>'
            f"<core:actorType>CITIZEN</core:actorType></actor><personId>{ii}</personId>"
            "<healthcareFacilityHSAId>SE2321000016-01VC</healthcareFacilityHSAId>"
            f"<listingType><core:code>{LISTING_TYPE_PV}</core:code><core:codeSystem>"
            f"{LISTING_TYPE_CODE_SYSTEM}</core:codeSystem></listingType><homeCounty>"
            f"<core:root>{COUNTY_OID}</core:root><core:extension>01</core:extension>"
            "</homeCounty></CreateListing>"
            "</soap:Body></soap:Envelope>").encode()


def residents(n: int, seed: int) -> list[str]:
    out: set[str] = set()
    i = 0
    while len(out) < n:
        i += 1
        born = date(1950 + (seed + i) % 40, 1 + i % 12, 1 + (i * 7) % 28)
        out.add(make_personal_id(born, (seed * 31 + i) % 1000))
    return sorted(out)


@pytest.fixture
def region(certs: Certs, pg_database: str, tmp_path: Path) -> Iterator[Running]:
    running = start(command(certs, tmp_path / "data", 0, "--db", pg_database,
                            "--processes", "2"), tmp_path)
    try:
        yield running
    finally:
        stop(running.proc)


def test_a_sqlite_region_refuses_more_than_one_process(certs: Certs, tmp_path: Path) -> None:
    done = subprocess.run(command(certs, tmp_path / "data", free_port(), "--processes", "2"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr and "SQLite" in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.postgres
def test_processes_share_the_port_and_all_stop_on_sigterm(region: Running, certs: Certs) -> None:
    children = region.children()
    assert len(children) == 2
    before = {c: cpu_ticks(c) for c in children}
    path = region.url + all_contracts()["CreateListing"].path

    def client(pids: list[str]) -> list[int]:
        with requests.Session() as s:  # one keep-alive connection per client
            s.trust_env, s.verify = False, str(certs.ca)
            s.cert = (str(certs.platform.cert), str(certs.platform.key))
            return [int(b"<resultCode>OK</resultCode>" in s.post(
                path, data=create_listing(pid), timeout=60,
                headers={"Content-Type": "text/xml; charset=utf-8"}).content) for pid in pids]

    people = residents(64, seed=os.getpid())
    with ThreadPoolExecutor(16) as pool:  # 16 connections: the kernel spreads them
        answers = [a for got in pool.map(client, [people[i::16] for i in range(16)])
                   for a in got]
    assert sum(answers) == len(people)
    used = {c: cpu_ticks(c) - before[c] for c in children}
    assert all(t >= 3 for t in used.values()), f"CPU ticks per process: {used}"
    log = region.log.read_text()
    assert log.count("with the outbox and feed workers") == 1

    region.proc.send_signal(signal.SIGTERM)
    assert region.proc.wait(timeout=120) == 0
    assert wait_gone(children, 10)


@pytest.mark.postgres
def test_a_process_that_dies_stops_the_region(region: Running) -> None:
    first, second = region.children()
    os.kill(second, signal.SIGKILL)
    assert region.proc.wait(timeout=120) == 1
    assert wait_gone([first, second], 10)
    assert "ended with status -9" in region.log.read_text()


@pytest.mark.postgres
def test_no_process_outlives_a_killed_parent(region: Running) -> None:
    children = region.children()
    region.proc.kill()  # SIGKILL: the parent can do nothing about it
    region.proc.wait()
    assert wait_gone(children, 60), "children still running after the parent was killed"
