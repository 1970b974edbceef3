"""A running stack for the e-service's tests, until (and unless) ``listning pilot`` is used.

- a population register (SQLite, a small generated population plus the test persons, and a
  teenager in Sara Lindberg's custody) served by its real HTTP API;
- regions 01 and 08 as real ``Region`` listing systems (SQLite), carrying UpdateListing to
  each other in process (``producers.inprocess.Network``);
- a stand-in for the service platform over HTTPS with mutual TLS: it routes each SOAP request
  on its LogicalAddress to the region (request and response validated against the XSDs),
  answers GetLogicalAddresseesByServiceContract at the platform's address from ``connected``,
  and returns the platform's VP faults (VP004 no route, VP009 for a county in ``broken``).

``start_pilot`` runs the real ``listning pilot`` instead and gives the tests the same handles.

Run the harness by hand for development: ``python tests/eservice/stack.py DIR`` prints the
URLs and the command line for ``listning eservice serve``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from interactions.contracts import SOAP11_ENV, by_namespace
from interactions.models import from_element, to_element
from interactions.validation import read_envelope, validate_element
from interactions.xmlload import parse_bytes
from producers.config import shipped_config
from producers.context import CallContext, local_now
from producers.inprocess import Network, create, ctx_for
from producers.population.api import ApiServer
from producers.population.register import PopulationRegister
from producers.population.test_persons import GUARDIAN
from producers.region import Region
from routing import pki

ESERVICE_HSA_ID = "SE5565594230-1177"
PLATFORM_ADDRESS = "SE5565594230-NTJP"
GLABSC_NS = ("urn:riv:infrastructure:itintegration:registry:"
             "GetLogicalAddresseesByServiceContractResponder:2")


def _soap(inner: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    etree.SubElement(env, f"{{{SOAP11_ENV}}}Body").append(inner)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _fault(code: str, side: str, message: str) -> web.Response:
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    f = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_ENV}}}Body"),
                         f"{{{SOAP11_ENV}}}Fault")
    etree.SubElement(f, "faultcode").text = f"soap:{side}"
    etree.SubElement(f, "faultstring").text = f"{code} [test-platform] {message}"
    etree.SubElement(etree.SubElement(f, "detail"), "detailString").text = message
    return web.Response(status=500, body=etree.tostring(env, xml_declaration=True,
                                                        encoding="UTF-8"),
                        content_type="text/xml", charset="utf-8")


@dataclass
class FakePlatform:
    regions: dict[str, Region]
    connected: list[str] = field(default_factory=lambda: ["01", "08"])
    # per contract name, what GLABSC answers instead of ``connected`` (routing is unchanged)
    permitted: dict[str, list[str]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # counties answering VP009
    calls: list[tuple[str, str]] = field(default_factory=list)  # (contract, address)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="regions"))

    async def handle(self, request: web.Request) -> web.Response:
        cid = request.headers.get("x-skltp-correlation-id") or str(uuid.uuid4())
        env = read_envelope(parse_bytes(await request.read()))
        address = env.logical_address or ""
        ns = etree.QName(env.payload).namespace or ""
        headers = {"x-skltp-correlation-id": cid}
        if ns == GLABSC_NS:
            self.calls.append(("GetLogicalAddresseesByServiceContract", address))
            return web.Response(body=self._glabsc(env.payload), content_type="text/xml",
                                charset="utf-8", headers=headers)
        contract = by_namespace(ns)
        name = contract.name if contract else ns
        self.calls.append((name, address))
        if address in self.broken:
            return _fault("VP009", "Server", f"Error connecting to the producer for {address}")
        region = self.regions.get(address)
        if contract is None or region is None or address not in self.connected:
            return _fault("VP004", "Client", f"No route for {address} and {ns}")
        problems = validate_element(env.payload)
        if problems:
            return _fault("VP015", "Client", str(problems[0]))
        model = from_element(env.payload)
        ctx = CallContext(caller_hsa_id=ESERVICE_HSA_ID, original_consumer=ESERVICE_HSA_ID,
                          correlation_id=cid)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.executor, region.handle, model, ctx)
        el = to_element(answer)
        problems = validate_element(el)
        if problems:
            raise AssertionError(f"the region answered outside the contract: {problems}")
        return web.Response(body=_soap(el), content_type="text/xml", charset="utf-8",
                            headers=headers)

    def _glabsc(self, payload: etree._Element) -> bytes:
        ns = GLABSC_NS
        resp = etree.Element(f"{{{ns}}}GetLogicalAddresseesByServiceContractResponse",
                             nsmap={None: ns})
        consumer = payload.findtext(f"{{{ns}}}serviceConsumerHsaId") or ""
        asked = by_namespace(payload.findtext(f"{{{ns}}}serviceContractNameSpace") or "")
        answer = self.permitted.get(asked.name if asked else "", self.connected)
        if consumer.upper() == ESERVICE_HSA_ID.upper():
            for county in sorted(answer):
                rec = etree.SubElement(resp, f"{{{ns}}}logicalAddressRecord")
                etree.SubElement(rec, f"{{{ns}}}logicalAddress").text = county
        etree.SubElement(resp, f"{{{ns}}}resultCode").text = "OK"
        return _soap(resp)


class ThreadedServer:
    """An aiohttp application in a background thread."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app, self.ssl_context = app, ssl_context
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ThreadedServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            runner = web.AppRunner(self.app, access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
                loop.run_until_complete(site.start())
                port = runner.addresses[0][1]
                self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="test-platform")
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class Stack:
    """Everything the e-service talks to, with the command line to start it against them."""

    directory: Path
    platform_url: str
    population_url: str
    ca: Path
    cert: Path
    key: Path
    teen_id: str
    platform: FakePlatform
    register: PopulationRegister
    regions: dict[str, Region]
    _servers: list[Any] = field(default_factory=list)

    mode = "harness"

    def fill_unit(self, county: str, unit_id: str, person_ids: list[str]) -> None:
        """List ``person_ids`` at the unit directly in its region (to fill it to its cap)."""
        region = self.regions[county]
        for pid in person_ids:
            r = region.handle(create(pid, unit_id), ctx_for(region.clock))
            assert r.resultCode in ("OK", "INFO"), r.resultText

    def eservice_argv(self, port: int, data_dir: Path, *, pilot: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "listning", "eservice", "serve",
                "--platform-url", self.platform_url, "--cert", str(self.cert),
                "--key", str(self.key), "--ca", str(self.ca), "--hsa-id", ESERVICE_HSA_ID,
                "--population-url", self.population_url, "--data-dir", str(data_dir),
                "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--pilot"] if pilot else argv

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self.platform.executor.shutdown(wait=False)
        for region in self.regions.values():
            region.db.dispose()
        self.register.close()


def start_stack(directory: Path, *, persons: int = 60) -> Stack:
    directory.mkdir(parents=True, exist_ok=True)
    certs = directory / "pki"
    ca = pki.create_ca(certs)
    server = pki.issue(certs, "platform", "SE165565594230-vp01", ca=ca)
    client = pki.issue(certs, "eservice", ESERVICE_HSA_ID, ca=ca)

    register = PopulationRegister(f"sqlite:///{directory / 'population.sqlite'}")
    if register.count() == 0:
        register.generate(persons, seed=7, counties=["01", "03", "08"])
    teen = _teen_of(register, GUARDIAN.person_id)

    network = Network(local_now)
    regions: dict[str, Region] = {}
    for county in ("01", "08", "03"):
        region = Region.open(shipped_config(county),
                             database_url=f"sqlite:///{directory / f'region{county}.sqlite'}",
                             sender=network.sender_for(county), population=register)
        regions[county] = region
        network.regions[county] = region
    platform = FakePlatform(regions)
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/{contract}/{major}/{profile}", platform.handle)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert))
    ctx.load_cert_chain(str(server.cert), str(server.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    platform_server = ThreadedServer(app, ctx).start()
    population_server = ApiServer(register).start()
    return Stack(directory, platform_server.url, population_server.url, ca.cert, client.cert,
                 client.key, teen, platform, register, regions,
                 [population_server, platform_server])


def _teen_of(register: PopulationRegister, guardian: str) -> str:
    """A child of ``guardian`` who turned 13 a year ago (born in the register for the test)."""
    for child in register.children_of(guardian):
        if child.age() >= 13:
            return child.person_id
    born = date.today() - timedelta(days=14 * 365 + 30)
    return register.record_birth([guardian], born=born, first_name="Alva", seed=3).person_id


# --- the real pilot --------------------------------------------------------------------------

@dataclass
class PilotStack:
    """``listning pilot`` as a subprocess, read through its ``endpoints.json``; the same
    attributes the tests use on ``Stack`` (no in-process regions or platform)."""

    directory: Path
    proc: subprocess.Popen
    info: dict[str, Any]
    register: PopulationRegister
    teen_id: str
    mode = "pilot"

    @property
    def platform_url(self) -> str:
        return str(self.info["platform_url"])

    @property
    def population_url(self) -> str:
        return str(self.info["population_url"])

    @property
    def ca(self) -> Path:
        return Path(self.info["ca_cert"])

    @property
    def cert(self) -> Path:
        return self.directory / "pki" / "eservice.pem"

    @property
    def key(self) -> Path:
        return self.directory / "pki" / "eservice.key"

    def fill_unit(self, county: str, unit_id: str, person_ids: list[str]) -> None:
        """List ``person_ids`` at the unit through the platform as the pilot's tester."""
        from consumers import values as v
        from consumers.client import ListingClient

        tester = self.info["tester"]
        with ListingClient(self.platform_url, cert=tester["cert"], key=tester["key"],
                           ca=self.ca) as client:
            for pid in person_ids:
                r = client.create_listing(county, actor=v.actor(pid), personId=v.person(pid),
                                          healthcareFacilityHSAId=unit_id,
                                          listingType=v.listing_type())
                assert r.ok, r.response.resultText

    def eservice_argv(self, port: int, data_dir: Path, *, pilot: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "listning", "eservice", "serve",
                "--platform-url", self.platform_url, "--cert", str(self.cert),
                "--key", str(self.key), "--ca", str(self.ca), "--hsa-id", ESERVICE_HSA_ID,
                "--population-url", self.population_url, "--data-dir", str(data_dir),
                "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--pilot"] if pilot else argv

    def stop(self) -> None:
        self.register.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the pilot stops its children in order
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class PilotUnavailable(RuntimeError):
    pass


# what the tests read from the pilot's endpoints.json
PILOT_KEYS = ("eservice_url", "platform_url", "population_url", "ca_cert", "tester", "logs")


def start_pilot(directory: Path, *, timeout: float = 150.0, persons: int = 300) -> PilotStack:
    """Start ``listning pilot`` and wait for its ``endpoints.json`` (``PilotUnavailable`` when
    it exits or does not come up in time; it is stopped then)."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "pilot.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listning", "pilot", "--data-dir", str(directory),
             "--free-ports", "--population", str(persons)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    endpoints = directory / "endpoints.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if endpoints.exists():
            info = json.loads(endpoints.read_text(encoding="utf-8"))
            missing = [k for k in PILOT_KEYS if k not in info]
            population_db = directory / "population.db"
            if missing or not population_db.exists():
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
                raise PilotUnavailable(f"the pilot's endpoints.json lacks {missing} or it has "
                                       f"no {population_db.name}")
            register = PopulationRegister(f"sqlite:///{population_db}")
            return PilotStack(directory, proc, info, register,
                              _teen_of(register, GUARDIAN.person_id))
        if proc.poll() is not None:
            raise PilotUnavailable(f"`listning pilot` exited with status {proc.returncode}: "
                                   + log_path.read_text(errors="replace")[-600:])
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    raise PilotUnavailable(f"`listning pilot` wrote no endpoints.json within {timeout:.0f} s")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "eservice-stack")
    stack = start_stack(target)
    print(json.dumps({"platform_url": stack.platform_url,
                      "population_url": stack.population_url}, indent=2))
    print(" ".join(stack.eservice_argv(8080, target / "eservice")))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stack.stop()
