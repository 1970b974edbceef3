"""Shared setup for the security suite (fuzzing, message log, hostile input, authorisation).

Hypothesis profiles (in ``security_support``) are applied per test through ``fuzz_settings()``,
never loaded globally, so the other suites keep their own settings. ``LISTNING_FUZZ_PROFILE``
picks one: ``security-ci`` (the default; the fuzz tests well under a minute), ``security-dev``
or ``security-long`` (the opt-in long run: ``LISTNING_FUZZ_PROFILE=security-long pytest
tests/security/test_fuzz_*.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# importlib mode puts no test folder on sys.path: make the *_support modules importable
sys.path.insert(0, str(Path(__file__).resolve().parent))
