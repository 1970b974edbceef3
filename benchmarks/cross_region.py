"""Cross-region latency (issue 9, item 2): from CreateListing at region B until the home region A
has recorded the listing — two platform hops, mutual TLS, outbox delivery.

    .venv/bin/python benchmarks/cross_region.py --repeat 3          # ~50 minutes here; --help
    .venv/bin/python benchmarks/cross_region.py --repeat 1 --backends sqlite --levels 1,10 \
        --variants as-is                                            # a quick look

Real processes, as ``listning pilot`` runs them (``listning.pilot``: the same ports, PKI,
catalogue, population and command lines; the e-service is played by this script): the
catalogue, the platform (with its call log and message log), the population register and the
listing systems of regions 01 and 08, over HTTPS with mutual TLS. A fresh world (data directory,
region databases) for every repeat, backend and sender variant.

This script plays the 1177 e-service (its certificate): ``--levels`` concurrent residents
(closed loop: each worker sends the next resident's CreateListing when its previous one is
answered), every resident once, each a real adult of the home county from the pilot's
population generator, with a unique correlation id. Directions: CreateListing at 08 for residents
of 01, at 01 for residents of 08, and both at once (half each).

Per resident:

(a) the CreateListing round trip at the consumer (request out → whole response read);
(b) until the home region has recorded it: a thread polls the home region's own database,
    read-only, every ``--poll-ms``, for the resident's ``home_records`` row naming the
    listing region; (b) is when it was first seen minus when the CreateListing was sent. Same
    process and clock as (a). For a notification delivered while the CreateListing is handled
    the row is committed before the answer leaves B, so (b) < (a).

Also, per level: how the notification was delivered (the CreateListing answered OK: delivered
while handling it; INFO "home_pending": left to the outbox worker; B's outbox row's attempts),
throughput, CPU seconds of every process per resident (from /proc), and a split of (a) from
the platform's call log (``logs/platform.log``: one JSON line per leg, tied together by the
correlation id that B's UpdateListing carries too).

Variants (``--variants``), each in worlds of its own, interleaved: ``as-is`` runs the regions
exactly as the pilot does; ``timed`` runs the same command through a shim in this script that
patches timers around the parts of a request inside the regions (pool queue, transactions,
SQLite's writer lock, commits, the sender) and writes one JSON line per request; ``direct`` is
``timed`` with a sender that puts the validated UpdateListing element into the envelope instead
of a zeep round trip (a candidate change to producers/sender.py, measured, not made).

PostgreSQL: a database per region at 127.0.0.1:5432 (``LISTNING_BENCH_POSTGRES_URL``), created
and dropped here. Prints a table; writes ``benchmarks/results/cross_region.json``. Every child
process is stopped on exit, Ctrl-C or an exception (and dies with this process if it is killed:
the supervisor's PR_SET_PDEATHSIG).
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
REPO = _HERE.parent
sys.path.insert(0, str(REPO))

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import ssl
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from listning.runtime import pg_reachable

PG_ADMIN = os.environ.get("LISTNING_BENCH_POSTGRES_URL",
                          "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RESULTS = REPO / "benchmarks" / "results" / "cross_region.json"
REGIONS = ("01", "08")
OTHER = {"01": "08", "08": "01"}
# Large units offering PV (caps 8 000-11 000); residents are spread over them.
UNITS = {"01": ("SE2321000016-01VC", "SE2321000016-03VC", "SE2321000016-04VC"),
         "08": ("SE2321000073-01HC", "SE2321000073-03HC", "SE2321000073-04HC")}
DIRECTIONS = {  # name → [(listing region B, home region A)]
    "at08-home01": [("08", "01")],
    "at01-home08": [("01", "08")],
    "both": [("08", "01"), ("01", "08")],  # half each, at the same time
}
RECORD_TIMEOUT = 180.0  # seconds to wait for the outbox worker after the last answer
_RESULT_CODE = re.compile(rb"<(?:[\w-]+:)?resultCode>([A-Z_]+)<")
_RESULT_TEXT = re.compile(rb"<(?:[\w-]+:)?resultText>([^<]*)<")
_FAULT_TEXT = re.compile(rb"<faultstring>([^<]*)<")


# --- the world: the pilot's processes --------------------------------------------------------

def _pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _pg_admin(sql: str) -> None:
    from sqlalchemy import create_engine, text
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@dataclass
class World:
    """Catalogue, platform, population register, regions 01 and 08: real processes."""

    directory: Path
    backend: str
    population_db: Path
    population: int
    variant: str = "as-is"
    services: list[Any] = field(default_factory=list)
    running: list[Any] = field(default_factory=list)
    db_urls: dict[str, str] = field(default_factory=dict)
    pg_databases: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def start(self) -> World:
        from listning import pilot

        d = self.directory
        d.mkdir(parents=True)
        # the generated register, copied: _prepare_population then finds it filled
        shutil.copy(self.population_db, d / "population.db")
        plan = pilot.PilotPlan(d, list(REGIONS), population=self.population, free_ports=True)
        ports = pilot._ports(plan)
        ids = pilot._prepare_pki(d / "pki", plan.regions)
        dbs = {"tak": f"sqlite:///{d / 'tak.db'}",
               "population": f"sqlite:///{d / 'population.db'}"}
        pilot._prepare_catalogue(dbs["tak"], plan, ports)
        pilot._prepare_population(dbs["population"], plan)
        services = [s for s in pilot.plan_services(plan, ports, ids, dbs)
                    if s.name != "eservice"]  # this script is the e-service
        for code in REGIONS:
            if self.backend == "postgres":
                name = f"listning_xr_{code}_{uuid.uuid4().hex[:8]}"
                _pg_admin(f'CREATE DATABASE "{name}"')
                self.pg_databases.append(name)
                self.db_urls[code] = _pg_url(name)
            else:
                self.db_urls[code] = (
                    f"sqlite:///{d / 'regions' / code / f'region-{code}.sqlite'}")
        for s in services:
            if s.name.startswith("region-"):
                code = s.name.split("-", 1)[1]
                if self.backend == "postgres":
                    s.argv += ["--db", self.db_urls[code]]
                if self.variant != "as-is":  # the same command, through the variant's shim
                    s.env[TIMINGS_ENV] = str(self.timings_path(s.name))
                    i = s.argv.index("-m")
                    s.argv[i:i + 2] = [str(Path(__file__).resolve()), "--region-shim",
                                       self.variant]
            s.ready_timeout = 120.0
        self.services = services
        for s in services:  # the catalogue first (the platform loads from it), then the rest
            s.start()
            self.running.append(s)
            if s.name == "catalogue":
                s.wait_ready()
        for s in services:
            s.wait_ready()
        self.info = pilot.endpoints(plan, ports, ids)
        self._wait_regions_answer()
        return self

    def _wait_regions_answer(self) -> None:
        """The port is open before the region has loaded everything: ping it through the
        platform until it answers."""
        deadline = time.monotonic() + 120
        pending = set(REGIONS)
        body = {code: ping_envelope(code) for code in REGIONS}
        import requests
        sess = requests.Session()
        sess.cert = (str(self.directory / "pki" / "eservice.pem"),
                     str(self.directory / "pki" / "eservice.key"))
        sess.verify = str(self.directory / "pki" / "ca.pem")
        sess.trust_env = False
        path = contract_path("PingForConfiguration")
        try:
            while pending and time.monotonic() < deadline:
                for code in sorted(pending):
                    with contextlib.suppress(requests.RequestException):
                        r = sess.post(self.info["platform_url"] + path, data=body[code],
                                      headers=soap_headers("PingForConfiguration"), timeout=10)
                        if r.status_code == 200 and b"Fault>" not in r.content:
                            pending.discard(code)
                time.sleep(0.2)
        finally:
            sess.close()
        if pending:
            raise RuntimeError(f"regions {sorted(pending)} do not answer through the platform")

    def timings_path(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}-timings.jsonl"

    def pid(self, name: str) -> int | None:
        for s in self.services:
            if s.name == name and s.proc is not None:
                return s.proc.pid
        return None

    def stop(self) -> None:
        from listning.supervisor import stop_together

        stop_together(self.running)
        self.running.clear()
        for name in self.pg_databases:
            with contextlib.suppress(Exception):
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.pg_databases.clear()

    def __enter__(self) -> World:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- messages --------------------------------------------------------------------------------

def contract_path(name: str) -> str:
    from interactions.contracts import all_contracts
    return all_contracts()[name].path


def soap_headers(name: str, correlation_id: str | None = None) -> dict[str, str]:
    from interactions.contracts import all_contracts
    h = {"Content-Type": "text/xml; charset=utf-8",
         "SOAPAction": f'"{all_contracts()[name].soap_action}"'}
    if correlation_id:
        h["x-skltp-correlation-id"] = correlation_id
    return h


def _build(name: str, address: str, **body: Any) -> bytes:
    """The envelope as consumers.client.ListingClient builds it (zeep, from the WSDL)."""
    from lxml import etree

    from consumers.client import zeep_client
    client = zeep_client(name)
    env = client.create_message(client.service, name,
                                _soapheaders={"LogicalAddress": address}, **body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def create_envelope(pid: str, at: str, home: str, unit: str) -> bytes:
    from consumers import values as v
    return _build("CreateListing", at, actor=v.actor(pid), personId=v.person(pid),
                  healthcareFacilityHSAId=unit, listingType=v.listing_type(),
                  homeCounty=v.county(home))


def ping_envelope(address: str) -> bytes:
    from interactions.contracts import all_contracts
    c = all_contracts()["PingForConfiguration"]
    return _build(c.name, address, serviceContractNamespace=c.namespace, logicalAddress=address)


# --- residents -------------------------------------------------------------------------------

def adult_residents(population_db: Path, seed: int) -> dict[str, list[str]]:
    """Living adults (20-90) of 01 and 08 in the register, shuffled; test persons left out."""
    from producers.population.test_persons import TEST_PERSONS

    test = {p.person_id for p in TEST_PERSONS}
    today = dt.date.today()
    young = today.replace(year=today.year - 20).isoformat()
    old = today.replace(year=today.year - 90).isoformat()
    conn = sqlite3.connect(f"{population_db.as_uri()}?mode=ro", uri=True)
    try:
        out = {}
        for code in REGIONS:
            rows = conn.execute(
                "SELECT person_id FROM persons WHERE county = ? AND deceased_on IS NULL AND "
                "emigrated_on IS NULL AND birth_date <= ? AND birth_date >= ? "
                "ORDER BY person_id", (code, young, old)).fetchall()
            pids = [r[0] for r in rows if r[0] not in test]
            random.Random(f"{seed}-{code}").shuffle(pids)
            out[code] = pids
        return out
    finally:
        conn.close()


# --- observing the home region's database ------------------------------------------------------

class Reader:
    """Read-only queries on one region's database (its own connection)."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            path = Path(url.split(":///", 1)[1])
            self.conn: Any = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                                             check_same_thread=False, timeout=30)
            self.mark = "?"
        else:
            import psycopg2
            dsn = url.replace("postgresql+psycopg2://", "postgresql://")
            self.conn = psycopg2.connect(dsn)
            self.conn.autocommit = True
            self.mark = "%s"

    def query(self, sql: str, args: list[Any]) -> list[tuple]:
        sql = sql.replace("?", self.mark)
        if self.sqlite:
            return self.conn.execute(sql, args).fetchall()
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def recorded(self, listing_county: str, pids: list[str]) -> list[str]:
        marks = ",".join("?" * len(pids))
        sql = ("SELECT person_id FROM home_records WHERE listing_county = ? AND "  # noqa: S608
               f"person_id IN ({marks})")  # only placeholders are formatted in
        return [r[0] for r in self.query(sql, [listing_county, *pids])]

    def outbox(self, to_county: str, pids: list[str]) -> list[tuple]:
        marks = ",".join("?" * len(pids))
        sql = ("SELECT person_id, status, attempts FROM outbox WHERE to_county = ? AND "  # noqa: S608
               f"purpose = 'change' AND person_id IN ({marks})")  # only placeholders
        return self.query(sql, [to_county, *pids])

    def close(self) -> None:
        self.conn.close()


class Poller:
    """A thread that watches the home regions' home_records for the residents in flight."""

    def __init__(self, readers: dict[str, Reader], interval: float) -> None:
        self.readers, self.interval = readers, interval
        self.pending: dict[tuple[str, str], set[str]] = {}  # (home, listing county) → pids
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.cpu = 0.0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def expect(self, pid: str, home: str, listing: str) -> None:
        with self.lock:
            self.pending.setdefault((home, listing), set()).add(pid)

    def outstanding(self, pids: set[str]) -> int:
        with self.lock:
            return sum(len(v & pids) for v in self.pending.values())

    def forget(self) -> None:
        with self.lock:
            self.pending.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                work = [(k, sorted(v)) for k, v in self.pending.items() if v]
            if work:
                cpu = time.thread_time()
                for (home, listing), pids in work:
                    for i in range(0, len(pids), 500):
                        found = self.readers[home].recorded(listing, pids[i:i + 500])
                        now = time.perf_counter()
                        with self.lock:
                            for pid in found:
                                self.seen.setdefault(pid, now)
                                self.pending.get((home, listing), set()).discard(pid)
                self.polls += 1
                self.cpu += time.thread_time() - cpu
            self._stop.wait(self.interval)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --- CPU of the processes --------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def cpu_snapshot(world: World) -> dict[str, float]:
    out = {s.name: cpu_seconds(s.proc.pid if s.proc else None) for s in world.services}
    out["benchmark"] = time.process_time()
    return out


# --- the platform's call log -------------------------------------------------------------------

class CallLogReader:
    """New JSON lines of the platform's call log (stderr → logs/platform.log)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def legs(self) -> dict[str, list[dict[str, Any]]]:
        time.sleep(0.2)  # the platform writes its buffered lines every 50 ms
        by_cid: dict[str, list[dict[str, Any]]] = {}
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += data.rfind(b"\n") + 1
        for line in data.splitlines():
            if not line.startswith(b'{"ts"'):
                continue
            with contextlib.suppress(ValueError):
                leg = json.loads(line)
                by_cid.setdefault(leg["correlation_id"], []).append(leg)
        return by_cid


class TimingsReader:
    """New lines of a region's timings file (variants other than "as-is"), by correlation id
    and contract."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def records(self) -> dict[tuple[str, str], dict[str, float]]:
        if not self.path.exists():
            return {}
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += data.rfind(b"\n") + 1
        out = {}
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                out[(rec.pop("cid"), rec.pop("contract"))] = rec
        return out


def split_of(legs: list[dict[str, Any]]) -> dict[str, float] | None:
    """(a) seen from the platform, for one CreateListing whose UpdateListing carried its
    correlation id: legs in order req-in C, req-out C, req-in U, req-out U, resp-in U,
    resp-out U, resp-in C, resp-out C."""
    outs = [x for x in legs if x["event"] == "resp-out"]
    ins = [x for x in legs if x["event"] == "resp-in"]
    create = next((x for x in outs if x.get("contract") == "CreateListing"), None)
    update = next((x for x in outs if x.get("contract") == "UpdateListing"), None)
    if create is None or update is None or len(ins) != 2:
        return None
    u_prt, c_prt = ins[0]["prt_ms"], ins[1]["prt_ms"]
    return {
        "platform_create_ms": create["duration_ms"] - c_prt,  # the platform's own, leg 1
        "at_b_ms": c_prt - update["duration_ms"],  # B: handler, sender, transport to the VP
        "platform_update_ms": update["duration_ms"] - u_prt,  # the platform's own, leg 2
        "at_a_ms": u_prt,  # A's round trip as the platform sees it (TLS, queue, handler)
        "platform_total_ms": create["duration_ms"],
    }


# --- the load ----------------------------------------------------------------------------------

@dataclass
class Sample:
    pid: str
    at: str
    home: str
    cid: str
    sent: float
    answered: float = 0.0
    status: int = 0
    code: str = ""
    text: str = ""


async def drive(world: World, jobs: list[tuple[str, str, str]], concurrency: int,
                poller: Poller) -> tuple[list[Sample], float]:
    """CreateListing for every (pid, at, home) with ``concurrency`` workers; returns samples
    and the wall time from the first request to the last answer."""
    import aiohttp

    pki = world.directory / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / "eservice.pem"), str(pki / "eservice.key"))
    base = world.info["platform_url"]
    create_url = base + contract_path("CreateListing")
    rng = random.Random(len(jobs))
    bodies = [(pid, at, home, create_envelope(pid, at, home, rng.choice(UNITS[at])))
              for pid, at, home in jobs]  # built before the clock starts
    samples: list[Sample] = []
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ctx, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # one ping per connection first: the consumer's handshakes are not in the figures
        ping_url = base + contract_path("PingForConfiguration")

        async def ping(i: int) -> None:
            code = REGIONS[i % 2]
            async with session.post(ping_url, data=ping_envelope(code),
                                    headers=soap_headers("PingForConfiguration")) as r:
                await r.read()

        await asyncio.gather(*(ping(i) for i in range(concurrency)))

        async def worker() -> None:
            for pid, at, home, body in queue:
                cid = str(uuid.uuid4())
                s = Sample(pid, at, home, cid, 0.0)
                poller.expect(pid, home, at)
                s.sent = time.perf_counter()
                try:
                    async with session.post(create_url, data=body,
                                            headers=soap_headers("CreateListing", cid)) as r:
                        payload = await r.read()
                        s.status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    payload = b""
                    s.code = f"transport: {type(exc).__name__}"
                s.answered = time.perf_counter()
                if not s.code:
                    m = _RESULT_CODE.search(payload)
                    s.code = m.group(1).decode() if m else (
                        "FAULT" if b"Fault>" in payload else "?")
                    t = _RESULT_TEXT.search(payload) or _FAULT_TEXT.search(payload)
                    s.text = t.group(1).decode("utf-8", "replace")[:120] if t else ""
                samples.append(s)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return samples, wall


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)


def stats(xs: list[float]) -> dict[str, float | None]:
    return {"p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95), "p99_ms": pct(xs, 99),
            "max_ms": round(max(xs), 2) if xs else None}


def run_level(world: World, readers: dict[str, Reader], poller: Poller, logs: CallLogReader,
              timings: dict[str, TimingsReader], direction: str, concurrency: int, per_level: int,
              residents: dict[str, Iterator[str]]) -> dict[str, Any]:
    pairs = DIRECTIONS[direction]
    jobs = []
    for i in range(per_level):
        at, home = pairs[i % len(pairs)]
        jobs.append((next(residents[home]), at, home))
    logs.skip()
    for t in timings.values():
        t.skip()
    load_before = os.getloadavg()[0]
    cpu_before = cpu_snapshot(world)
    polls_before, poll_cpu_before = poller.polls, poller.cpu
    samples, wall = asyncio.run(drive(world, jobs, concurrency, poller))
    # wait for the outbox worker to deliver what the requests left to it
    answered = {s.pid for s in samples if s.code in ("OK", "INFO")}
    deadline = time.monotonic() + RECORD_TIMEOUT
    while poller.outstanding(answered) and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.forget()  # a faulted call may still be applied later; not waited for
    cpu_after = cpu_snapshot(world)
    load_after = os.getloadavg()[0]
    legs = logs.legs()
    inside = {code: t.records() for code, t in timings.items()}

    ok = [s for s in samples if s.code in ("OK", "INFO")]
    rtt = [(s.answered - s.sent) * 1000 for s in ok]
    recorded = [(poller.seen[s.pid] - s.sent) * 1000 for s in ok if s.pid in poller.seen]
    sync = [s for s in ok if s.code == "OK"]
    pending = [s for s in ok if s.code == "INFO"]
    rec_sync = [(poller.seen[s.pid] - s.sent) * 1000 for s in sync if s.pid in poller.seen]
    rec_outbox = [(poller.seen[s.pid] - s.sent) * 1000 for s in pending if s.pid in poller.seen]
    # B's outbox rows: attempts (1 = delivered at the first try)
    attempts: Counter[str] = Counter()
    for at in {s.at for s in samples}:
        home = OTHER[at]
        pids = [s.pid for s in samples if s.at == at]
        for i in range(0, len(pids), 500):
            for _pid, status, n in readers[at].outbox(home, pids[i:i + 500]):
                attempts[f"{status}, {n} attempt{'s' if n != 1 else ''}"] += 1
    # the split of (a) from the platform's call log
    splits: dict[str, list[float]] = {}
    consumer_side: list[float] = []
    for s in sync:
        part = split_of(legs.get(s.cid, []))
        if part is None:
            continue
        for k, v in part.items():
            splits.setdefault(k, []).append(v)
        consumer_side.append((s.answered - s.sent) * 1000 - part["platform_total_ms"])
    split = {k: round(statistics.median(v), 2) for k, v in splits.items()}
    if consumer_side:
        split["consumer_and_tls_ms"] = round(statistics.median(consumer_side), 2)
    split["n"] = len(consumer_side)
    # inside the regions (timed variants): B's CreateListing and A's UpdateListing of a call
    parts: dict[str, list[float]] = {}
    for s in sync:
        b = inside.get(s.at, {}).get((s.cid, "CreateListing"))
        a = inside.get(s.home, {}).get((s.cid, "UpdateListing"))
        if b is None or a is None:
            continue
        for side, rec in (("b", b), ("a", a)):
            for k, v in rec.items():
                parts.setdefault(f"{side}_{k}", []).append(v)
    in_regions = {k: round(statistics.median(v), 2) for k, v in sorted(parts.items())}
    in_regions["n"] = len(parts.get("b_wsgi_ms", []))
    worker_updates = sum(1 for cid, ls in legs.items()
                         if all(x.get("contract") != "CreateListing" for x in ls)
                         and any(x.get("contract") == "UpdateListing" for x in ls))
    cpu = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / max(1, len(samples)) * 1000, 2)
           for k in cpu_after}
    cpu["poller"] = round((poller.cpu - poll_cpu_before) / max(1, len(samples)) * 1000, 2)
    errors = Counter(f"{s.code} {s.text}".strip() for s in samples
                     if s.code not in ("OK", "INFO"))
    return {
        "direction": direction, "concurrency": concurrency, "residents": len(samples),
        "ok": len(sync), "info_pending": len(pending), "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "info_texts": dict(Counter(s.text for s in pending).most_common(3)),
        "per_s": round(len(samples) / wall, 2), "wall_s": round(wall, 2),
        "round_trip": stats(rtt), "recorded": stats(recorded),
        "recorded_sync": stats(rec_sync), "recorded_by_outbox": stats(rec_outbox),
        "recorded_before_answer": sum(1 for s in ok if s.pid in poller.seen
                                      and poller.seen[s.pid] <= s.answered),
        "not_recorded": sum(1 for s in ok if s.pid not in poller.seen),
        "faulted_but_recorded": sum(1 for s in samples if s.code not in ("OK", "INFO")
                                    and s.pid in poller.seen),
        "outbox_rows": dict(attempts), "worker_updates_in_call_log": worker_updates,
        "split_ms": split, "in_regions_ms": in_regions, "cpu_ms_per_resident": cpu,
        "polls": poller.polls - polls_before, "load_before": load_before,
        "load_after": load_after,
    }


# --- a run -------------------------------------------------------------------------------------

def warm_up(world: World, residents: dict[str, Iterator[str]], poller: Poller) -> None:
    """Ten cross-region listings each way (the regions' sender pools, the platform's producer
    connections, SQLAlchemy's statement caches), not measured."""
    jobs = [(next(residents[home]), at, home) for at, home in (("08", "01"), ("01", "08"))
            for _ in range(10)]
    asyncio.run(drive(world, jobs, 10, poller))
    deadline = time.monotonic() + 60
    while poller.outstanding({pid for pid, _, _ in jobs}) and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.forget()


def run_world(work: Path, backend: str, variant: str, args: argparse.Namespace,
              population_db: Path, residents: dict[str, Iterator[str]],
              label: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()
    code = code_fingerprint()
    with World(work / label, backend, population_db, args.population, variant) as world:
        print(f"  {label}: world up in {time.perf_counter() - t:.0f} s "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        readers = {code: Reader(world.db_urls[code]) for code in REGIONS}
        poller = Poller(readers, args.poll_ms / 1000).start()
        logs = CallLogReader(Path(world.info["logs"]) / "platform.log")
        timings = {code: TimingsReader(world.timings_path(f"region-{code}")) for code in REGIONS}
        try:
            warm_up(world, residents, poller)
            for direction in args.directions:
                for c in args.levels:
                    row = run_level(world, readers, poller, logs, timings, direction, c,
                                    max(args.per_level, c), residents)
                    row.update(backend=backend, variant=variant, code=code)
                    rows.append(row)
                    r, b = row["round_trip"], row["recorded"]
                    print(f"  {backend:<8} {variant:<10} {direction:<12} c={c:<3} "
                          f"{row['per_s']:>6.1f}/s  (a) p50 {r['p50_ms']} p95 {r['p95_ms']}  "
                          f"(b) p50 {b['p50_ms']} p95 {b['p95_ms']}  ok {row['ok']} "
                          f"pending {row['info_pending']} err {row['errors']} "
                          f"(load {row['load_after']:.1f})", file=sys.stderr, flush=True)
        finally:
            poller.stop()
            for r in readers.values():
                r.close()
    shutil.rmtree(work / label, ignore_errors=True)
    return rows


def median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per (backend, variant, direction, concurrency): the median of every number."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        for row in run:
            key = (row["backend"], row["variant"], row["direction"], row["concurrency"])
            groups.setdefault(key, []).append(row)

    def med(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            keys = {k for v in values for k in v}
            return {k: med([v[k] for v in values if k in v]) for k in sorted(keys)}
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            return round(statistics.median(nums), 2)
        return first

    return [{**med(rows), "repeats": len(rows)} for rows in groups.values()]


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'backend':<9}{'sender':<11}{'direction':<13}{'c':>4}{'res/s':>7}"
            f"{'(a) p50':>9}{'p95':>8}{'p99':>8}{'(b) p50':>9}{'p95':>8}{'p99':>8}"
            f"{'sync':>6}{'outbox':>7}{'err':>5}")
    print(head)
    print("-" * len(head))

    def f(x: Any) -> str:
        return "—" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.1f}"

    for r in rows:
        a, b = r["round_trip"], r["recorded"]
        print(f"{r['backend']:<9}{r['variant']:<11}{r['direction']:<13}{r['concurrency']:>4}"
              f"{r['per_s']:>7.1f}{f(a['p50_ms']):>9}{f(a['p95_ms']):>8}{f(a['p99_ms']):>8}"
              f"{f(b['p50_ms']):>9}{f(b['p95_ms']):>8}{f(b['p99_ms']):>8}"
              f"{r['ok']:>6.0f}{r['info_pending']:>7.0f}{r['errors']:>5.0f}")
    for r in rows:
        if r["errors"] or r["info_pending"]:
            print(f"  {r['backend']} {r['variant']} {r['direction']} c={r['concurrency']}: "
                  f"errors {r['error_kinds'] or '-'}; outbox rows at B after the level "
                  f"{r['outbox_rows']}; not recorded {r['not_recorded']}, faulted but "
                  f"recorded {r['faulted_but_recorded']}")
    print("\n(a) CreateListing round trip at the consumer, ms; (b) until the home region's "
          "database shows the home record, ms;\nsync = answered OK (home region told while the "
          "call was handled); outbox = answered INFO, the outbox worker delivered it later.")
    print("\nwhere (a) goes (medians of the synchronous calls, ms, from the platform's call log):")
    keys = ("consumer_and_tls_ms", "platform_create_ms", "at_b_ms", "platform_update_ms",
            "at_a_ms")
    print(f"{'backend':<9}{'sender':<11}{'direction':<13}{'c':>4}" +
          "".join(f"{k.removesuffix('_ms'):>20}" for k in keys))
    for r in rows:
        sp = r["split_ms"]
        print(f"{r['backend']:<9}{r['variant']:<11}{r['direction']:<13}{r['concurrency']:>4}" +
              "".join(f"{f(sp.get(k)):>20}" for k in keys))
    timed = [r for r in rows if r.get("in_regions_ms", {}).get("n")]
    if timed:
        print("\ninside the regions (timed variants; medians of the synchronous calls, ms):")
        keys = {"b_queue_ms": "B queue", "b_lock_wait_ms": "B lock", "b_transactions_ms": "B tx",
                "b_commit_ms": "B commit", "b_sender_ms": "B send", "b_sender_http_ms": "B http",
                "b_wsgi_ms": "B total", "a_queue_ms": "A queue", "a_lock_wait_ms": "A lock",
                "a_commit_ms": "A commit", "a_wsgi_ms": "A total"}
        print(f"{'backend':<9}{'sender':<11}{'direction':<13}{'c':>4}" +
              "".join(f"{v:>9}" for v in keys.values()))
        for r in timed:
            ir = r["in_regions_ms"]
            print(f"{r['backend']:<9}{r['variant']:<11}{r['direction']:<13}"
                  f"{r['concurrency']:>4}" + "".join(f"{f(ir.get(k)):>9}" for k in keys))
        print("queue: waiting for a thread of the region's pool; lock: SQLite's BEGIN IMMEDIATE "
              "(all transactions of the call); tx: inside transactions, commit included;\n"
              "send: B's UpdateListing (sender), http: of which the client's post and response "
              "check; total: the whole WSGI call (pool thread)")
    print("\nCPU ms per resident, by process:")
    names = ("platform", "region-08", "region-01", "benchmark", "poller")
    print(f"{'backend':<9}{'sender':<11}{'direction':<13}{'c':>4}" +
          "".join(f"{n:>11}" for n in names))
    for r in rows:
        cpu = r["cpu_ms_per_resident"]
        print(f"{r['backend']:<9}{r['variant']:<11}{r['direction']:<13}{r['concurrency']:>4}" +
              "".join(f"{f(cpu.get(n)):>11}" for n in names))


def code_fingerprint() -> str:
    """A hash of the code under test: others edit the repository while a run goes on, and
    each world runs the code as it is when its processes start."""
    import hashlib
    h = hashlib.sha256()
    for top in ("producers", "routing", "interactions", "consumers", "listning"):
        for path in sorted((REPO / top).rglob("*.py")):
            h.update(str(path.relative_to(REPO)).encode())
            with contextlib.suppress(OSError):
                h.update(path.read_bytes())
    return h.hexdigest()[:12]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version()}


# --- the region shim: timings inside the regions, sender variants -------------------------------

# "as-is": `listning region serve` unchanged. "timed": the same, with timers around the parts of
# a request inside the region (no behaviour changed; one JSON line per request to the file in
# LISTNING_BENCH_TIMINGS). "direct": timed, and the sender writes the UpdateListing envelope
# straight from the validated request element instead of through zeep (see _direct_sender).
VARIANTS = ("as-is", "timed", "direct")
TIMINGS_ENV = "LISTNING_BENCH_TIMINGS"


def _install_timers(path: Path) -> None:
    """Patch timers into this region process (called before `listning region serve` runs)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from consumers.client import ListingClient
    from producers.region import Region
    from producers.sender import PlatformSender
    from producers.server import ProducerApp
    from producers.storage.db import Database

    local = threading.local()
    lines: list[str] = []
    lock = threading.Lock()

    def add(key: str, ms: float) -> None:
        rec = getattr(local, "rec", None)
        if rec is not None:
            rec[key] = rec.get(key, 0.0) + ms

    def timed(cls: Any, name: str, key: str) -> None:
        original = getattr(cls, name)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                add(key, (time.perf_counter() - t) * 1000)
        setattr(cls, name, wrapper)

    environ_of, run_of = ProducerApp._environ, ProducerApp._run

    def _environ(self: Any, *a: Any) -> dict[str, Any]:
        env = environ_of(self, *a)
        env["bench.arrived"] = time.perf_counter()
        return env

    def _run(self: Any, environ: dict[str, Any]) -> Any:
        started = time.perf_counter()
        local.rec = {"queue_ms": (started - environ["bench.arrived"]) * 1000}
        try:
            return run_of(self, environ)
        finally:
            rec, local.rec = local.rec, None
            rec["wsgi_ms"] = (time.perf_counter() - started) * 1000
            rec["cid"] = environ.get("HTTP_X_SKLTP_CORRELATION_ID", "")
            rec["contract"] = environ["PATH_INFO"].strip("/").split("/")[0]
            with lock:
                lines.append(json.dumps(rec))

    ProducerApp._environ, ProducerApp._run = _environ, _run
    timed(Region, "handle", "handler_ms")
    Database.transaction = _timed_transaction(Database.transaction, add)  # type: ignore
    timed(PlatformSender, "__call__", "sender_ms")
    timed(ListingClient, "_attempt", "sender_http_ms")

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        conn.info["bench.t"] = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        ms = (time.perf_counter() - conn.info.pop("bench.t", time.perf_counter())) * 1000
        if statement.startswith("BEGIN"):
            add("lock_wait_ms", ms)  # SQLite's BEGIN IMMEDIATE waits for the writer lock
        else:
            add("sql_ms", ms)
            add("statements", 1)

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        local.commit_started = time.perf_counter()

    @event.listens_for(Session, "after_commit")
    def _committed(session: Any) -> None:
        started = getattr(local, "commit_started", None)
        if started is not None:
            add("commit_ms", (time.perf_counter() - started) * 1000)
            local.commit_started = None

    def flush() -> None:
        while True:
            time.sleep(0.1)
            with lock:
                out, lines[:] = list(lines), []
            if out:
                with path.open("a") as f:
                    f.write("\n".join(out) + "\n")
    threading.Thread(target=flush, name="bench-timings", daemon=True).start()


def _timed_transaction(original: Any, add: Any) -> Any:
    @contextlib.contextmanager
    def transaction(self: Any) -> Iterator[Any]:
        t = time.perf_counter()
        try:
            with original(self) as s:
                yield s
        finally:
            add("transactions_ms", (time.perf_counter() - t) * 1000)
            add("transactions", 1)
    return transaction


def _direct_sender() -> None:
    """The sender without zeep: the UpdateListing request element (already written and validated
    by ``zeep_body`` today, then parsed by zeep into objects and written again by zeep) goes into
    the envelope as is. Same client call (``_attempt``: post, read, validate the response), same
    exceptions, so the same classification; the bytes differ only in namespace prefixes."""
    from lxml import etree

    from consumers.client import zeep_client
    from interactions.contracts import REGISTRY_NS, SOAP11_ENV, all_contracts
    from interactions.models import from_element, to_element
    from interactions.validation import validate_element
    from producers import sender
    from producers.outbox import NotDelivered

    contract = all_contracts()["UpdateListing"]
    zeep_client(contract.name)  # the response is still read by zeep in _attempt

    def call(self: Any, to_county: str, request: Any) -> Any:
        cid = sender.current_correlation_id.get() or str(uuid.uuid4())
        try:
            el = to_element(request)
            problems = validate_element(el)
            if problems:
                raise ValueError("the request does not follow the contract: "
                                 + "; ".join(map(str, problems[:3])))
            env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
            header = etree.SubElement(env, f"{{{SOAP11_ENV}}}Header")
            etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = to_county
            etree.SubElement(env, f"{{{SOAP11_ENV}}}Body").append(el)
            body = etree.tostring(env, xml_declaration=True, encoding="utf-8")
            result = self.client._attempt(contract, to_county, body, cid, 1)
        except Exception as exc:  # sorted as PlatformSender sorts them
            failure = sender.classify(exc)
            sender.log.info("UpdateListing to %s failed (%s): %s", to_county,
                            "not delivered" if isinstance(failure, NotDelivered) else "unknown",
                            str(failure)[:300])
            if failure is exc:
                raise
            raise failure from exc
        return from_element(result.payload)

    sender.PlatformSender.__call__ = call  # type: ignore[method-assign]


def region_shim(variant: str, argv: list[str]) -> int:
    """``listning <argv>`` with the variant ``variant`` in place (for A/B runs)."""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}")
    if variant == "direct":
        _direct_sender()
    if variant in ("timed", "direct"):
        _install_timers(Path(os.environ[TIMINGS_ENV]))
    from listning.cli import main as listning_main
    return listning_main(argv)


# --- main --------------------------------------------------------------------------------------

def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--region-shim"]:
        return region_shim(argv[1], argv[2:])
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Directions: " + "; ".join(DIRECTIONS) + ". Sender variants: "
        + ", ".join(VARIANTS) + ".")
    p.add_argument("--repeat", type=int, default=3, help="fresh worlds per backend and variant")
    p.add_argument("--levels", type=_levels, default=[1, 10, 100], metavar="C,C,...",
                   help="concurrent residents (default 1,10,100)")
    p.add_argument("--per-level", type=int, default=100, metavar="N",
                   help="residents per level and direction (at least the concurrency)")
    p.add_argument("--directions", default=",".join(DIRECTIONS),
                   help="comma-separated, of: " + ", ".join(DIRECTIONS))
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="sender variants to compare in the same run")
    p.add_argument("--population", type=int, default=30_000,
                   help="synthetic persons of 01 and 08 (the pilot's generator)")
    p.add_argument("--poll-ms", type=float, default=2.0,
                   help="how often the home regions' databases are read")
    p.add_argument("--seed", type=int, default=None, help="which residents (default: time)")
    p.add_argument("--label", default="", help="stored with the run")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.directions = [d.strip() for d in args.directions.split(",") if d.strip()]
    for d in args.directions:
        if d not in DIRECTIONS:
            p.error(f"unknown direction {d!r}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown sender variant {v!r}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgres" in backends and not pg_reachable(PG_ADMIN):
        print(f"PostgreSQL at {PG_ADMIN} is not reachable: skipped", file=sys.stderr)
        backends.remove("postgres")

    import warnings
    warnings.filterwarnings("ignore", message=".*'cgi' is deprecated.*")
    # Ctrl-C and SIGTERM raise KeyboardInterrupt wherever the main thread is (also inside
    # asyncio.run, which would otherwise only cancel its task): the finally blocks stop every
    # child and drop the databases
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    seed = args.seed if args.seed is not None else int(time.time())
    work = Path(tempfile.mkdtemp(prefix="listning-xr-"))
    load_before = os.getloadavg()
    runs: list[list[dict[str, Any]]] = []
    started = time.perf_counter()
    try:
        population_db = work / "population.db"
        t = time.perf_counter()
        from producers.population.register import PopulationRegister
        reg = PopulationRegister(f"sqlite:///{population_db}")
        try:
            reg.generate(args.population, 1, counties=REGIONS)  # the two counties running
        finally:
            reg.close()
        pool = adult_residents(population_db, seed)
        need = {code: 10 + sum(
            max(args.per_level, c) // len(DIRECTIONS[d]) + 1
            for d in args.directions for c in args.levels
            if any(home == code for _, home in DIRECTIONS[d])) for code in REGIONS}
        for code in REGIONS:
            if len(pool[code]) < need[code]:
                p.error(f"the population has {len(pool[code])} adults of {code}, a world needs "
                        f"{need[code]}: give a larger --population")
        print(f"population {args.population}: generated in {time.perf_counter() - t:.0f} s; "
              f"adults 01 {len(pool['01'])}, 08 {len(pool['08'])}", file=sys.stderr)
        for r in range(args.repeat):
            run: list[dict[str, Any]] = []
            for backend in backends:  # interleaved, so drift hits every row alike
                for variant in (variants if r % 2 == 0 else variants[::-1]):
                    label = f"r{r + 1}-{backend}-{variant.replace(' ', '_')}"
                    # every world has fresh databases: each resident once per world
                    residents = {code: iter(pool[code]) for code in REGIONS}
                    run += run_world(work, backend, variant, args, population_db, residents,
                                     label)
            runs.append(run)
            print(f"repeat {r + 1}/{args.repeat} done (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    med = median_rows(runs)
    now = dt.datetime.now(dt.UTC)
    result = {
        "benchmark": "cross_region", "label": args.label,
        "when": now.isoformat(timespec="seconds"), "date": now.date().isoformat(),
        "machine": {**machine(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "backends": backends, "variants": variants, "seed": seed},
        "duration_s": round(time.perf_counter() - started),
        "code": sorted({row["code"] for run in runs for row in run}),
        "median": med, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"\nmedians of {args.repeat} repeat(s); load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f}; {machine()['cpus']} CPUs\n")
    print_table(med)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every child process stopped", file=sys.stderr)
        sys.exit(130)
