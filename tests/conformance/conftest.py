"""Fixtures for the conformance suite's own tests: real processes over mutual TLS.

One region 08 producer (``listning region serve``) with a population register, shared by the
module's runs; every run gets fresh persons from the register, so runs do not see each other's
listings. Broken producers are our producer behind a small aiohttp proxy that breaks one thing.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from consumers.conformance.testdata import population_persons, write_region_testdata
from listning.supervisor import Service, free_port
from producers.population.register import PopulationRegister
from routing import pki

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
TESTER = "SE5565594230-CONF"
PLATFORM = "SE5565594230-NTJP"
CONFIG_08 = REPO / "producers" / "regions" / "08.toml"


@dataclass
class Pki:
    ca: Path
    tester_cert: Path
    tester_key: Path
    region_cert: Path
    region_key: Path
    platform_cert: Path
    platform_key: Path

    def client_args(self) -> list[str]:
        return ["--cert", str(self.tester_cert), "--key", str(self.tester_key),
                "--ca", str(self.ca)]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(d)
    tester = pki.issue(d, "tester", TESTER)
    region = pki.issue(d, "region-08", "SE2321000073-LIST")
    platform = pki.issue(d, "platform", PLATFORM)
    return Pki(ca.cert, tester.cert, tester.key, region.cert, region.key, platform.cert,
               platform.key)


def _start(service: Service) -> Service:
    service.start()
    try:
        service.wait_ready()
    except RuntimeError:
        service.stop()
        log = service.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{service.name} did not start:\n{log}") from None
    return service


@pytest.fixture(scope="session")
def population_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('population') / 'population.sqlite'}"
    reg = PopulationRegister(url)
    reg.generate(300, seed=7, counties=["01", "08"])
    reg.close()
    return url


@pytest.fixture(scope="session")
def population_url(population_db: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[str]:
    port = free_port()
    logs = tmp_path_factory.mktemp("logs")
    code = ("from producers.population.api import serve; "
            f"serve({population_db!r}, '127.0.0.1', {port})")
    svc = _start(Service("population", [PY, "-c", code], port, logs / "population.log"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        svc.stop()


def _region(county: str, certs: Pki, population_url: str, d: Path) -> Service:
    port, dead = free_port(), free_port()
    cert = certs.region_cert  # any CA-issued server certificate will do for the tests
    return _start(Service(f"region-{county}", [
        PY, "-m", "listning", "region", "serve",
        "--config", str(REPO / "producers" / "regions" / f"{county}.toml"),
        "--data-dir", str(d / "data"), "--host", "127.0.0.1", "--port", str(port),
        "--cert", str(cert), "--key", str(certs.region_key), "--ca", str(certs.ca),
        "--platform-url", f"https://127.0.0.1:{dead}", "--platform-hsa-id", TESTER,
        "--platform-hsa-id", PLATFORM,
        "--population-url", population_url, "--send-timeout", "2"],
        port, d / "region.log", ready_timeout=90))


@pytest.fixture(scope="session")
def region01(certs: Pki, population_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """Region Stockholm's producer: staff, regional listing types, both guardians' consent;
    with no platform behind it, it refuses cross-region listings ("try again later")."""
    svc = _region("01", certs, population_url, tmp_path_factory.mktemp("region01"))
    try:
        yield f"https://127.0.0.1:{svc.port}"
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def region08(certs: Pki, population_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """Region Kalmar län's producer; the platform and, for direct runs, the tester may call.
    Its platform URL leads nowhere: cross-region notifications go to the outbox (08's rule)."""
    svc = _region("08", certs, population_url, tmp_path_factory.mktemp("region08"))
    try:
        yield f"https://127.0.0.1:{svc.port}"
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def platform08(region08: str, certs: Pki, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[str]:
    """The service platform (``listning platform serve``) routing county 08 to region08 and
    permitting the tester, from a catalogue snapshot file."""
    from routing.catalogue.service import Catalogue

    d = tmp_path_factory.mktemp("platform")
    cat = Catalogue(f"sqlite:///{d / 'tak.db'}")
    try:
        cat.connect_region("08", region08, "SE2321000073-LIST")
        cat.permit(TESTER, "all", "08")
        (d / "snapshot.json").write_text(cat.publish().to_json(), encoding="utf-8")
    finally:
        cat.close()
    port, ops = free_port(), free_port()
    svc = _start(Service("platform", [
        PY, "-m", "listning", "platform", "serve", "--catalogue", str(d / "snapshot.json"),
        "--host", "127.0.0.1", "--port", str(port), "--cert", str(certs.platform_cert),
        "--key", str(certs.platform_key), "--ca", str(certs.ca), "--ops-port", str(ops),
        "--state-dir", str(d / "state"), "--instance-name", "test-vp"],
        port, d / "platform.log", ready_timeout=90))
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def used_persons() -> set[str]:
    return set()


@pytest.fixture
def testdata_08(population_db: str, used_persons: set[str], tmp_path: Path) -> Path:
    """Test data for region 08 with persons from the register that no other run has listed."""
    persons = population_persons(population_db, "08", "01", used_persons)
    return write_region_testdata(CONFIG_08, tmp_path / "testdata-08.toml", persons)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def line(self, case_start: str) -> str:
        for ln in self.stdout.splitlines():
            if ln[6:].startswith(case_start):
                return ln
        raise AssertionError(f"no case {case_start!r} in the output:\n{self.stdout}")

    def verdict(self, case_start: str) -> str:
        return self.line(case_start)[:4]

    @property
    def counts(self) -> tuple[int, int]:
        m = re.fullmatch(r"(\d+) passed, (\d+) failed", self.stdout.rstrip("\n").splitlines()[-1])
        assert m, f"the last line is not 'N passed, N failed':\n{self.stdout}"
        return int(m[1]), int(m[2])


def run_cli(*args: str, timeout: float = 150) -> Run:
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    p = subprocess.run([PY, "-m", "consumers.conformance", *args], capture_output=True,
                       text=True, timeout=timeout, cwd=REPO, env=env)
    return Run(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session")
def mock08(certs: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    svc = _start(Service("mock-producer", [
        PY, "-m", "consumers.conformance", "mock-producer", "--county", "08",
        "--port", str(port), "--cert", str(certs.region_cert), "--key", str(certs.region_key),
        "--ca", str(certs.ca), "--slow-seconds", "0.5"], port, log))
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        svc.stop()


@pytest.fixture(name="run_cli")
def run_cli_fixture() -> Callable[..., Run]:
    """Run ``python -m consumers.conformance ARGS`` (the CLI the lead wires into listning)."""
    return run_cli


@pytest.fixture
def conformance(certs: Pki) -> Callable[..., Run]:
    def run(endpoint: str, data: Path, *extra: str, tls: bool = True) -> Run:
        return run_cli("conformance", "--endpoint", endpoint, "--county", "08",
                       "--data", str(data), *(certs.client_args() if tls else ()), *extra)
    return run


# --- broken producers: our producer behind a proxy that breaks one thing -------------------------

Breaker = Callable[[str, bytes, bytes], "bytes | web.Response | None"]


class BreakingProxy:
    """Plain-HTTP front for the real producer (mutual TLS behind it). ``breakers`` see
    (contract path, request body, response body) and may return a replacement body or a whole
    response; ``delays`` hold seconds to wait per contract name."""

    def __init__(self, upstream: str, certs: Pki, breakers: list[Breaker],
                 delays: dict[str, float] | None = None,
                 hang_if: Callable[[bytes], bool] | None = None) -> None:
        self.upstream, self.breakers, self.delays = upstream, breakers, delays or {}
        self.hang_if = hang_if
        self.ssl = ssl.create_default_context(cafile=str(certs.ca))
        self.ssl.load_cert_chain(str(certs.tester_cert), str(certs.tester_key))
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.hang_if is not None and self.hang_if(body):
            await asyncio.sleep(8)  # longer than the suite's --timeout in the tests
        for name, seconds in self.delays.items():
            if request.path.startswith(f"/{name}/"):
                await asyncio.sleep(seconds)
        for breaker in self.breakers:
            early = breaker(request.path, body, b"")
            if isinstance(early, web.Response):
                return early
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "soapaction", "x-skltp-correlation-id")}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body, headers=headers) as r:
            out, status, ctype = await r.read(), r.status, r.headers.get("Content-Type", "")
        for breaker in self.breakers:
            changed = breaker(request.path, body, out)
            if isinstance(changed, web.Response):
                return changed
            if changed is not None:
                out = changed
        return web.Response(status=status, body=out, headers={"Content-Type": ctype})

    async def _start(self) -> None:
        self._session = ClientSession(connector=TCPConnector(ssl=self.ssl),
                                      timeout=ClientTimeout(total=30))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def __enter__(self) -> BreakingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def broken(region08: str, certs: Pki) -> Callable[..., BreakingProxy]:
    def make(*breakers: Breaker, delays: dict[str, float] | None = None,
             hang_if: Callable[[bytes], bool] | None = None) -> BreakingProxy:
        return BreakingProxy(region08, certs, list(breakers), delays, hang_if)
    return make
