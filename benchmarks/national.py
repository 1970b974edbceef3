"""National scale: the whole country's population register in PostgreSQL (issue 9, item 6).

    .venv/bin/python benchmarks/national.py                      # 10.6 million residents
    .venv/bin/python benchmarks/national.py --residents 500000   # a quick, smaller run

Makes a fresh PostgreSQL database (``listning_bench_national_<random>``, dropped afterwards
unless ``--keep``) and fills it the way ``listning population generate --db postgresql://…``
does — ``PopulationRegister.generate``, the register's bulk path: the synthetic residents
(home counties in proportion to counties.csv, spread over each county's municipalities, an age
pyramid, guardians for every child) streamed in batches of 50 000 with ``COPY``, keys, indexes
and foreign keys built once at the end. Then the ~1,200 units of the 21 shipped region files
(producers/regions/NN.toml) go into a ``units`` table with COPY, and ``ANALYZE``.

Prints a table (stage, rows, seconds, rows/s), residents per county against counties.csv,
units per region, the database's size and the process's peak RSS; writes
``benchmarks/results/national.json``. A progress bar is drawn when stderr is a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO))

from interactions.identifiers import counties  # noqa: E402
from producers.config import REGIONS_DIR, load_config  # noqa: E402
from producers.population.register import PopulationRegister  # noqa: E402
from producers.reports.progress import Progress  # noqa: E402

ADMIN_URL = os.environ.get("LISTNING_BENCH_POSTGRES_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RESULTS = REPO / "benchmarks" / "results" / "national.json"
AS_OF = date(2026, 11, 25)  # fixed, so that a rerun makes the same people
UNITS_DDL = """CREATE TABLE units (
    hsa_id varchar(31) PRIMARY KEY, county char(2) NOT NULL, name text NOT NULL,
    municipality char(4) NOT NULL, latitude double precision, longitude double precision,
    cap integer NOT NULL, queue_allowed boolean, fixed_doctor_contact boolean,
    staff integer NOT NULL)"""


def national_population() -> int:
    return sum(c.population for c in counties().values())


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return 0.0


def load_units(url: str) -> tuple[int, dict[str, int]]:
    """The units of every shipped region file into ``units`` (COPY)."""
    buf = io.StringIO()
    per_region: dict[str, int] = {}
    for path in sorted(REGIONS_DIR.glob("[0-9][0-9].toml")):
        cfg = load_config(path)
        per_region[cfg.county] = len(cfg.units)
        for u in cfg.units:
            buf.write("\t".join((u.hsa_id, cfg.county, u.name, u.municipality,
                                 f"{u.latitude}", f"{u.longitude}", str(u.cap),
                                 "t" if u.queue_allowed else "f",
                                 "t" if u.fixed_doctor_contact else "f",
                                 str(len(u.staff)))) + "\n")
    buf.seek(0)
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(UNITS_DDL)
            cur.copy_expert("COPY units FROM STDIN", buf)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return sum(per_region.values()), per_region


def run(url: str, residents: int, seed: int) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    reg = PopulationRegister(url)
    bar = Progress("population", residents + 5)
    last, rows_done_at = 0, 0.0

    def progress(done: int, _total: int) -> None:
        nonlocal last, rows_done_at
        bar.tick(done - last)
        last, rows_done_at = done, time.perf_counter()

    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        written = reg.generate(residents, seed, progress=progress, as_of=AS_OF)
    finally:
        bar.close()
    t_end = time.perf_counter()
    reg.close()
    stages["population: generate + COPY"] = {
        "rows": written, "seconds": rows_done_at - t0,
        "python_cpu_seconds": round(time.process_time() - cpu0, 1)}
    stages["population: keys, indexes, foreign keys, commit"] = {
        "rows": None, "seconds": t_end - rows_done_at}

    t = time.perf_counter()
    n_units, per_region = load_units(url)
    stages["units (21 region files, COPY)"] = {"rows": n_units,
                                               "seconds": time.perf_counter() - t}
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        t = time.perf_counter()
        conn.execute(text("ANALYZE"))
        stages["ANALYZE"] = {"rows": None, "seconds": time.perf_counter() - t}
        by_county = dict(conn.execute(text(
            "SELECT county, count(*) FROM persons GROUP BY county ORDER BY county")).all())
        guardianships = conn.scalar(text("SELECT count(*) FROM guardianships"))
        size = conn.scalar(text("SELECT pg_database_size(current_database())"))
        pg_version = conn.scalar(text("SHOW server_version"))
    engine.dispose()
    total = sum(s["seconds"] for s in stages.values())
    for s in stages.values():
        s["seconds"] = round(s["seconds"], 1)
        s["per_s"] = round(s["rows"] / s["seconds"]) if s["rows"] and s["seconds"] else None
    share = {c: {"residents": by_county.get(c, 0),
                 "expected": round(k.population / national_population() * residents),
                 "units": per_region.get(c, 0)}
             for c, k in counties().items()}
    return {"stages": stages, "total_seconds": round(total, 1), "persons": written,
            "guardianships": guardianships, "units": n_units, "by_county": share,
            "database_mb": round(size / 2**20), "peak_rss_mb": round(peak_rss_mb()),
            "postgresql": pg_version}


def print_report(result: dict[str, Any]) -> None:
    r = result["run"]
    print(f"\n{'stage':<48}{'rows':>12}{'seconds':>10}{'rows/s':>10}")
    for name, s in r["stages"].items():
        rows = f"{s['rows']:,}".replace(",", " ") if s["rows"] else "—"
        per_s = f"{s['per_s']:,}".replace(",", " ") if s["per_s"] else "—"
        print(f"{name:<48}{rows:>12}{s['seconds']:>10.1f}{per_s:>10}")
    print(f"{'total':<48}{'':>12}{r['total_seconds']:>10.1f}")
    gen = r["stages"]["population: generate + COPY"]
    print(f"(Python CPU time while generating: {gen['python_cpu_seconds']:.0f} s of "
          f"{gen['seconds']:.0f} s wall)")
    print(f"\n{'county':<8}{'residents':>12}{'expected':>12}{'units':>8}  region")
    for code, c in r["by_county"].items():
        print(f"{code:<8}{c['residents']:>12,}{c['expected']:>12,}{c['units']:>8}  "
              f"{counties()[code].region_name}")
    print(f"\n{r['persons']:,} persons, {r['guardianships']:,} guardianships, {r['units']} units;"
          f" database {r['database_mb']:,} MB; peak RSS {r['peak_rss_mb']} MB; "
          f"load average before {result['machine']['loadavg_before'][0]:.1f}, "
          f"after {result['machine']['loadavg_after'][0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--residents", type=int, default=national_population(),
                   help="synthetic residents (default: Sweden, the sum of counties.csv)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    name = f"listning_bench_national_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    try:
        run_result = run(url, args.residents, args.seed)
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    result = {
        "when": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "settings": {"residents": args.residents, "seed": args.seed, "as_of": str(AS_OF),
                     "database": name if args.keep else None},
        "run": run_result,
    }
    print_report(result)
    if args.out:
        runs = []
        if args.out.exists():  # keep earlier runs (of other sizes) next to this one
            old = json.loads(args.out.read_text())
            runs = old.get("runs", [])
        runs.append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": runs}, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
