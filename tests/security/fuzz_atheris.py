"""Coverage-guided fuzzing with atheris (libFuzzer) — the opt-in long run, not part of the suite.

    .venv/bin/python tests/security/fuzz_atheris.py TARGET [libFuzzer options]
    # e.g. 10 minutes of the platform's readers, new inputs kept in /tmp/fuzz-new:
    .venv/bin/python tests/security/fuzz_atheris.py vp -max_total_time=600 /tmp/fuzz-new

    .venv/bin/python tests/security/fuzz_atheris.py all -runs=200 --no-seeds DIR  # smoke

TARGET: loader (parse_bytes), envelope (parse_bytes + read_envelope), vp (streaming vs full
reader, differential), validator (validate_bytes), models (from_element), all. The seed
corpus (contract examples and tests/security/corpus) is read unless --no-seeds; new interesting
inputs go to the first directory given (or a temporary one), never into the repository.
The properties are the suite's (security_support): an unexpected exception or a disagreement
between the readers is a crash, and libFuzzer saves the input as crash-*. Promote a crash to
tests/security/corpus/ with a descriptive name once understood.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# only our own code: instrumenting spyne, xmlschema and the rest costs half a minute
with atheris.instrument_imports(include=["interactions", "routing", "security_support"]):
    import security_support as sec

    from interactions.models import MessageError, from_element
    from interactions.validation import Envelope
    from routing.vp import envelope as _vp  # noqa: F401  (instrumented for coverage)


def _vp_target(data: bytes) -> None:
    sec.check_differential(data)
    sec.run_vp(data)


def _models_target(data: bytes) -> None:
    env = sec.run_structure(data)
    if isinstance(env, Envelope):
        with contextlib.suppress(MessageError):  # the documented refusal (a Client fault)
            from_element(env.payload)


TARGETS = {
    "loader": sec.run_loader,
    "envelope": sec.run_structure,
    "vp": _vp_target,
    "validator": sec.run_validator,
    "models": _models_target,
}


def _all(data: bytes) -> None:
    for target in TARGETS.values():
        target(data)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in {*TARGETS, "all"}:
        sys.exit(__doc__)
    target = _all if argv[1] == "all" else TARGETS[argv[1]]
    args = argv[2:]
    dirs = [a for a in args if not a.startswith("-")]
    options = [a for a in args if a.startswith("-") and a != "--no-seeds"]
    # --no-seeds: only the given directories (the suite's quick smoke run)
    seeds = [] if "--no-seeds" in args else sorted({str(p.parent) for p in sec.seed_files()})
    # libFuzzer writes new inputs into its first corpus directory: never into the repository
    corpus = dirs[:1] or [tempfile.mkdtemp(prefix="listning-fuzz-")]
    if not any(o.startswith("-max_len=") for o in options):
        options.append("-max_len=70000")  # the seeds' size; the size cap is tested apart
    atheris.Setup([argv[0], *options, *corpus, *seeds], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
