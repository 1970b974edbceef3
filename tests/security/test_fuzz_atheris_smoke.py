"""The atheris harness (the opt-in long fuzz run) still starts and fuzzes every target."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                reason="atheris is not installed (pip install -e '.[test]')")


def test_atheris_harness_runs_all_targets(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("cdata-logical-address.xml", "utf16-le-bom.xml", "xxe-file-entity.xml"):
        shutil.copy(HERE / "corpus" / name, corpus / name)
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_atheris.py"), "all", "--no-seeds", "-runs=300",
         "-seed=1", str(corpus)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 300 runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*")), "atheris found a crash: see crash-* files"
