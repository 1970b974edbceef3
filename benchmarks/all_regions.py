"""The whole country live: the pilot with all 21 regions at once (issue 9, item 6).

    .venv/bin/python benchmarks/all_regions.py                 # population 3000, a random pair
    .venv/bin/python benchmarks/all_regions.py --pair 25,12    # a resident of 25 lists in 12

Runs ``listning pilot --regions all --free-ports --population N`` in a fresh data directory
(a temporary one unless ``--data-dir``) and measures:

- start-up: from starting the command until ``endpoints.json`` exists (every part answers),
  and per part from the times its log file was created (the supervisor starts the parts one
  after another and opens each log just before starting it);
- memory: RSS and PSS (``/proc/<pid>/status`` VmRSS, ``/proc/<pid>/smaps_rollup`` Pss) of the
  pilot and every process below it, by part, and in total (RSS double-counts shared pages of
  the libraries; PSS shares them out, so the PSS total is the honest figure);
- a cross-region CreateListing through the platform with the conformance tester's
  certificate (``consumers/client.py``): an adult resident of region A (from the pilot's
  population register) lists at a unit of region B; then GetListing at B, and GetListingCounty
  at A until the home region knows (B notifies A with UpdateListing via the platform).

Then stops the pilot as Ctrl-C does (SIGINT to the pilot only) and checks that no part is left.
Writes ``benchmarks/results/all_regions.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from typing import Any  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO))

from consumers.client import ListingClient  # noqa: E402
from consumers.values import actor, county, listing_type, person  # noqa: E402
from interactions.identifiers import counties  # noqa: E402
from producers.config import load_config  # noqa: E402
from producers.population.test_persons import TEST_PERSONS  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "all_regions.json"
TEST_IDS = {p.person_id for p in TEST_PERSONS}


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _kb(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def part_name(pid: int, pilot_pid: int) -> str:
    if pid == pilot_pid:
        return "pilot (supervisor)"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    args = [a.decode(errors="replace") for a in argv]
    if "region" in args and "serve" in args:
        cfg = args[args.index("--config") + 1]
        return f"region-{Path(cfg).stem}"
    for word, name in (("tak", "catalogue"), ("platform", "platform"),
                       ("population", "population"), ("eservice", "eservice")):
        if word in args and "serve" in args:
            return name
    return " ".join(Path(a).name for a in args[:4])


def memory(pilot_pid: int) -> dict[str, dict[str, float]]:
    parts: dict[str, dict[str, float]] = {}
    for pid in descendants(pilot_pid):
        name = part_name(pid, pilot_pid)
        row = parts.setdefault(name, {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0})
        row["processes"] += 1
        row["rss_mb"] += _kb(Path(f"/proc/{pid}/status"), "VmRSS") / 1024
        row["pss_mb"] += _kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss") / 1024
    return {k: {"processes": v["processes"], "rss_mb": round(v["rss_mb"], 1),
                "pss_mb": round(v["pss_mb"], 1)} for k, v in sorted(parts.items())}


def startup_per_part(data_dir: Path, ready_at: float) -> dict[str, float]:
    """Seconds from each part's start to the next part's start (the last: to ready)."""
    logs = sorted((p.stat().st_ctime, p.stem) for p in (data_dir / "logs").glob("*.log"))
    out = {}
    for i, (t, name) in enumerate(logs):
        end = logs[i + 1][0] if i + 1 < len(logs) else ready_at
        out[name] = round(end - t, 2)
    return out


def adult_resident(data_dir: Path, code: str, rng: random.Random) -> str:
    with sqlite3.connect(data_dir / "population.db") as db:
        rows = [r[0] for r in db.execute(
            "SELECT person_id FROM persons WHERE county = ? AND birth_date < ? "
            "AND deceased_on IS NULL AND emigrated_on IS NULL ORDER BY person_id",
            (code, date(date.today().year - 20, 1, 1).isoformat()))]
    rows = [r for r in rows if r not in TEST_IDS]
    if not rows:
        raise SystemExit(f"no adult resident of {code} in the pilot's population; "
                         "raise --population")
    return rng.choice(rows)


def cross_region(endpoints: dict[str, Any], data_dir: Path, home: str, there: str,
                 rng: random.Random) -> dict[str, Any]:
    pid = adult_resident(data_dir, home, rng)
    cfg = load_config(endpoints["regions"][there]["config"])
    unit = rng.choice([u for u in cfg.units if u.cap > 100 and "PV" in u.listing_types])
    client = ListingClient(endpoints["platform_url"], cert=endpoints["tester"]["cert"],
                           key=endpoints["tester"]["key"], ca=endpoints["ca_cert"], timeout=30)
    out: dict[str, Any] = {"person": pid, "home_region": home, "listing_region": there,
                           "unit": unit.hsa_id, "unit_name": unit.name,
                           "takes_effect": cfg.rules.takes_effect}
    try:
        t = time.perf_counter()
        r = client.create_listing(there, actor=actor(pid), personId=person(pid),
                                  healthcareFacilityHSAId=unit.hsa_id,
                                  listingType=listing_type(), homeCounty=county(home))
        out["create"] = {"result": r.result_code, "text": getattr(r.response, "resultText", None),
                         "ms": round((time.perf_counter() - t) * 1000, 1),
                         "correlation_id": r.correlation_id}
        g = client.get_listing(there, actor=actor(pid), personId=person(pid))
        out["get_listing_at_listing_region"] = {
            "result": g.result_code,
            "units": [li.healthcareFacility.id for li in (g.response.listings or [])]}
        deadline, seen = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            c = client.get_listing_county(home, actor=actor(pid), personId=person(pid))
            seen = [x.extension for x in (c.response.listingCounties or [])]
            if there in seen:
                break
            time.sleep(1)
        out["home_region_knows"] = {"listing_counties": seen,
                                    "seconds": round(60 - (deadline - time.monotonic()), 1)}
    finally:
        client.close()
    out["ok"] = (out["create"]["result"] in ("OK", "INFO")
                 and there in out["home_region_knows"]["listing_counties"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--population", type=int, default=3000)
    p.add_argument("--pair", help="HOME,THERE county codes (default: two at random)")
    p.add_argument("--seed", type=int, help="for the random pair, person and unit")
    p.add_argument("--data-dir", type=Path, help="default: a temporary directory, removed")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for start-up")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    home, there = (args.pair.split(",") if args.pair
                   else rng.sample(sorted(counties()), 2))
    work = Path(tempfile.mkdtemp(prefix="listning-all-"))
    data_dir = (args.data_dir or work / "pilot-data").resolve()
    out_log = work / "pilot.out"
    load_before = os.getloadavg()
    tty = sys.stderr.isatty()
    t0 = time.monotonic()
    t0_wall = time.time()
    with out_log.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listning", "pilot", "--regions", "all", "--free-ports",
             "--data-dir", str(data_dir), "--population", str(args.population)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    result: dict[str, Any] = {"settings": {"population": args.population, "seed": seed,
                                           "pair": [home, there]}}
    try:
        endpoints_path = data_dir / "endpoints.json"
        while not endpoints_path.exists():
            if proc.poll() is not None:
                raise SystemExit(f"the pilot exited ({proc.returncode}):\n"
                                 + out_log.read_text()[-3000:])
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"the pilot was not ready in {args.timeout:.0f} s")
            if tty:
                started = len(list((data_dir / "logs").glob("*.log"))) \
                    if (data_dir / "logs").exists() else 0
                bar = "#" * started
                print(f"\rstarting [{bar:<25}] {started}/25 parts "
                      f"{time.monotonic() - t0:5.0f} s", end="", file=sys.stderr, flush=True)
            time.sleep(0.5)
        ready = time.monotonic() - t0
        if tty:
            print(file=sys.stderr)
        endpoints = json.loads(endpoints_path.read_text())
        text = out_log.read_text()
        result["startup"] = {
            "seconds_to_ready": round(ready, 1),
            "regions": len(endpoints["regions"]),
            # first start: PKI, catalogue (routes, permissions), population, test data
            "preparation_seconds": round(min(
                f.stat().st_ctime for f in (data_dir / "logs").glob("*.log")) - t0_wall, 1),
            "per_part_seconds": startup_per_part(data_dir, t0_wall + ready),
            "population_generated": bool(re.search(r"generating a synthetic population",
                                                   text)),
        }
        time.sleep(5)  # let every part settle (first feed poll, catalogue poll)
        mem = memory(proc.pid)
        result["memory"] = {"parts": mem,
                            "total_rss_mb": round(sum(m["rss_mb"] for m in mem.values()), 1),
                            "total_pss_mb": round(sum(m["pss_mb"] for m in mem.values()), 1),
                            "processes": sum(m["processes"] for m in mem.values())}
        result["cross_region"] = cross_region(endpoints, data_dir, home, there, rng)
        pids = descendants(proc.pid)
    finally:
        t = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the pilot stops its parts in order
        try:
            rc = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        stop_seconds = time.monotonic() - t
    left = [pid for pid in locals().get("pids", []) if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    result["stop"] = {"exit_status": rc, "seconds": round(stop_seconds, 1),
                      "processes_left": left}
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "mem_total_gb": round(_kb(Path("/proc/meminfo"), "MemTotal") / 2**20,
                                               1),
                         "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    shutil.rmtree(work, ignore_errors=True)  # the pilot's output (and data, unless --data-dir)

    s, m, c = result["startup"], result["memory"], result["cross_region"]
    print(f"\nstart-up: {s['seconds_to_ready']:.1f} s until every part answered "
          f"({s['regions']} regions, population {args.population}); preparing the data "
          f"directory {s['preparation_seconds']:.1f} s, starting the parts one by one "
          f"{s['seconds_to_ready'] - s['preparation_seconds']:.1f} s")
    print(f"\n{'part':<22}{'procs':>6}{'RSS MB':>9}{'PSS MB':>9}{'start s':>9}")
    for name, row in m["parts"].items():
        st = s["per_part_seconds"].get(name)
        print(f"{name:<22}{row['processes']:>6}{row['rss_mb']:>9.1f}{row['pss_mb']:>9.1f}"
              f"{st if st is not None else '':>9}")
    print(f"{'total':<22}{m['processes']:>6}{m['total_rss_mb']:>9.1f}{m['total_pss_mb']:>9.1f}")
    print(f"\ncross-region: resident of {home} ({c['person']}) at {c['unit_name']} "
          f"({there}): CreateListing {c['create']['result']} in {c['create']['ms']} ms; "
          f"GetListing at {there}: {c['get_listing_at_listing_region']['units']}; "
          f"home region {home} says listed in {c['home_region_knows']['listing_counties']} "
          f"after {c['home_region_knows']['seconds']} s")
    print(f"stop: exit status {rc} in {stop_seconds:.1f} s, processes left: {left or 'none'}; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    if args.out:
        runs = json.loads(args.out.read_text()).get("runs", []) if args.out.exists() else []
        runs.append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": runs}, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
    return 0 if c["ok"] and rc == 0 and not left else 1


if __name__ == "__main__":
    sys.exit(main())
