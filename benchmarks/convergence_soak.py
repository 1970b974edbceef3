"""Soak of the convergence machine (issue 10, item 1) on every core: thousands of random
schedules of the multi-region protocol under faults, more than a CI build can afford.

    .venv/bin/python benchmarks/convergence_soak.py                      # 2 000 schedules
    .venv/bin/python benchmarks/convergence_soak.py --schedules 200      # a quick look
    .venv/bin/python benchmarks/convergence_soak.py --seed 1234          # replay a run

The machine is ``tests/reliability/test_convergence.py::test_regions_converge_under_faults``
(three in-process regions with their own SQLite databases, UpdateListing as XSD-validated XML
through a fault layer; invariants after every step, convergence checked at quiescence). CI runs
it derandomised, the same 200 schedules of up to 40 steps every build. Here ``--workers``
pytest processes (default: one per CPU) each run ``--schedules / --workers`` random schedules
of up to ``--steps`` (120) steps, hypothesis seeded ``--seed + worker`` so that a run can be
repeated. A worker stops at its first failing schedule, which hypothesis shrinks; the schedule
is written as a replay file (one rule call per line, the format of
``tests/reliability/schedules/``) and its path printed: shrink it further with
``benchmarks/shrink_schedule.py``, copy it there and replay it with
``test_convergence.replay`` in a regression test.

Prints a table (schedules, steps, deliveries, faults, answers, failures, minutes per worker)
and appends the run to ``benchmarks/results/convergence_soak.json`` (totals, seeds, load
average before and after, the failing schedules).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

# ruff: noqa: E402  (imports follow the sys.path fix above)
import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

REPO = _HERE.parent
RESULTS = REPO / "benchmarks" / "results" / "convergence_soak.json"
TEST = "tests/reliability/test_convergence.py"
# hypothesis prints the shrunk schedule as "state.rule(arg=...)" lines after the
# "Failing test case" / "state = Regions()" lines; the invariant checks between steps and the
# teardown are the machine's own, not steps to replay
_STEP = re.compile(r"^(?:E|\s*\|)?\s+state\.(\w+\(.*\))\s*$")
_NOT_STEPS = ("one_listing_per_region_limit_kept_nothing_counted_twice", "teardown")


@dataclass
class Worker:
    index: int
    seed: int
    schedules: int
    totals_file: Path
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    minutes: float = 0.0
    totals: Counter[str] = field(default_factory=Counter)
    failed: bool = False
    schedule: list[str] = field(default_factory=list)


def failing_schedule(log: str) -> list[str]:
    """The shrunk failing schedule in a pytest log, as replay lines ([] if none)."""
    start = max(log.rfind("Failing test case"), log.rfind("state = Regions()"))
    if start < 0:
        return []
    steps = []
    for line in log[start:].splitlines():
        m = _STEP.match(line)
        if m and not m.group(1).startswith(_NOT_STEPS):
            steps.append(m.group(1))
    return steps


def start(w: Worker, steps: int, python: str) -> None:
    env = {**os.environ, "LISTNING_SOAK": "1", "LISTNING_SOAK_EXAMPLES": str(w.schedules),
           "LISTNING_SOAK_STEPS": str(steps), "LISTNING_SOAK_TOTALS": str(w.totals_file),
           "PYTHONHASHSEED": "0"}
    cmd = [python, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-s",
           "-x", TEST, "-k", "regions_converge", f"--hypothesis-seed={w.seed}",
           f"--basetemp={w.log_file.parent / f'pytest-{w.index}'}"]
    w.started = time.monotonic()
    with w.log_file.open("wb") as log:
        w.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(w: Worker) -> None:
    assert w.proc is not None
    rc = w.proc.wait()
    w.minutes = (time.monotonic() - w.started) / 60
    if w.totals_file.exists():
        w.totals.update(json.loads(w.totals_file.read_text()))
    log = w.log_file.read_text(errors="replace")
    w.failed = rc != 0
    if w.failed:
        w.schedule = failing_schedule(log)


def faults(totals: Counter[str]) -> int:
    return sum(v for k, v in totals.items() if k.startswith("fault:"))


def answers(totals: Counter[str]) -> str:
    return " / ".join(f"{v} {k.removeprefix('answer:')}" for k, v in
                      sorted(totals.items(), key=lambda kv: -kv[1]) if k.startswith("answer:"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schedules", type=int, default=2000, help="in all (default 2000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--steps", type=int, default=120, help="most steps in a schedule")
    ap.add_argument("--seed", type=int, default=None, help="base seed (default: random)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="folder for the workers' logs (default: a temporary one, removed "
                         "unless a schedule failed)")
    args = ap.parse_args()
    if args.schedules < 1 or args.workers < 1 or args.steps < 1:
        ap.error("--schedules, --workers and --steps must be at least 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    python = str(REPO / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    work = args.keep or Path(tempfile.mkdtemp(prefix="convergence-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    share, extra = divmod(args.schedules, args.workers)
    workers = [Worker(i, seed + i, share + (i < extra), work / f"totals-{i}.json",
                      work / f"worker-{i}.log") for i in range(args.workers)]
    workers = [w for w in workers if w.schedules > 0]
    load_before = os.getloadavg()
    print(f"{args.schedules} schedules of up to {args.steps} steps on {len(workers)} workers, "
          f"seed {seed}; logs in {work}", flush=True)
    t0 = time.monotonic()
    for w in workers:
        start(w, args.steps, python)
    for w in workers:
        finish(w)
    minutes = (time.monotonic() - t0) / 60

    total: Counter[str] = Counter()
    print(f"\n{'worker':>6} {'seed':>11} {'schedules':>9} {'steps':>7} {'deliveries':>10} "
          f"{'faults':>7} {'min':>6}  result")
    for w in workers:
        total.update(w.totals)
        result = "FAILED" if w.failed else "clean"
        print(f"{w.index:>6} {w.seed:>11} {w.totals['schedules']:>9} {w.totals['steps']:>7} "
              f"{w.totals['messages']:>10} {faults(w.totals):>7} {w.minutes:>6.1f}  {result}")
    print(f"{'all':>6} {'':>11} {total['schedules']:>9} {total['steps']:>7} "
          f"{total['messages']:>10} {faults(total):>7} {minutes:>6.1f}")
    print(f"answers: {answers(total)}")
    print("faults: " + ", ".join(f"{k.removeprefix('fault:')} {v}" for k, v in
                                  sorted(total.items()) if k.startswith("fault:")))
    found = []
    for w in workers:
        if not w.failed:
            continue
        path = work / f"found-seed-{w.seed}.txt"
        if w.schedule:
            path.write_text("\n".join(w.schedule) + "\n")
            print(f"\nworker {w.index} (seed {w.seed}) FAILED: the shrunk schedule "
                  f"({len(w.schedule)} steps) is in {path}; its log: {w.log_file}\n"
                  f"shrink it further: .venv/bin/python benchmarks/shrink_schedule.py {path}")
        else:
            print(f"\nworker {w.index} (seed {w.seed}) FAILED without a schedule "
                  f"(an error outside the machine?): see {w.log_file}")
        found.append({"worker": w.index, "seed": w.seed, "schedule": w.schedule})
    if not found and args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    runs.append({"when": dt.datetime.now().isoformat(timespec="seconds"),
                 "schedules_asked": args.schedules, "steps_at_most": args.steps,
                 "workers": len(workers), "seed": seed, "minutes": round(minutes, 1),
                 "totals": dict(total),
                 "per_worker": [{"seed": w.seed, "minutes": round(w.minutes, 1),
                                 "failed": w.failed, **dict(w.totals)} for w in workers],
                 "failures": found, "loadavg_before": load_before,
                 "loadavg_after": os.getloadavg(), "cpus": os.cpu_count()})
    RESULTS.write_text(json.dumps(runs, indent=1) + "\n")
    print(f"\nappended to {RESULTS.relative_to(REPO)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
