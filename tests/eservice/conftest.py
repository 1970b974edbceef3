"""Fixtures for the e-service tests: a running stack, the e-service as a real process, and a
headless Debian Chromium driven by Playwright.

The stack is the real pilot (``listning pilot`` as a subprocess, read through its
``endpoints.json``) when it starts; otherwise this folder's harness (``stack.py``: the real
population register API, real region listing systems, a platform stand-in with mutual TLS).
``LISTNING_ESERVICE_STACK=pilot`` or ``=harness`` chooses one outright. ``tests/eservice`` is
put on ``sys.path`` so that test modules can import ``stack`` and ``browser_support``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from stack import PilotStack, PilotUnavailable, Stack, start_pilot, start_stack  # noqa: E402

from listning.supervisor import free_port, wait_for_port  # noqa: E402

CHROMIUM = Path(os.environ.get("LISTNING_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class EService:
    url: str
    log_path: Path
    data_dir: Path
    proc: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_eservice(argv: list[str], log_path: Path, port: int, data_dir: Path,
                   env: dict[str, str] | None = None) -> EService:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"the e-service did not start; log:\n{log_path.read_text()}") from None
    return EService(f"http://127.0.0.1:{port}", log_path, data_dir, proc)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


STACK_MODE = os.environ.get("LISTNING_ESERVICE_STACK", "auto")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack | PilotStack]:
    s: Stack | PilotStack
    if STACK_MODE in ("auto", "pilot"):
        try:
            s = start_pilot(tmp_path_factory.mktemp("pilot"))
        except PilotUnavailable as exc:
            if STACK_MODE == "pilot":
                raise
            warnings.warn(f"the e-service tests run on their own harness, not the pilot: "
                          f"{exc}", stacklevel=1)
            s = start_stack(tmp_path_factory.mktemp("eservice-stack"))
    else:
        s = start_stack(tmp_path_factory.mktemp("eservice-stack"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def eservice(stack: Stack | PilotStack) -> Iterator[EService]:
    if isinstance(stack, PilotStack):  # the pilot's own e-service
        url = str(stack.info["eservice_url"])
        yield EService(url, Path(stack.info["logs"]) / "eservice.log",
                       stack.directory / "eservice", stack.proc)
        return
    port = free_port()
    data_dir = stack.directory / "eservice"
    es = start_eservice(stack.eservice_argv(port, data_dir), stack.directory / "eservice.log",
                        port, data_dir)
    try:
        yield es
    finally:
        stop_process(es.proc)


@pytest.fixture(scope="session")
def harness(stack: Stack | PilotStack,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The harness, for tests that change routing or break a county on demand: the main
    stack when that is the harness, else one of its own beside the pilot."""
    if isinstance(stack, Stack):
        yield stack
        return
    own = start_stack(tmp_path_factory.mktemp("eservice-harness"))
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def harness_eservice(harness: Stack, tmp_path: Path) -> Iterator[EService]:
    """An e-service of the test's own on the harness: its unit cache is empty, so a county the
    test breaks is asked, not shown from units an earlier test's pages read."""
    port = free_port()
    data_dir = tmp_path / "eservice"
    es = start_eservice(harness.eservice_argv(port, data_dir), tmp_path / "eservice.log",
                        port, data_dir)
    try:
        yield es
    finally:
        stop_process(es.proc)


# Module scope: Playwright's sync API keeps an event loop running while a browser is open, and
# asyncio.run() in a later test module of the same process would then fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, eservice: EService) -> Iterator[Any]:
    # bypass_csp: the page's CSP forbids inline scripts, and axe-core is injected as one
    context = browser.new_context(base_url=eservice.url, bypass_csp=True, locale="sv-SE",
                                  viewport={"width": 1100, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
