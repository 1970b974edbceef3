"""Helpers for the platform (VP) tests: constants, envelopes, snapshots, processes, faults.

A plain module (not a conftest) so test modules can import it: ``conftest.py`` puts this
folder on ``sys.path`` (pytest runs with ``--import-mode=importlib``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests
from aiohttp import web
from lxml import etree

from interactions.contracts import all_contracts
from routing import pki
from routing.snapshot import Permission, Route, Snapshot

REPO = Path(__file__).resolve().parents[2]


NS = {c.name: c.namespace for c in all_contracts().values()}


GET_LISTING = NS["GetListing"]


GET_TYPES = NS["GetListingTypes"]


CONSUMER = "SE2321000016-1177"


OTHER = "SE2321000024-up01"


TRUSTED_ORIGINATOR = "SE2321000016-agg1"


PLATFORM = "SE165565594230-vp01"


PRODUCER = "SE2321000073-lk08"


PERSON = "191212121212"  # must never reach a log line


SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


WSA = "http://www.w3.org/2005/08/addressing"


REGISTRY = "urn:riv:itintegration:registry:1"


FOREVER = (date(2020, 1, 1), date(2099, 12, 31))


def envelope(namespace: str = GET_LISTING, address: str | None = "08", *,
             header: str = "LogicalAddress", padding: int = 0) -> bytes:
    """A request envelope; ``header='To'`` makes the RIVTABP20 form."""
    head = ""
    if address is not None:
        ns = REGISTRY if header == "LogicalAddress" else WSA
        head = f'<h:{header} xmlns:h="{ns}">{address}</h:{header}>'
    pad = f"<note>{'x' * padding}</note>" if padding else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_NS}">'
            f"<soap:Header>{head}</soap:Header><soap:Body><GetListing xmlns=\"{namespace}\">"
            f"<personId><root>1.2.752.129.2.1.3.1</root><extension>{PERSON}</extension>"
            f"</personId>{pad}</GetListing></soap:Body></soap:Envelope>").encode()


OK_RESPONSE = (f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body><GetListingResponse '
               f'xmlns="{GET_LISTING}"><resultCode>OK</resultCode></GetListingResponse>'
               "</soap:Body></soap:Envelope>").encode()


PRODUCER_FAULT = (f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body><soap:Fault>'
                  "<faultcode>soap:Server</faultcode><faultstring>producer says no"
                  "</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Pki:
    ca: Path
    platform: pki.Identity
    consumer: pki.Identity
    other: pki.Identity
    originator: pki.Identity
    producer: pki.Identity
    no_serial: pki.Identity
    foreign: pki.Identity  # issued by another CA


def client(certs: Pki, who: pki.Identity | None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify, and proxy variables apply
    s.verify = str(certs.ca)
    if who is not None:
        s.cert = (str(who.cert), str(who.key))
    return s


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Producers:
    https: str = ""
    http: str = ""
    catalogue: str = ""
    impostor: str = ""  # HTTPS with a certificate from an unknown CA
    seen: list[Seen] = field(default_factory=list)
    catalogue_snapshot: str | None = None  # None → the catalogue answers 503

    def last(self, path: str) -> Seen:
        return [s for s in self.seen if s.path == path][-1]


def _producer_app(state: Producers) -> web.Application:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        state.seen.append(Seen(request.path, dict(request.headers), body))
        kind = request.match_info["kind"]
        if kind == "ok":
            return web.Response(body=OK_RESPONSE, content_type="text/xml", charset="utf-8",
                                headers={"X-Producer": "yes"})
        if kind == "fault":
            return web.Response(status=500, body=PRODUCER_FAULT, content_type="text/xml")
        if kind == "slow":
            await asyncio.sleep(5)
            return web.Response(body=OK_RESPONSE, content_type="text/xml")
        if kind == "garbage":
            return web.Response(body=b"this is not a SOAP envelope", content_type="text/xml")
        if kind == "empty":
            return web.Response(body=b"", content_type="text/xml")
        return web.Response(status=502, body=b"<html>bad gateway</html>",
                            content_type="text/html")

    async def snapshot(_: web.Request) -> web.Response:
        if state.catalogue_snapshot is None:
            return web.Response(status=503, text="catalogue down")
        return web.Response(text=state.catalogue_snapshot, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{kind}/{tail:.*}", answer)
    app.router.add_get("/snapshot", snapshot)
    return app


def route(address: str, url: str, *, ns: str = GET_LISTING, profile: str = "RIVTABP21",
          dates: tuple[date, date] = FOREVER) -> Route:
    return Route(ns, address, url, profile, PRODUCER, *dates)


def permit(address: str, consumer: str = CONSUMER, ns: str = GET_LISTING,
           dates: tuple[date, date] = FOREVER) -> Permission:
    return Permission(consumer, ns, address, *dates)


def snapshot(snapshot_id: str, routes: list[Route], permissions: list[Permission],
             timeouts: dict[str, float] | None = None) -> Snapshot:
    return Snapshot(snapshot_id, datetime.now(UTC), routes, permissions, timeouts or {})


def main_snapshot(p: Producers, own_http: str = "http://127.0.0.1:1") -> Snapshot:
    """Routes by logical address for each behaviour the tests provoke."""
    ok = f"{p.https}/ok/GetListing/2/rivtabp21"
    yesterday = date.today() - timedelta(days=2)
    routes = [
        route("08", ok), route("01", ok),
        route("kalmar", ok),  # called as KALMAR: matching is case-insensitive
        route("fault", f"{p.https}/fault/x"), route("garbage", f"{p.https}/garbage/x"),
        route("empty", f"{p.https}/empty/x"), route("html", f"{p.https}/html/x"),
        route("down", f"https://127.0.0.1:{free_port()}/x"),
        route("bp20", f"{p.https}/ok/bp20", profile="RIVTABP20"),
        route("plain", f"{p.http}/ok/plain"),
        route("impostor", f"{p.impostor}/ok/impostor"),
        route("dup", ok), route("dup", f"{p.https}/ok/dup2"),
        route("nourl", ""), route("bp30", ok, profile="RIVTABP30"),
        route("expired", ok, dates=(date(2020, 1, 1), yesterday)),
        route("loop", f"{own_http}/ok/loop"),
        route("*", f"{p.https}/slow/x", ns=GET_TYPES),
    ]
    addresses = ["08", "kalmar", "fault", "garbage", "empty", "html", "down", "bp20", "plain",
                 "dup", "nourl", "bp30", "expired", "loop", "impostor"]
    perms = [permit(a) for a in addresses]
    perms += [permit(a, TRUSTED_ORIGINATOR) for a in ("08", "plain")]
    perms += [permit("*", ns=GET_TYPES)]
    perms[1] = permit("kalmar", CONSUMER.lower())
    return snapshot("main-1", routes, perms, {GET_TYPES: 1.0})


@dataclass
class PlatformProcess:
    proc: subprocess.Popen
    urls: dict[str, str]
    log: Path
    state_dir: Path

    def ops(self, path: str) -> requests.Response:
        with requests.Session() as s:
            s.trust_env = False
            return s.request("POST" if path == "/resetcache" else "GET",
                             self.urls["ops"] + path, timeout=10)

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return [x for x in lines if isinstance(x, dict)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_platform(workdir: Path, catalogue: str, *args: str,
                   certs: Pki | None = None) -> PlatformProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    log = workdir / "platform.log"
    cmd = [sys.executable, "-m", "routing.vp", "serve", "--catalogue", catalogue,
           "--state-dir", str(state_dir), "--instance-name", "vp-test"]
    if certs:
        cmd += ["--cert", str(certs.platform.cert), "--key", str(certs.platform.key),
                "--ca", str(certs.ca)]
    cmd += list(args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, env=env,
                                text=True)
    platform = PlatformProcess(proc, {}, log, state_dir)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"platform exited: {log.read_text()[-2000:]}")
            name, _, url = line.strip().partition(" ")
            if name == "ready":
                return platform
            platform.urls[name] = url
        raise RuntimeError("platform did not become ready")
    except BaseException:
        platform.stop()
        raise

@dataclass
class Fault:
    code: str
    faultcode: str
    faultstring: str
    detail: str


def fault_of(resp: requests.Response) -> Fault:
    root = etree.fromstring(resp.content, etree.XMLParser(resolve_entities=False,
                                                           no_network=True))
    fault = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert fault is not None, resp.text
    text = fault.findtext("faultstring") or ""
    return Fault(text.split(" ", 1)[0], fault.findtext("faultcode") or "", text,
                 fault.findtext("detail/detailString") or "")


def assert_vp(resp: requests.Response, code: str, side: str, status: int = 500) -> Fault:
    assert resp.status_code == status, resp.text
    f = fault_of(resp)
    assert f.code == code, f.faultstring
    assert f.faultcode == f"soap:{side}"
    assert f.faultstring.startswith(f"{code} [vp-test] ")
    assert f.detail  # an English explanation
    return f
