"""Reports benchmark: a Stockholm-sized region in PostgreSQL and the ``listed`` report (CSV).

    .venv/bin/python benchmarks/reports.py [--residents 2500000] [--runs 3] [--keep] [--reuse]

Loads a fresh database (``listning_bench_reports``; dropped afterwards unless ``--keep``) with
the region's schema (the real migrations) and, with COPY:

- ``--residents`` residents of county 01 (persons), 96 % of them listed at one of 230 units
  (22 units of producers/regions/01.toml, each repeated with a new HSA-id); 10 % of the listed
  have an earlier, ended listing too (history the report must skip), 30 % of listings at a
  unit with staff have a fixed doctor contact; 1.5 % are listed in another region (home records
  only, and their history); residents of other counties listed here: 1 % of the residents;
  0.5 % of listings changed paying region once (a move);
- then ``ANALYZE``.

Each run is the real command in a fresh process, ``python -m producers.reports.cli report
listed --config <synthetic 01> --db <url> --format csv --out <file>``: wall time, rows, rows/s,
the child's peak RSS and the file size. ``seconds`` is the report itself (after the
interpreter has started and imported the code); ``process_seconds`` the whole command.
One HTML (totals + charts) and one settlement run follow.
Writes benchmarks/results/reports.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py (the platform benchmark) would shadow the standard library's platform
# module, which SQLAlchemy imports: take this script's folder off the path first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402

import tomli_w  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO))

from producers.config import load_config  # noqa: E402
from producers.storage import open_database  # noqa: E402

ADMIN_URL = os.environ.get("LISTNING_BENCH_POSTGRES_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
DB_NAME = "listning_bench_reports"
UNIT_COPIES = 10  # 22 units x ~10.5 = 230 units, about Stockholm's count of vårdcentraler
OTHER = ["03", "04", "05", "06", "07", "08", "09", "10", "12", "13", "14", "17", "18", "19",
         "20", "21", "22", "23", "24", "25"]
PV = ("PV", "1.2.752.129.2.2.1.18")


def synthetic_config(work: Path, url: str) -> Path:
    """producers/regions/01.toml with 230 units (each real unit repeated, new HSA-ids)."""
    data = tomllib.loads((REPO / "producers/regions/01.toml").read_text(encoding="utf-8"))
    base = data["units"]
    units = []
    for i in range(230):
        u = dict(base[i % len(base)])
        u["hsa_id"] = f"SE2321000016-B{i:03d}VC"
        u["name"] = f"{u['name']} {i // len(base) + 1}"
        u["cap"] = 20000
        units.append(u)
    data["units"] = units
    data["region"]["database_url"] = url
    path = work / "01-bench.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    load_config(path)  # the synthetic file is a valid region file
    return path


def _copy(raw, table: str, columns: str, rows) -> int:  # type: ignore[no-untyped-def]
    """COPY rows (tuples of already formatted text) into ``table``, 200 000 at a time."""
    n = 0
    buf = io.StringIO()
    cur = raw.cursor()

    def flush() -> None:
        buf.seek(0)
        cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buf)
        buf.seek(0)
        buf.truncate()

    for row in rows:
        buf.write("\t".join(row))
        buf.write("\n")
        n += 1
        if n % 200_000 == 0:
            flush()
    flush()
    cur.close()
    return n


def load(url: str, config_path: Path, residents: int, seed: int,
         work: Path) -> dict[str, int]:
    cfg = load_config(config_path)
    rng = random.Random(seed)
    units = [(u.hsa_id, [s.hsa_id for s in u.staff]) for u in cfg.units]
    now = datetime(2026, 11, 25, 10, 0, 0)
    ts = "%Y-%m-%d %H:%M:%S"
    counts = {"persons": 0, "listings": 0, "ended_listings": 0, "home_records": 0,
              "visitors": 0}
    listings_path = work / "listings.tsv"  # streamed to disk, then COPY: steady memory
    listings_file = listings_path.open("w", encoding="utf-8")
    homes: list[tuple[str, ...]] = []
    payers: list[tuple[str, ...]] = []  # listings whose paying region changed (a move)

    class _Rows:
        @staticmethod
        def append(row: tuple[str, ...]) -> None:
            listings_file.write("\t".join(row))
            listings_file.write("\n")

    listings = _Rows()

    def person_rows():  # type: ignore[no-untyped-def]
        lid = 0
        total = residents + residents // 100
        for i in range(total):
            pid = str(190001010000 + i)
            visitor = i >= residents
            home = rng.choice(OTHER) if visitor else "01"
            yield (pid, "1.2.752.129.2.1.3.1", home, "\\N" if visitor else "0180",
                   "1980-01-01", "f", "f", "\\N", now.strftime(ts))
            r = rng.random()
            if not visitor and r < 0.015:
                eff = now - timedelta(days=rng.randint(1, 3000))
                homes.append((pid, rng.choice(OTHER), eff.strftime(ts), eff.strftime(ts),
                              eff.strftime(ts), *PV))
                continue
            if not visitor and r > 0.96 + 0.015:
                continue  # listed nowhere
            unit, staff = rng.choice(units)
            start = now - timedelta(days=rng.randint(1, 3650), seconds=rng.randint(0, 86399))
            if rng.random() < 0.10:  # an earlier listing, ended when this one began
                old = start - timedelta(days=rng.randint(30, 2000))
                lid += 1
                listings.append((str(lid), pid, rng.choice(units)[0], *PV, "\\N", home,
                                 old.strftime(ts), start.strftime(ts), old.strftime(ts),
                                 "choice", "changed"))
                counts["ended_listings"] += 1
            doctor = rng.choice(staff) if staff and rng.random() < 0.3 else "\\N"
            lid += 1
            listings.append((str(lid), pid, unit, *PV, doctor, home, start.strftime(ts), "\\N",
                             start.strftime(ts), "choice", "\\N"))
            if rng.random() < 0.005:
                moved = start + (now - start) * rng.random()
                payers.append((str(lid), pid, rng.choice(OTHER), home, moved.strftime(ts)))
            counts["visitors"] += visitor
            counts["listings"] += 1

    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("ALTER TABLE listings DROP CONSTRAINT IF EXISTS listings_person_id_fkey")
        counts["persons"] = _copy(raw, "persons", "person_id, id_root, home_county, "
                                  "municipality, birth_date, deceased, emigrated, "
                                  "passive_listing_after, updated_at", person_rows())
        listings_file.close()
        with raw.cursor() as cur, listings_path.open(encoding="utf-8") as f:
            cur.copy_expert("COPY listings (id, person_id, unit_hsa_id, type_code, type_system, "
                            "personnel_hsa_id, home_county, valid_from, valid_to, "
                            "registered_at, origin, end_reason) FROM STDIN", f, size=1 << 20)
        listings_path.unlink()
        counts["home_records"] = _copy(raw, "home_records", "person_id, listing_county, since, "
                                       "effective_at, event_at, type_code, type_system", homes)
        counts["payer_changes"] = _copy(raw, "payer_changes", "listing_id, person_id, "
                                        "from_county, to_county, changed_at", payers)
        # their history, as the region writes it (one open period per record)
        _copy(raw, "home_history", "person_id, listing_county, valid_from, effective_at, "
              "recorded_at, event_at, type_code, type_system",
              ((pid, county, eff, eff, since, event, tcode, tsys)
               for pid, county, since, eff, event, tcode, tsys in homes))
        with raw.cursor() as cur:
            cur.execute("SELECT setval('listings_id_seq', (SELECT max(id) FROM listings))")
            cur.execute("ALTER TABLE listings ADD CONSTRAINT listings_person_id_fkey "
                        "FOREIGN KEY (person_id) REFERENCES persons (person_id)")
        raw.commit()
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute("ANALYZE")
    finally:
        raw.close()
        engine.dispose()
    return counts


def existing(url: str) -> dict[str, int]:
    """What a kept database holds (``--reuse``)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        def count(sql: str) -> int:
            return int(conn.execute(text(sql)).scalar_one())

        counts = {"persons": count("SELECT count(*) FROM persons"),
                  "listings": count("SELECT count(*) FROM listings WHERE valid_to IS NULL"),
                  "ended_listings": count("SELECT count(*) FROM listings "
                                          "WHERE valid_to IS NOT NULL"),
                  "home_records": count("SELECT count(*) FROM home_records"),
                  "visitors": count("SELECT count(*) FROM listings WHERE home_county <> '01' "
                                    "AND valid_to IS NULL"),
                  "payer_changes": count("SELECT count(*) FROM payer_changes")}
    engine.dispose()
    return counts


# The report command in a fresh process, which prints its own peak RSS when done.
CHILD = ("import sys, time\n"
         "from producers.reports.cli import main\n"
         "t0 = time.perf_counter()\n"
         "rc = main(sys.argv[1:])\n"
         "print('REPORT_SECONDS', time.perf_counter() - t0, file=sys.stderr)\n"
         # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (the parent's size)
         "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
         "print('PEAK_RSS_KB', hwm[0], file=sys.stderr)\n"
         "sys.exit(rc)\n")


def run_report(args: list[str]) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, "report", *args],
                       capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"report failed: {r.stderr.strip()}")
    found = dict(line.split(None, 1) for line in r.stderr.splitlines()
                 if line.startswith(("PEAK_RSS_KB", "REPORT_SECONDS")))
    return {"seconds": round(float(found["REPORT_SECONDS"]), 2),
            "load_average_1min": round(os.getloadavg()[0], 1),  # a shared machine shows here
            "process_seconds": round(wall, 2),
            "peak_rss_mb": round(int(found["PEAK_RSS_KB"]) / 1024, 1),
            "summary": r.stdout.strip()}


def machine() -> dict[str, str | int]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
    engine = create_engine(ADMIN_URL)
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar_one()
        shared = conn.execute(text("SHOW shared_buffers")).scalar_one()
        work_mem = conn.execute(text("SHOW work_mem")).scalar_one()
    engine.dispose()
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "memory_gb": mem,
            "python": platform.python_version(), "postgresql": pg,
            "shared_buffers": shared, "work_mem": work_mem}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=2_500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--reuse", action="store_true",
                    help="use the database a --keep run left (same --residents and --seed): "
                         "no load, only the reports")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/reports.json")
    args = ap.parse_args()

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    if not args.reuse:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
    result: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine(), "residents": args.residents}
    try:
        open_database(url).dispose()  # the real schema, by the migrations
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = synthetic_config(work, url)
            t0 = time.perf_counter()
            counts = (existing(url) if args.reuse
                      else load(url, config, args.residents, args.seed, work))
            result["load_seconds"] = None if args.reuse else round(time.perf_counter() - t0, 1)
            result["data"] = counts
            print(f"loaded {counts} in {result['load_seconds']} s", flush=True)
            at = date(2026, 11, 25).isoformat()
            common = ["--config", str(config), "--db", url]
            runs = []
            for i in range(args.runs):
                out = work / "listed.csv"
                run = run_report(["listed", *common, "--at", at, "--format", "csv",
                                  "--out", str(out)])
                with out.open("rb") as f:
                    rows = sum(1 for _ in f) - 1
                run.update(rows=rows, rows_per_second=round(rows / run["seconds"]),
                           file_mb=round(out.stat().st_size / 2**20, 1))
                runs.append(run)
                print(f"run {i + 1}: {run['seconds']:7.2f} s  {rows:>9,} rows  "
                      f"{run['rows_per_second']:>8,} rows/s  peak RSS "
                      f"{run['peak_rss_mb']} MB", flush=True)
            result["listed_csv"] = {"runs": runs,
                                    "median_seconds": statistics.median(r["seconds"]
                                                                        for r in runs)}
            html = work / "listed.html"
            result["listed_html"] = run_report(["listed", *common, "--at", at, "--out",
                                                str(html)])
            result["listed_html"]["file_kb"] = round(html.stat().st_size / 1024)
            result["settlement_csv"] = run_report(["settlement", *common, "--month",
                                                   "2026-10", "--out",
                                                   str(work / "settlement.csv")])
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()

    print()
    print(f"{'report':<22}{'seconds':>9}{'process s':>11}{'rows':>11}{'rows/s':>10}"
          f"{'peak RSS MB':>13}")
    for i, r in enumerate(result["listed_csv"]["runs"]):
        print(f"{'listed csv #' + str(i + 1):<22}{r['seconds']:>9.2f}{r['process_seconds']:>11.2f}"
              f"{r['rows']:>11,}{r['rows_per_second']:>10,}{r['peak_rss_mb']:>13}")
    for name in ("listed_html", "settlement_csv"):
        r = result[name]
        print(f"{name.replace('_', ' '):<22}{r['seconds']:>9.2f}{r['process_seconds']:>11.2f}"
              f"{'':>11}{'':>10}{r['peak_rss_mb']:>13}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
