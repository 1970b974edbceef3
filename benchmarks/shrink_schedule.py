"""Shrink a failing convergence schedule further than hypothesis does: delete steps while the
same failure remains (delta debugging), so a soak's 100-step finding becomes a handful of
steps that a person can follow and a regression test can replay.

    .venv/bin/python benchmarks/shrink_schedule.py /tmp/soak/found-seed-S.txt
    .venv/bin/python benchmarks/shrink_schedule.py FILE --match "listed in two places"

FILE holds one rule call per line, the format of ``tests/reliability/schedules/`` (the soak
runner, ``benchmarks/convergence_soak.py``, writes its findings so). The first line (the
machine's initialisation) always stays. "The same failure": the failure's text contains
``--match``; without it, the same exception type about the same resident(s) (the
personnummer in the message) — a shrink that trades the failure for another would mislead.
Each candidate is replayed as ``test_convergence.replay`` does: a fresh world, invariants
after every step, convergence checked at quiescence (about 0.1–2 s a candidate).

Writes FILE's name with ``.min.txt`` (or ``--out``) and prints the steps before and after and
the failure. Exits 1 if FILE does not fail (nothing to shrink).

Hypothesis shrinks too, but gives up after five minutes on these schedules (each candidate
is a whole multi-region run); this is the classic ddmin of Zeller and Hildebrandt, small
enough to keep here rather than add a dependency for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
REPO = _HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "reliability")]

# ruff: noqa: E402  (imports follow the sys.path fix above)
import argparse
import re
import tempfile
import time
from collections.abc import Callable

_PID = re.compile(r"\b\d{12}\b")


def ddmin(steps: list[str], fails: Callable[[list[str]], bool]) -> list[str]:
    """The smallest sub-list of ``steps`` (order kept) for which ``fails`` still holds that
    deleting chunks, then single steps, finds; ``fails(steps)`` must hold to begin with."""
    n = 2
    while len(steps) >= 2:
        size = max(1, len(steps) // n)
        for i in range(0, len(steps), size):
            candidate = steps[:i] + steps[i + size:]
            if fails(candidate):
                steps, n = candidate, max(n - 1, 2)
                break
        else:
            if size == 1:
                break
            n = min(len(steps), n * 2)
    i = 0
    while i < len(steps):  # one by one: ddmin's chunks can leave a removable step behind
        candidate = steps[:i] + steps[i + 1:]
        if fails(candidate):
            steps = candidate
        else:
            i += 1
    return steps


def signature(failure: str) -> tuple[str, frozenset[str]]:
    """What makes two failures "the same" without ``--match``: exception type and residents."""
    return failure.split(":", 1)[0], frozenset(_PID.findall(failure))


class Player:
    """Replays candidate schedules in fresh worlds from one set of database templates."""

    def __init__(self, templates: object | None = None) -> None:
        from reliability_support import Templates

        self.templates = templates or Templates(Path(tempfile.mkdtemp(prefix="shrink-schedule-")))
        self.runs = 0

    def failure(self, lines: list[str]) -> str | None:
        """The failure's text ("Type: message"), or None if the schedule converges."""
        import test_convergence

        self.runs += 1
        try:
            test_convergence.play(self.templates, "\n".join(lines))
        except Exception as exc:  # any failure of the machine is a finding
            return f"{type(exc).__name__}: {exc}"
        return None


def shrink(lines: list[str], failure: Callable[[list[str]], str | None],
           match: str | None = None) -> tuple[list[str], str]:
    """``lines`` shrunk (the first kept), and the failure it ends with; ValueError if the
    schedule does not fail."""
    first = failure(lines)
    if first is None:
        raise ValueError("the schedule does not fail")
    if match and match not in first:
        raise ValueError(f"its failure does not contain {match!r}: {first}")
    head, body = lines[:1], lines[1:]

    def same(candidate: list[str]) -> bool:
        found = failure(head + candidate)
        if found is None:
            return False
        return match in found if match else signature(found) == signature(first)

    body = ddmin(body, same)
    last = failure(head + body)
    assert last is not None  # ddmin only keeps failing candidates
    return head + body, last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path, help="the failing schedule, one rule call per line")
    ap.add_argument("--match", default=None,
                    help="text the failure must keep containing (default: same exception "
                         "type about the same residents)")
    ap.add_argument("--out", type=Path, default=None, help="default: FILE with .min.txt")
    args = ap.parse_args()
    if not args.file.is_file():
        ap.error(f"{args.file}: no such file")
    lines = [x for x in args.file.read_text().splitlines() if x.strip()]
    if not lines:
        ap.error(f"{args.file}: no steps in it")
    out = args.out or args.file.with_suffix(".min.txt")
    player = Player()
    t0 = time.monotonic()
    try:
        small, failure = shrink(lines, player.failure, args.match)
    except ValueError as exc:
        print(f"{args.file}: {exc} — nothing to shrink", file=sys.stderr)
        return 1
    out.write_text("\n".join(small) + "\n")
    print(f"{len(lines) - 1} steps -> {len(small) - 1} ({player.runs} replays, "
          f"{time.monotonic() - t0:.0f} s); written to {out}")
    print(f"failure: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
