"""The session's database templates for the reliability tests (profiles: reliability_support)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# importlib mode puts no test folder on sys.path: make reliability_support importable
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_support import Templates


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(Path(tmp_path_factory.mktemp("reliability")))
