"""The population register's read API over HTTP, and a small client for it.

``GET /persons/{id}``: a person with home county, birth date, names, guardians and children;
``GET /changes?since=N&limit=M``: the change feed, oldest first; ``GET /health``.
Mutual TLS when a certificate, key and CA are given; otherwise plain HTTP, and then only on a
loopback address. Personal identity numbers appear in URLs, so the access log is off and the
server logs only at DEBUG.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from interactions.identifiers import check_personal_id
from producers.population.model import Change, Person
from producers.population.register import MAX_PAGE, PopulationRegister

log = logging.getLogger(__name__)

REGISTER_KEY = web.AppKey("register", PopulationRegister)


# --- server ----------------------------------------------------------------------------

def _ref(p: Person) -> dict[str, Any]:
    return {"person_id": p.person_id, "root": p.root, "first_name": p.first_name,
            "last_name": p.last_name, "birth_date": p.birth_date.isoformat(),
            "home_county": p.home_county}


def person_document(register: PopulationRegister, pid: str) -> dict[str, Any] | None:
    p = register.person(pid)
    if p is None:
        return None
    return {
        **_ref(p), "sex": p.sex, "status": p.status, "county": p.county,
        "municipality": p.municipality, "latitude": p.latitude, "longitude": p.longitude,
        "deceased_on": p.deceased_on.isoformat() if p.deceased_on else None,
        "emigrated_on": p.emigrated_on.isoformat() if p.emigrated_on else None,
        "guardians": [_ref(g) for g in register.guardians_of(pid)],
        "children": [_ref(c) for c in register.children_of(pid)],
    }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _get_person(request: web.Request) -> web.Response:
    pid = request.match_info["pid"]
    reason = check_personal_id(pid)
    if reason:
        return _error(400, "bad-person-id", reason)
    doc = await asyncio.to_thread(person_document, request.app[REGISTER_KEY], pid)
    if doc is None:
        return _error(404, "not-found", "no person with that number in the population register")
    return web.json_response(doc)


def _bad_parameter(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad-parameter", "message": message}),
                              content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise _bad_parameter(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _bad_parameter(f"{name} must be between {low} and {high}")
    return value


async def _get_changes(request: web.Request) -> web.Response:
    since = _int_param(request, "since", 0, 0, 2**62)
    limit = _int_param(request, "limit", 1000, 1, MAX_PAGE)
    changes = await asyncio.to_thread(request.app[REGISTER_KEY].changes_since, since, limit)
    return web.json_response({
        "changes": [c.to_json() for c in changes],
        "next_since": changes[-1].seq if changes else since,
        "more": len(changes) == limit,
    })


async def _health(request: web.Request) -> web.Response:
    reg = request.app[REGISTER_KEY]
    persons, last = await asyncio.to_thread(lambda: (reg.count(), reg.last_seq()))
    return web.json_response({"status": "ok", "persons": persons, "last_seq": last})


def make_app(register: PopulationRegister) -> web.Application:
    app = web.Application()
    app[REGISTER_KEY] = register
    app.router.add_get("/persons/{pid}", _get_person)
    app.router.add_get("/changes", _get_changes)
    app.router.add_get("/health", _health)
    return app


def server_ssl_context(cert: Path | str, key: Path | str, ca: Path | str) -> ssl.SSLContext:
    """TLS that demands a client certificate signed by ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_listen(host: str, cert: object, key: object, ca: object) -> bool:
    """True for mutual TLS; False for plain HTTP, which is only allowed on loopback."""
    given = [x is not None for x in (cert, key, ca)]
    if any(given) and not all(given):
        raise ValueError("mutual TLS needs all of cert, key and ca")
    if all(given):
        return True
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"plain HTTP only on a loopback address, not {host}: give cert, key "
                         "and ca for mutual TLS")
    return False


class ApiServer:
    """The API in a background thread (for the pilot's supervisor and for tests)::

        with ApiServer(register) as server:
            PopulationClient(server.url).person("191212121212")
    """

    def __init__(self, register: PopulationRegister, host: str = "127.0.0.1", port: int = 0,
                 *, cert: Path | str | None = None, key: Path | str | None = None,
                 ca: Path | str | None = None) -> None:
        self.tls = check_listen(host, cert, key, ca)
        self._ssl = server_ssl_context(cert, key, ca) if self.tls else None  # type: ignore[arg-type]
        self.register, self.host, self.port = register, host, port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ApiServer:
        started = threading.Event()
        failure: list[BaseException] = []

        async def setup() -> None:
            self._runner = web.AppRunner(make_app(self.register), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
            await site.start()
            self.port = self._runner.addresses[0][1]
            scheme = "https" if self.tls else "http"
            self.url = f"{scheme}://{self.host}:{self.port}"

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="population-api", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(db_url: str, host: str = "127.0.0.1", port: int = 8090, *,
          cert: Path | None = None, key: Path | None = None, ca: Path | None = None) -> None:
    """Run the API in the foreground until interrupted (``listning population serve``)."""
    tls = check_listen(host, cert, key, ca)
    register = PopulationRegister(db_url)
    ctx = server_ssl_context(cert, key, ca) if tls else None  # type: ignore[arg-type]
    log.info("population register API on %s://%s:%d", "https" if tls else "http", host, port)
    web.run_app(make_app(register), host=host, port=port, ssl_context=ctx, access_log=None,
                print=None)


# --- client ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonRef:
    person_id: str
    root: str
    first_name: str
    last_name: str
    birth_date: date
    home_county: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PersonRef:
        return cls(d["person_id"], d["root"], d["first_name"], d["last_name"],
                   date.fromisoformat(d["birth_date"]), d["home_county"])


@dataclass(frozen=True)
class PersonInfo(PersonRef):
    sex: str
    status: str  # "resident" | "deceased" | "emigrated"
    municipality: str
    latitude: float
    longitude: float
    guardians: tuple[PersonRef, ...]
    children: tuple[PersonRef, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PersonInfo:
        ref = PersonRef.from_json(d)
        return cls(**ref.__dict__, sex=d["sex"], status=d["status"],
                   municipality=d["municipality"], latitude=d["latitude"],
                   longitude=d["longitude"],
                   guardians=tuple(PersonRef.from_json(g) for g in d["guardians"]),
                   children=tuple(PersonRef.from_json(c) for c in d["children"]))

    def age(self, on: date | None = None) -> int:
        on, born = on or date.today(), self.birth_date
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


class PopulationApiError(Exception):
    """The API could not be reached or refused the request."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class PopulationClient:
    """Reads the register over HTTP(S). ``cert``/``key``/``ca`` for mutual TLS."""

    def __init__(self, base_url: str, *, cert: Path | str | None = None,
                 key: Path | str | None = None, ca: Path | str | None = None,
                 timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        if cert is not None:
            self.session.cert = (str(cert), str(key))
        if ca is not None:
            self.session.verify = str(ca)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PopulationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, int] | None = None) -> dict[str, Any] | None:
        try:
            resp = self.session.get(self.base_url + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PopulationApiError(f"population register unreachable at {self.base_url}: "
                                     f"{exc}") from None
        if resp.status_code == 404:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200:
            raise PopulationApiError(
                f"population register answered HTTP {resp.status_code}: "
                f"{body.get('message', resp.reason)}", resp.status_code, body.get("error"))
        return body

    def person(self, pid: str) -> PersonInfo | None:
        """The person, or None when the register has no one with that number."""
        body = self._get(f"/persons/{pid}")
        return PersonInfo.from_json(body) if body is not None else None

    def home_county(self, pid: str) -> str | None:
        p = self.person(pid)
        return p.home_county if p else None

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        body = self._get("/changes", {"since": seq, "limit": limit})
        if body is None:
            raise PopulationApiError("the population register has no /changes endpoint", 404)
        return [Change.from_json(c) for c in body["changes"]]

    def iter_changes(self, since: int = 0, page: int = 1000) -> Iterator[Change]:
        """Every change after ``since``, page by page, until the feed is read to its end."""
        while True:
            changes = self.changes_since(since, page)
            yield from changes
            if len(changes) < page:
                return
            since = changes[-1].seq
