"""Producer throughput and the cost per request (issue 9, item 1).

    .venv/bin/python benchmarks/producer.py --repeat 3            # about 3 minutes
    .venv/bin/python benchmarks/producer.py --backends sqlite --no-https   # quick look
    .venv/bin/python benchmarks/producer.py --processes 1,2      # PostgreSQL over 1 and 2 processes

For one region (Stockholm, 01), with request and response validation on (as in production):

- ``inproc``: CreateListing and GetListing through the full producer stack in-process — the
  spyne WSGI application called with a WSGI environ, exactly as producers.server calls it —
  on SQLite and on PostgreSQL, one call after another (service times, no queueing);
- ``https``: the same calls to ``listning region serve`` (a separate process) over HTTPS with
  mutual TLS, from ``--concurrency`` concurrent aiohttp clients with keep-alive; with
  ``--processes 1,2`` PostgreSQL also with ``--processes 2`` (row ``https/postgres/p2``);
- ``stack`` vs ``floor``: the in-process cost of our producer stack with the business logic
  replaced by a canned response (parse, validate, map, dispatch, write, validate response),
  next to a bare lxml parse + libxml2 validation + response build + serialisation of the same
  message: the floor.

Every CreateListing is for a resident not seen before, so it really writes; GetListing reads
the residents just listed. PostgreSQL: a database of our own at 127.0.0.1:5432 (user
postgres), dropped at the end. Prints a table; writes ``benchmarks/results/producer.json``.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import random
import shutil
import ssl
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

REPO = _HERE.parent
sys.path.insert(0, str(REPO))

import aiohttp
from lxml import etree
from sqlalchemy import create_engine, text

from interactions.contracts import REGISTRY_NS, SOAP11_ENV, all_contracts
from interactions.identifiers import (
    LISTING_TYPE_CODE_SYSTEM,
    LISTING_TYPE_PV,
    LISTING_TYPE_PV_NAME,
    make_personal_id,
    personal_id_root,
)
from interactions.models import message_class
from interactions.validation import driver_schema
from interactions.xmlload import hardened_parser
from listning.runtime import pg_reachable

PG_ADMIN = os.environ.get("LISTNING_BENCH_POSTGRES_URL",
                          "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
PLATFORM_ID = "SE165565594230-VP01"
REGION_ID = "SE2321000016-LIST"
COUNTY = "01"
UNITS = ("SE2321000016-01VC", "SE2321000016-03VC")  # caps 9 000 and 11 000, both offer PV
RESULTS = REPO / "benchmarks" / "results" / "producer.json"


# --- messages --------------------------------------------------------------------------------

def _envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}">'
            f'<soap:Header><LogicalAddress xmlns="{REGISTRY_NS}">{COUNTY}</LogicalAddress>'
            f"</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>").encode()


def _ii(tag: str, pid: str) -> str:
    return (f"<{tag}><core:root>{personal_id_root(pid)}</core:root>"
            f"<core:extension>{pid}</core:extension></{tag}>")


def create_listing(pid: str, unit: str) -> bytes:
    ns = all_contracts()["CreateListing"].namespace
    core = "urn:riv:supportprocess:logistics:carelisting:2"
    return _envelope(
        f'<CreateListing xmlns="{ns}" xmlns:core="{core}">'
        f"<actor><core:actorId><core:root>{personal_id_root(pid)}</core:root>"
        f"<core:extension>{pid}</core:extension></core:actorId>"
        f"<core:actorType>CITIZEN</core:actorType></actor>"
        f"{_ii('personId', pid)}<healthcareFacilityHSAId>{unit}</healthcareFacilityHSAId>"
        f"<listingType><core:code>{LISTING_TYPE_PV}</core:code>"
        f"<core:codeSystem>{LISTING_TYPE_CODE_SYSTEM}</core:codeSystem>"
        f"<core:displayName>{LISTING_TYPE_PV_NAME}</core:displayName></listingType>"
        f"<homeCounty><core:root>1.2.752.129.2.2.1.18</core:root>"
        f"<core:extension>{COUNTY}</core:extension></homeCounty>"
        "</CreateListing>")


def get_listing(pid: str) -> bytes:
    ns = all_contracts()["GetListing"].namespace
    core = "urn:riv:supportprocess:logistics:carelisting:2"
    return _envelope(
        f'<GetListing xmlns="{ns}" xmlns:core="{core}">'
        f"<actor><core:actorId><core:root>{personal_id_root(pid)}</core:root>"
        f"<core:extension>{pid}</core:extension></core:actorId>"
        f"<core:actorType>CITIZEN</core:actorType></actor>{_ii('personId', pid)}</GetListing>")


class Residents:
    """Distinct, valid adult personnummer, never repeated within a run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seen: set[str] = set()

    def new(self) -> str:
        while True:
            born = dt.date(1940 + self.rng.randrange(60), 1 + self.rng.randrange(12),
                           1 + self.rng.randrange(28))
            pid = make_personal_id(born, self.rng.randrange(1000))
            if pid not in self.seen:
                self.seen.add(pid)
                return pid


def ok(payload: bytes) -> bool:
    return b"OK</" in payload and b"Fault>" not in payload


# --- statistics ------------------------------------------------------------------------------

def summary(latencies: list[float], wall: float, errors: int = 0) -> dict[str, Any]:
    xs = sorted(latencies)

    def pct(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000, 3)

    return {"n": len(xs), "errors": errors, "per_s": round(len(xs) / wall, 1),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


# --- databases -------------------------------------------------------------------------------

@contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    """A fresh, empty database URL for the run (migrated by the first open)."""
    if backend == "sqlite":
        path = work / f"region-{uuid.uuid4().hex[:6]}.sqlite"
        yield f"sqlite:///{path}"
        return
    name = f"listning_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- in-process ------------------------------------------------------------------------------

def environ(path: str, body: bytes) -> dict[str, Any]:
    """What producers.server.ProducerApp._environ hands the WSGI app."""
    import io

    from producers.spyne_services import ENV_PEER_HSA_ID
    return {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
            "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
            ENV_PEER_HSA_ID: PLATFORM_ID, "HTTP_X_VP_SENDER_ID": "SE5565594230-1177"}


def call_wsgi(app: Callable[..., Any], path: str, body: bytes) -> tuple[str, bytes]:
    status: list[str] = []
    chunks = app(environ(path, body), lambda s, h, e=None: status.append(s))
    payload = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return status[0], payload


def region_for(url: str) -> Any:
    from producers.config import shipped_config
    from producers.region import Region
    from producers.storage import open_database

    cfg = shipped_config(COUNTY)
    return Region(cfg, open_database(url))


def run_inproc(url: str, n: int, residents: Residents) -> dict[str, Any]:
    """Service times one call after another; per contract also the SQL statements per call
    (exact) and the Python function calls per call (cProfile over 20 more calls: a measure
    of the work done that, unlike CPU time, the machine's load does not change)."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from producers.spyne_services import wsgi_application

    region = region_for(url)
    app = wsgi_application(region)
    statements = [0]

    @event.listens_for(region.db.engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        statements[0] += 1

    create_path = all_contracts()["CreateListing"].path
    get_path = all_contracts()["GetListing"].path
    try:
        for i in range(20):  # warm-up: imports, first connections, statement caches
            call_wsgi(app, create_path, create_listing(residents.new(), UNITS[i % 2]))
        out: dict[str, Any] = {}
        pids = [residents.new() for _ in range(n + 20)]
        creates = [create_listing(p, UNITS[i % 2]) for i, p in enumerate(pids)]
        for contract, path, bodies in (
                ("CreateListing", create_path, creates),
                ("GetListing", get_path, [get_listing(p) for p in pids])):
            bodies, profiled = bodies[:n], bodies[n:]
            lat, errors = [], 0
            statements[0] = 0
            cpu, start = time.process_time(), time.perf_counter()
            for b in bodies:
                t = time.perf_counter()
                _, payload = call_wsgi(app, path, b)
                lat.append(time.perf_counter() - t)
                errors += not ok(payload)
            out[contract] = summary(lat, time.perf_counter() - start, errors)
            # this process's CPU per call (not the PostgreSQL server's): steadier under load
            out[contract]["cpu_ms"] = round((time.process_time() - cpu) / len(bodies) * 1e3, 3)
            out[contract]["statements"] = round(statements[0] / len(bodies), 2)
            profile = cProfile.Profile()
            profile.enable()
            for b in profiled:
                call_wsgi(app, path, b)
            profile.disable()
            out[contract]["py_calls"] = round(
                pstats.Stats(profile).total_calls / len(profiled))
        return out
    finally:
        region.db.dispose()


# --- stack vs floor --------------------------------------------------------------------------

class CannedRegion:
    """Enough of a Region for producers.spyne_services, answering without a database."""

    county = COUNTY

    def __init__(self) -> None:
        from producers.config import shipped_config
        self.config = shipped_config(COUNTY)
        self.response = message_class("CreateListingResponse")(
            resultCode="OK", resultText="Du är listad på Vårdcentralen från 2026-11-26.")

    def clock(self) -> dt.datetime:
        return dt.datetime(2026, 11, 25, 12, 0)

    def handle(self, request: Any, ctx: Any) -> Any:
        return self.response


def floor_call(data: bytes) -> bytes:
    """The floor: hardened parse, validate header and body, build, validate and write the
    response envelope — what any correct producer must do, with no framework."""
    schema = driver_schema()
    root = etree.fromstring(data, hardened_parser())
    header, body = root[0], root[1]
    if not schema.validate(header[0]) or not schema.validate(body[0]):
        raise ValueError("invalid request")
    ns = all_contracts()["CreateListing"].namespace
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    out = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_ENV}}}Body"),
                           f"{{{ns}}}CreateListingResponse", nsmap={None: ns})
    etree.SubElement(out, f"{{{ns}}}resultCode").text = "OK"
    etree.SubElement(out, f"{{{ns}}}resultText").text = \
        "Du är listad på Vårdcentralen från 2026-11-26."
    if not schema.validate(out):
        raise ValueError("invalid response")
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def run_stack_vs_floor(n: int, residents: Residents) -> dict[str, Any]:
    from producers.spyne_services import wsgi_application

    app = wsgi_application(CannedRegion())  # type: ignore[arg-type]
    path = all_contracts()["CreateListing"].path
    bodies = [create_listing(residents.new(), UNITS[0]) for _ in range(n)]
    for b in bodies[:50]:
        status, payload = call_wsgi(app, path, b)
        assert status.startswith("200") and ok(payload), payload[:400]
        assert ok(floor_call(b))
    out = {}
    for name, fn in (("stack", lambda b: call_wsgi(app, path, b)), ("floor", floor_call)):
        lat = []
        cpu, start = time.process_time(), time.perf_counter()
        for b in bodies:
            t = time.perf_counter()
            fn(b)
            lat.append(time.perf_counter() - t)
        out[name] = summary(lat, time.perf_counter() - start)
        out[name]["cpu_us"] = round((time.process_time() - cpu) / n * 1e6, 1)
    out["ratio_p50"] = round(out["stack"]["p50_ms"] / out["floor"]["p50_ms"], 2)
    out["ratio_cpu"] = round(out["stack"]["cpu_us"] / out["floor"]["cpu_us"], 2)
    return out


# --- over HTTPS ------------------------------------------------------------------------------

class HttpsProducer:
    """``listning region serve`` in its own process, with a fresh PKI."""

    def __init__(self, work: Path, url: str, threads: int, processes: int = 1) -> None:
        from listning.supervisor import Service, free_port
        from routing import pki

        pki_dir = work / f"pki-{uuid.uuid4().hex[:6]}"
        pki_dir.mkdir(parents=True)
        ca = pki.create_ca(pki_dir)
        self.ca = ca.cert
        region = pki.issue(pki_dir, "region01", REGION_ID, ca=ca)
        self.client = pki.issue(pki_dir, "platform", PLATFORM_ID, ca=ca)
        port = free_port()
        argv = [sys.executable, "-m", "listning", "region", "serve",
                "--config", str(REPO / f"producers/regions/{COUNTY}.toml"),
                "--data-dir", str(work / "data"), "--db", url, "--host", "127.0.0.1",
                "--port", str(port), "--cert", str(region.cert), "--key", str(region.key),
                "--ca", str(ca.cert), "--platform-url", f"https://127.0.0.1:{free_port()}",
                "--platform-hsa-id", PLATFORM_ID, "--threads", str(threads)]
        if processes > 1:
            argv += ["--processes", str(processes)]
        self.url = f"https://127.0.0.1:{port}"
        self.service = Service("region 01", argv, port, work / "region.log", ready_timeout=90)

    def __enter__(self) -> HttpsProducer:
        self.service.start()
        self.service.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.stop()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client.cert), str(self.client.key))
        return ctx


async def _load(url: str, bodies: list[bytes], concurrency: int,
                ctx: ssl.SSLContext) -> tuple[list[float], float, int]:
    lat: list[float] = []
    errors = 0
    queue = iter(bodies)
    headers = {"Content-Type": "text/xml; charset=utf-8",
               "x-vp-sender-id": "SE5565594230-1177"}
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ctx)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal errors
            for body in queue:
                t = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                lat.append(time.perf_counter() - t)
                errors += resp.status != 200 or not ok(payload)

        # one request per connection first, so the handshakes are not in the figures
        warm = [get_listing("191212121212")] * concurrency
        await asyncio.gather(*(session.post(url, data=b, headers=headers) for b in warm))
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, time.perf_counter() - start, errors


def run_https(work: Path, url: str, n: int, concurrency: int, threads: int,
              residents: Residents, processes: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with HttpsProducer(work, url, threads, processes) as producer:
        ctx = producer.ssl_context()
        pids = [residents.new() for _ in range(n)]
        for contract, bodies in (
                ("CreateListing", [create_listing(p, UNITS[i % 2]) for i, p in enumerate(pids)]),
                ("GetListing", [get_listing(p) for p in pids])):
            path = producer.url + all_contracts()[contract].path
            lat, wall, errors = asyncio.run(_load(path, bodies, concurrency, ctx))
            out[contract] = summary(lat, wall, errors)
    return out


# --- main ------------------------------------------------------------------------------------

def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the repeats (nested dicts of numbers)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs]) for k in first}
    return statistics.median(runs) if isinstance(first, (int, float)) else first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--requests", type=int, default=400, help="per contract, in-process")
    p.add_argument("--https-requests", type=int, default=800, help="per contract, HTTPS")
    p.add_argument("--concurrency", type=int, default=16, help="HTTPS clients")
    p.add_argument("--threads", type=int, default=8, help="the producer's thread pool")
    p.add_argument("--processes", default="1", help="producer processes for the PostgreSQL "
                   "HTTPS rows, comma-separated (e.g. 1,2)")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--no-https", action="store_true")
    p.add_argument("--label", default="", help="stored with the run (e.g. before/after)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import warnings
    warnings.filterwarnings("ignore", message=".*'cgi' is deprecated.*")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    processes = [int(x) for x in args.processes.split(",") if x.strip()]
    if "postgres" in backends and not pg_reachable(PG_ADMIN):
        print(f"PostgreSQL at {PG_ADMIN} is not reachable: skipped", file=sys.stderr)
        backends.remove("postgres")
    residents = Residents(seed=int(time.time()))
    work = Path(tempfile.mkdtemp(prefix="listning-bench-"))
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    gc.freeze()  # as `listning region serve` does after start-up
    try:
        for r in range(args.repeat):
            run: dict[str, Any] = {"stack_vs_floor": run_stack_vs_floor(2000, residents)}
            for backend in backends:  # interleaved so drift hits every row alike
                with database(backend, work) as url:
                    run[f"inproc/{backend}"] = run_inproc(url, args.requests, residents)
                if args.no_https:
                    continue
                for procs in processes if backend == "postgres" else [1]:
                    with database(backend, work) as url:
                        run[f"https/{backend}" + (f"/p{procs}" if procs > 1 else "")] = \
                            run_https(work, url, args.https_requests, args.concurrency,
                                      args.threads, residents, procs)
            print(f"repeat {r + 1}/{args.repeat} done (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr)
            runs.append(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = median_of(runs)
    result = {
        "label": args.label,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "median": med, "runs": runs,
    }
    print(f"\nmedians of {args.repeat} (load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f})")
    print(f"{'row':<18}{'contract':<15}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}")
    for row, value in med.items():
        if row == "stack_vs_floor":
            continue
        for contract, s in value.items():
            print(f"{row:<18}{contract:<15}{s['per_s']:>9.0f}{s['p50_ms']:>9.2f}"
                  f"{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['errors']:>8}")
    sf = med["stack_vs_floor"]
    print(f"\nper request, canned CreateListing: stack {sf['stack']['cpu_us']:.0f} µs CPU "
          f"(p50 {sf['stack']['p50_ms'] * 1000:.0f} µs), floor {sf['floor']['cpu_us']:.0f}"
          f" µs CPU (p50 {sf['floor']['p50_ms'] * 1000:.0f} µs); stack/floor "
          f"{sf['ratio_cpu']:.1f}× (CPU), {sf['ratio_p50']:.1f}× (p50)")
    for row, value in med.items():
        if row.startswith("inproc/"):
            print(f"{row}: per call in this process " + ", ".join(
                f"{c} {s['cpu_ms']:.2f} ms CPU, {s['statements']:g} statements, "
                f"{s['py_calls']:.0f} Python calls" for c, s in value.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
