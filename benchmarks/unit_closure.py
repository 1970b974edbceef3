"""Unit closure at scale (issue 9, item 4): a unit with 20,000 listed residents closes.

    .venv/bin/python benchmarks/unit_closure.py                     # every row, 3 repeats
    .venv/bin/python benchmarks/unit_closure.py --modes inproc --backends sqlite --repeat 1
    .venv/bin/python benchmarks/unit_closure.py --residents 2000   # a quick look

The world: Region Kalmar län (08, passive listing) from a copy of ``producers/regions/08.toml``
whose "Hälsocentralen Kalmar centrum" (``SE2321000073-01HC``) has its cap raised to the number
of residents; ``--residents`` (20,000) are listed there, ``--foreign-share`` (5 %) of them
residents of the neighbouring regions (Jönköpings län 06, which lists passively; Blekinge 10
and Östergötland 05, which do not), from their border municipalities. The other Kalmar units are
``--background`` (40 %) full. Kalmar's database knows where its residents live (as the
population feed leaves it). Every home region's database knows its
residents and records them as listed in 08 (home record and its history), as if their
CreateListing had gone through the platform. Everything is loaded in bulk (COPY on
PostgreSQL, executemany on SQLite), not through SOAP.

The closure, measured from the start of the close to the moment the last UpdateListing is
applied at its home region:

- 08 ends every listing at the unit, lists its own residents passively at the nearest open
  unit (units fill and the next nearest takes over), and queues one UpdateListing (purpose
  ``closure``, new = home) per resident of another region;
- each home region takes its residents back; 06 lists them at its nearest open unit, 10 and 05
  leave them listed nowhere until they choose.

Modes (``--modes``):

- ``inproc``: the four regions in this process, wired with ``producers.inprocess.Network``
  (UpdateListing as XSD-validated XML, as the tests do); ``flows.close_unit``, then the
  outbox (``outbox.run_due``) until nothing is pending;
- ``processes``: the real thing — catalogue, platform, population register and the four
  regions as the pilot runs them (``listning.pilot.plan_services``: same command lines,
  certificates, mutual TLS, free ports), the closure by the operator command
  ``listning region close-unit`` in its own process, delivery by region 08's own outbox worker
  through the platform; done when the home regions' databases show every resident taken back.
  ``--outbox-interval`` is passed to the regions (``listning region serve``'s default is 2 s).

Backends (``--backends``): SQLite files, PostgreSQL (one database per region at
127.0.0.1:5432, made and dropped here). Prints a table; writes
``benchmarks/results/unit_closure.json`` (appended: every run, medians, load average
before/after each run, the command's output).
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REPO = _HERE.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, insert, text

from interactions import identifiers as ids
from interactions.identifiers import make_personal_id, personal_id_root
from listning.runtime import pg_reachable

PG_ADMIN = os.environ.get("LISTNING_BENCH_POSTGRES_URL",
                          "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RESULTS = REPO / "benchmarks" / "results" / "unit_closure.json"
CLOSING = "08"
UNIT = "SE2321000073-01HC"  # Hälsocentralen Kalmar centrum, cap 9 000 in the shipped file
HOMES = {"06": 0.5, "10": 0.25, "05": 0.25}  # share of the residents of other regions
# Where the residents live: Kalmar's own by the closing unit and around it; the others in the
# municipalities of their county that border on Kalmar län.
OWN_MUNICIPALITIES = {"0880": 0.75, "0840": 0.10, "0881": 0.05, "0834": 0.05, "0885": 0.05}
HOME_MUNICIPALITIES = {"06": ("0685", "0686"), "10": ("1080", "1081"),
                       "05": ("0563", "0513")}
REGIONS = [CLOSING, *HOMES]


# --- the world -------------------------------------------------------------------------------

@dataclass
class Resident:
    pid: str
    home: str
    municipality: str
    since: dt.datetime  # registered at and in force from


@dataclass
class World:
    """Who is listed where before the closure."""

    at_unit: list[Resident]
    background: dict[str, list[Resident]]  # other Kalmar units → residents listed there
    config_path: Path
    cap: int

    @property
    def own(self) -> list[Resident]:
        return [r for r in self.at_unit if r.home == CLOSING]

    def foreign(self, home: str | None = None) -> list[Resident]:
        return [r for r in self.at_unit if r.home != CLOSING and (home is None or r.home == home)]


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def copied_config(work: Path, cap: int) -> Path:
    """producers/regions/08.toml with the closing unit's cap raised to ``cap``."""
    source = (REPO / "producers" / "regions" / f"{CLOSING}.toml").read_text(encoding="utf-8")
    head, sep, rest = source.partition(f'hsa_id = "{UNIT}"')
    rest, n = re.subn(r"(?m)^cap = \d+", f"cap = {cap}", rest, count=1)
    assert sep and n == 1, "the closing unit is not where it used to be in 08.toml"
    path = work / f"{CLOSING}-closure.toml"
    path.write_text(head + sep + rest, encoding="utf-8")
    return path


def make_world(work: Path, residents: int, foreign_share: float, background: float,
               seed: int, now: dt.datetime, avoid: set[str] = frozenset()) -> World:
    from producers.config import load_config

    rng = random.Random(seed)
    seen = set(avoid)

    def person(home: str, municipality: str) -> Resident:
        while True:
            born = dt.date(1935 + rng.randrange(70), 1 + rng.randrange(12),
                           1 + rng.randrange(28))
            pid = make_personal_id(born, rng.randrange(1000))
            if pid not in seen:
                seen.add(pid)
                since = now - dt.timedelta(days=30 + rng.randrange(3000),
                                           minutes=rng.randrange(600))
                return Resident(pid, home, municipality, since.replace(microsecond=0))

    at_unit = []
    n_foreign = round(residents * foreign_share)
    for i in range(residents):
        if i < n_foreign:
            home = _pick(rng, HOMES)
            at_unit.append(person(home, rng.choice(HOME_MUNICIPALITIES[home])))
        else:
            at_unit.append(person(CLOSING, _pick(rng, OWN_MUNICIPALITIES)))
    rng.shuffle(at_unit)  # listed over the years, in no order of home region
    cfg_path = copied_config(work, residents)
    cfg = load_config(cfg_path)
    others = {u.hsa_id: [person(CLOSING, u.municipality)
                         for _ in range(int(u.cap * background))]
              for u in cfg.units if u.hsa_id != UNIT}
    return World(at_unit, others, cfg_path, residents)


# --- databases -------------------------------------------------------------------------------

@contextlib.contextmanager
def databases(backend: str, work: Path, counties: list[str]) -> Iterator[dict[str, str]]:
    """A fresh, empty database URL per region (migrated by the first open)."""
    if backend == "sqlite":
        d = work / f"db-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        yield {c: f"sqlite:///{d / f'region-{c}.sqlite'}" for c in counties}
        return
    names = {c: f"listning_closure_{c}_{uuid.uuid4().hex[:8]}" for c in counties}
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield {c: PG_ADMIN.rsplit("/", 1)[0] + "/" + name for c, name in names.items()}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bulk(engine: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL, one executemany on SQLite."""
    if not rows:
        return
    cols = list(rows[0])
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        return

    def cell(v: Any) -> str:
        if v is None:
            return r"\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        if isinstance(v, dt.datetime | dt.date):
            return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
        return str(v)

    buf = io.StringIO()
    for r in rows:
        buf.write("\t".join(cell(r[c]) for c in cols) + "\n")
    buf.seek(0)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN", buf)
        raw.commit()
    finally:
        raw.close()


def _person(r: Resident, now: dt.datetime, home_known: bool = True) -> dict[str, Any]:
    return {"person_id": r.pid, "id_root": personal_id_root(r.pid),
            "home_county": r.home if home_known else None,
            "municipality": r.municipality if home_known else None,
            "birth_date": ids.birth_date_of(r.pid), "deceased": False, "emigrated": False,
            "passive_listing_after": None, "updated_at": now}


def _home(r: Resident, county: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The home record (listed in ``county``) and its open history period."""
    record = {"person_id": r.pid, "listing_county": county, "since": r.since,
              "effective_at": r.since, "event_at": r.since, "type_code": ids.LISTING_TYPE_PV,
              "type_system": ids.LISTING_TYPE_CODE_SYSTEM}
    period = {"person_id": r.pid, "listing_county": county, "valid_from": r.since,
              "valid_to": None, "effective_at": r.since, "recorded_at": r.since,
              "event_at": r.since, "type_code": ids.LISTING_TYPE_PV,
              "type_system": ids.LISTING_TYPE_CODE_SYSTEM, "end_reason": None}
    return record, period


def load(world: World, urls: dict[str, str], now: dt.datetime) -> dict[str, float]:
    """Migrate every region's database and load the world into it; seconds per region."""
    from producers.storage import open_database
    from producers.storage.models import HomeHistory, HomeRecord, Listing, Person

    took = {}
    for county, url in urls.items():
        start = time.perf_counter()
        db = open_database(url)
        persons, listings, records, periods = [], [], [], []
        if county == CLOSING:
            placed = [(UNIT, r) for r in world.at_unit]
            placed += [(u, r) for u, rs in world.background.items() for r in rs]
            for unit, r in placed:
                persons.append(_person(r, now, home_known=r.home == CLOSING))
                listings.append({"person_id": r.pid, "unit_hsa_id": unit,
                                 "type_code": ids.LISTING_TYPE_PV,
                                 "type_system": ids.LISTING_TYPE_CODE_SYSTEM,
                                 "personnel_hsa_id": None, "home_county": r.home,
                                 "valid_from": r.since, "valid_to": None,
                                 "registered_at": r.since, "origin": "choice",
                                 "end_reason": None})
                if r.home == CLOSING:
                    rec, period = _home(r, CLOSING)
                    records.append(rec)
                    periods.append(period)
        else:
            for r in world.foreign(county):
                persons.append(_person(r, now))
                rec, period = _home(r, CLOSING)
                records.append(rec)
                periods.append(period)
        for table, rows in ((Person.__table__, persons), (Listing.__table__, listings),
                            (HomeRecord.__table__, records),
                            (HomeHistory.__table__, periods)):
            _bulk(db.engine, table, rows)
        if not db.is_sqlite:
            with db.engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
        db.dispose()
        took[county] = round(time.perf_counter() - start, 2)
    return took


# --- checking the outcome --------------------------------------------------------------------

def outcome(urls: dict[str, str]) -> dict[str, Any]:
    """What the databases say after the closure (read-only SQL on every region)."""
    out: dict[str, Any] = {}
    eng = create_engine(urls[CLOSING])
    with eng.connect() as conn:
        out["left_at_unit"] = conn.execute(text(
            "SELECT count(*) FROM listings WHERE unit_hsa_id = :u AND valid_to IS NULL"),
            {"u": UNIT}).scalar_one()
        out["relisted_here"] = conn.execute(text(
            "SELECT count(*) FROM listings WHERE origin = 'passive' AND valid_to IS NULL")
        ).scalar_one()
        out["relisted_units"] = conn.execute(text(
            "SELECT count(DISTINCT unit_hsa_id) FROM listings WHERE origin = 'passive'")
        ).scalar_one()
        rows = conn.execute(text(
            "SELECT to_county, status, count(*) FROM outbox WHERE purpose = 'closure' "
            "GROUP BY to_county, status")).all()
        out["notifications"] = {f"{c}:{s}": n for c, s, n in rows}
    eng.dispose()
    for county in HOMES:
        eng = create_engine(urls[county])
        with eng.connect() as conn:
            out[f"still_listed_in_08@{county}"] = conn.execute(text(
                "SELECT count(*) FROM home_records WHERE listing_county = '08'")).scalar_one()
            out[f"relisted@{county}"] = conn.execute(text(
                "SELECT count(*) FROM listings WHERE origin = 'passive' AND valid_to IS NULL")
            ).scalar_one()
        eng.dispose()
    return out


def check(world: World, out: dict[str, Any]) -> list[str]:
    """Problems with the outcome (empty: every resident accounted for)."""
    problems = []
    if out["left_at_unit"]:
        problems.append(f"{out['left_at_unit']} listings still at the closed unit")
    delivered = sum(n for k, n in out["notifications"].items() if k.endswith(":delivered"))
    if delivered != len(world.foreign()):
        problems.append(f"{delivered} closure notifications delivered, expected "
                        f"{len(world.foreign())}: {out['notifications']}")
    if out["relisted_here"] != len(world.own):
        problems.append(f"{out['relisted_here']} own residents relisted, expected "
                        f"{len(world.own)}")
    for county in HOMES:
        if out[f"still_listed_in_08@{county}"]:
            problems.append(f"{county} still records {out[f'still_listed_in_08@{county}']} "
                            f"residents as listed in 08")
    if out["relisted@06"] != len(world.foreign("06")):
        problems.append(f"06 relisted {out['relisted@06']}, expected "
                        f"{len(world.foreign('06'))}")
    return problems


# --- in-process ------------------------------------------------------------------------------

def run_inproc(world: World, urls: dict[str, str], batch: int | None) -> dict[str, Any]:
    from producers import flows, outbox
    from producers.config import load_config, shipped_config
    from producers.context import local_now
    from producers.inprocess import Network
    from producers.region import Region
    from producers.storage import open_database

    network = Network(local_now)
    regions = {}
    for county, url in urls.items():
        cfg = load_config(world.config_path) if county == CLOSING else shipped_config(county)
        regions[county] = network.regions[county] = Region(
            cfg, open_database(url), sender=network.sender_for(county))
    r08 = regions[CLOSING]
    try:
        load_before = os.getloadavg()[0]
        cpu, start = time.process_time(), time.perf_counter()
        closed_at = local_now()
        kwargs = {} if batch is None else {"batch": batch}
        ended = flows.close_unit(r08, UNIT, closed_at, **kwargs)
        closed = time.perf_counter()
        sent = Counter[str]()
        while True:  # the outbox worker, without its pause between passes
            counts = outbox.run_due(r08, limit=100)
            sent.update(counts)
            if not counts:
                break
        end = time.perf_counter()
        cpu = time.process_time() - cpu
        return {"ended": ended, "close_s": round(closed - start, 2),
                "deliver_s": round(end - closed, 2), "total_s": round(end - start, 2),
                "cpu_s": round(cpu, 2), "deliveries": dict(sent),
                "load_before": load_before, "load_after": os.getloadavg()[0],
                "closed_at": closed_at.isoformat()}
    finally:
        for r in regions.values():
            r.db.dispose()


# --- real processes --------------------------------------------------------------------------

def population_template(work: Path, size: int, seed: int) -> tuple[Path, set[str]]:
    """The pilot's population register, made once and copied into every world; and its
    persons, whom the synthetic residents must not collide with."""
    from producers.population.register import PopulationRegister

    path = work / "population-template.db"
    reg = PopulationRegister(f"sqlite:///{path}")
    try:
        reg.generate(size, seed)
        with reg.engine.connect() as conn:
            pids = set(conn.execute(text("SELECT person_id FROM persons")).scalars())
    finally:
        reg.close()
    return path, pids


def _count(engine: Any, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def run_processes(world: World, backend: str, work: Path, population_db: Path,
                  outbox_interval: float, batch: int, timeout: float) -> dict[str, Any]:
    """The pilot's processes with the world loaded; the closure by the operator command."""
    from listning import pilot as pilot_mod
    from listning.supervisor import stop_together
    from producers.config import default_database_url
    from producers.context import local_now

    d = (work / f"pilot-{uuid.uuid4().hex[:6]}").resolve()
    d.mkdir()
    plan = pilot_mod.PilotPlan(d, REGIONS, population=1, free_ports=True)
    ports = pilot_mod._ports(plan)
    ids_ = pilot_mod._prepare_pki(d / "pki", plan.regions)
    dbs = {"tak": f"sqlite:///{d / 'tak.db'}", "population": f"sqlite:///{d / 'population.db'}"}
    shutil.copy(population_db, d / "population.db")
    pilot_mod._prepare_catalogue(dbs["tak"], plan, ports)
    services = [s for s in pilot_mod.plan_services(plan, ports, ids_, dbs)
                if s.name != "eservice"]
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":  # where `listning pilot` keeps them
            urls = {c: default_database_url(c, d / "regions" / c) for c in REGIONS}
        else:
            urls = stack.enter_context(databases(backend, work, REGIONS))
        now = local_now()
        loaded = load(world, urls, now)
        for s in services:
            if not s.name.startswith("region-"):
                continue
            county = s.name.removeprefix("region-")
            if county == CLOSING:  # the copied file, with the unit's cap raised
                s.argv[s.argv.index("--config") + 1] = str(world.config_path)
            s.argv += ["--db", urls[county], "--outbox-interval", str(outbox_interval)]
            s.ready_timeout = 180
        running: list[Any] = []
        engines = {c: create_engine(u) for c, u in urls.items()}
        try:
            started = time.perf_counter()
            for s in services:  # the catalogue first: the platform loads from it
                s.start()
                running.append(s)
                if s.name == "catalogue":
                    s.wait_ready()
            for s in services:
                s.wait_ready()
            startup = time.perf_counter() - started
            expected = len(world.foreign())
            load_before = os.getloadavg()[0]
            out_path, err_path = d / "close-unit.out", d / "close-unit.err"
            start = time.perf_counter()
            with out_path.open("w") as out, err_path.open("w") as err:
                cmd = subprocess.Popen(
                    [sys.executable, "-m", "listning", "region", "close-unit", UNIT,
                     "--config", str(world.config_path), "--db", urls[CLOSING],
                     "--batch", str(batch)], stdout=out, stderr=err, cwd=str(REPO))
            closed: float | None = None
            first_done = None  # the first resident taken back by a home region
            while True:  # the worker delivers while the command still runs
                if closed is None and cmd.poll() is not None:
                    closed = time.perf_counter()
                    if cmd.returncode != 0:
                        raise RuntimeError(f"close-unit failed ({cmd.returncode}): "
                                           f"{err_path.read_text()[-2000:]}")
                pending = _count(engines[CLOSING], "SELECT count(*) FROM outbox WHERE "
                                 "purpose = 'closure' AND status = 'pending'")
                left = {c: _count(engines[c], "SELECT count(*) FROM home_records "
                                  "WHERE listing_county = '08'") for c in HOMES}
                if first_done is None and sum(left.values()) < expected:
                    first_done = time.perf_counter() - start
                if closed is not None and not pending and not any(left.values()):
                    break
                if time.perf_counter() - start > timeout:
                    raise TimeoutError(f"not done after {timeout:.0f} s: {pending} pending, "
                                       f"{left} still recorded as listed in 08")
                time.sleep(0.25)
            end = time.perf_counter()
            time.sleep(1)  # let the home regions' last answers be recorded as delivered
            return {"startup_s": round(startup, 1), "load_s": loaded, "outcome": outcome(urls),
                    "close_s": round(closed - start, 2), "deliver_s": round(end - closed, 2),
                    "total_s": round(end - start, 2),
                    "first_applied_s": round(first_done, 2) if first_done else None,
                    "command_output": out_path.read_text().strip().splitlines(),
                    "load_before": load_before, "load_after": os.getloadavg()[0],
                    "closed_at": now.isoformat()}
        finally:
            for e in engines.values():
                e.dispose()
            stop_together(running)


# --- main ------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    import sqlalchemy

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "sqlalchemy": sqlalchemy.__version__, "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--residents", type=int, default=20_000, help="listed at the closing unit")
    p.add_argument("--foreign-share", type=float, default=0.05,
                   help="of them residents of other regions (06, 10, 05)")
    p.add_argument("--background", type=float, default=0.4,
                   help="how full the other Kalmar units are before the closure")
    p.add_argument("--modes", default="inproc,processes")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch", type=int, default=500, help="listings per transaction")
    p.add_argument("--outbox-interval", type=float, default=2.0,
                   help="processes: `listning region serve --outbox-interval` (its default: 2)")
    p.add_argument("--timeout", type=float, default=1800, help="per run, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--label", default="")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import logging
    import warnings
    warnings.filterwarnings("ignore", message=".*'cgi' is deprecated.*")
    logging.basicConfig(level=logging.WARNING)
    from producers.context import local_now

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgres" in backends and not pg_reachable(PG_ADMIN):
        print(f"PostgreSQL at {PG_ADMIN} is not reachable: skipped", file=sys.stderr)
        backends.remove("postgres")
    work = Path(tempfile.mkdtemp(prefix="listning-closure-"))
    loadavg_before = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        population_db, taken = population_template(work, 30, 1)
        world = make_world(work, args.residents, args.foreign_share, args.background,
                           args.seed, local_now(), avoid=taken)
        print(f"world: {len(world.at_unit)} listed at {UNIT} ({len(world.own)} of region 08, "
              + ", ".join(f"{len(world.foreign(c))} of {c}" for c in HOMES)
              + f"); {sum(map(len, world.background.values()))} at the other units",
              file=sys.stderr)
        for r in range(args.repeat):
            for mode in modes:
                for backend in backends:
                    name = f"{mode}/{backend}"
                    if mode == "processes":
                        name += f" (outbox interval {args.outbox_interval:g} s)"
                    started = time.perf_counter()
                    if mode == "inproc":
                        with databases(backend, work, REGIONS) as urls:
                            seeded = load(world, urls, local_now())
                            run = run_inproc(world, urls, args.batch)
                            run["load_s"] = seeded
                            run["outcome"] = outcome(urls)
                    else:
                        run = run_processes(world, backend, work, population_db,
                                            args.outbox_interval, args.batch, args.timeout)
                    run["problems"] = check(world, run["outcome"])
                    rows.setdefault(name, []).append(run)
                    print(f"repeat {r + 1}/{args.repeat} {name}: total {run['total_s']} s "
                          f"(close {run['close_s']} s), load {os.getloadavg()[0]:.1f}, "
                          f"{len(run['problems'])} problems, "
                          f"{time.perf_counter() - started:.0f} s with set-up",
                          file=sys.stderr)
                    for problem in run["problems"]:
                        print(f"  PROBLEM: {problem}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 2)

    medians = {name: {k: med(runs, k) for k in ("close_s", "deliver_s", "total_s")}
               for name, runs in rows.items()}
    invocation = {
        "label": args.label,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_before": loadavg_before,
                    "loadavg_after": os.getloadavg()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "world": {"at_unit": len(world.at_unit), "own": len(world.own),
                  **{f"from_{c}": len(world.foreign(c)) for c in HOMES},
                  "background": sum(map(len, world.background.values()))},
        "median": medians, "runs": rows,
    }
    print(f"\n{len(world.at_unit)} residents at {UNIT}: {len(world.own)} of 08, "
          f"{len(world.foreign())} of other regions; medians of {args.repeat} "
          f"(load average before {loadavg_before[0]:.1f}, after {os.getloadavg()[0]:.1f})")
    print(f"{'row':<44}{'close s':>9}{'deliver s':>11}{'total s':>9}{'relisted':>10}"
          f"{'notified':>10}{'@06':>6}{'ok':>5}")
    for name, runs in rows.items():
        m, o = medians[name], runs[-1]["outcome"]
        delivered = sum(n for k, n in o["notifications"].items() if k.endswith(":delivered"))
        ok = "yes" if not any(r["problems"] for r in runs) else "NO"
        print(f"{name:<44}{m['close_s']:>9.1f}{m['deliver_s']:>11.1f}{m['total_s']:>9.1f}"
              f"{o['relisted_here']:>10}{delivered:>10}{o['relisted@06']:>6}{ok:>5}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        history = previous.get("invocations", [])
        history.append(invocation)
        args.out.write_text(json.dumps({"invocations": history}, indent=1, default=str) + "\n")
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
