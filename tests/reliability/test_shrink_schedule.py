"""benchmarks/shrink_schedule.py: a soak's long failing schedule shrinks to the steps that
cause the failure, and the command says so when there is nothing to shrink."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import Templates

from producers.handlers import update_listing

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "shrink_schedule.py"
_spec = importlib.util.spec_from_file_location("shrink_schedule", SCRIPT)
assert _spec is not None and _spec.loader is not None
shrink_schedule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shrink_schedule)

# A resident listed at home chooses another region, the notice delivered twice; the other
# steps are noise around it.
PADDED = """residents_of_every_county()
advance(span='seconds')
choose_at_home(i=3, plan=[], queue=False, u=0)
choose_at_home(i=7, plan=[], queue=False, u=1)
read_feed(county='08')
choose_in_another_region(i=3, other=2, plan=[], queue=False, u=1)
choose_in_another_region(i=7, other=1, plan=['duplicate'], queue=False, u=0)
advance(span='hours')
choose_at_home(i=12, plan=[], queue=False, u=1)
run_outbox(county='01', plan=[])
""".splitlines()


def test_ddmin_keeps_only_the_steps_a_failure_needs() -> None:
    steps = [f"s{i}" for i in range(40)]
    calls = []

    def fails(candidate: list[str]) -> bool:  # s7 then s31, in that order
        calls.append(candidate)
        return "s7" in candidate and "s31" in candidate
    assert shrink_schedule.ddmin(steps, fails) == ["s7", "s31"]
    assert len(calls) < 200  # far fewer replays than trying every subset


def test_a_padded_failing_schedule_shrinks_to_the_steps_that_cause_it(
        templates: Templates, monkeypatch: pytest.MonkeyPatch) -> None:
    player = shrink_schedule.Player(templates)
    assert player.failure(PADDED) is None  # the regions converge on it
    # De-duplication off (as docs/reliability.md breaks it on purpose): the home region counts
    # the duplicated notice twice — the machine's every-step invariant catches it.
    monkeypatch.setattr(update_listing, "dedup_key", lambda *args, **kw: None)
    small, failure = shrink_schedule.shrink(PADDED, player.failure)
    assert small == [PADDED[0], PADDED[3], PADDED[6]]
    assert failure.startswith("AssertionError: 01: ([], [], ['")  # one message id twice
    monkeypatch.undo()
    assert player.failure(small) is None


def test_a_failure_other_than_the_one_asked_for_is_refused(
        templates: Templates, monkeypatch: pytest.MonkeyPatch) -> None:
    player = shrink_schedule.Player(templates)
    monkeypatch.setattr(update_listing, "dedup_key", lambda *args, **kw: None)
    with pytest.raises(ValueError, match="does not contain 'listed in two places'"):
        shrink_schedule.shrink(PADDED, player.failure, match="listed in two places")


def test_the_command_says_when_a_schedule_does_not_fail(tmp_path: Path) -> None:
    schedule = tmp_path / "clean.txt"
    schedule.write_text("\n".join(PADDED[:4]) + "\n")
    done = subprocess.run([sys.executable, str(SCRIPT), str(schedule)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "does not fail — nothing to shrink" in done.stderr
    assert not (tmp_path / "clean.min.txt").exists()
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nowhere.txt")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
