"""Start, watch and stop the pilot's processes.

Each part of the exchange runs as its own process, as it would in production; the supervisor
starts them in order, waits until each one accepts connections, and on Ctrl-C (SIGINT) or
SIGTERM stops them in reverse order — SIGTERM first, SIGKILL only after a grace period — so
no orphan is left and each process can finish its current transaction.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("listning.supervisor")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the supervisor dies.

    The children run in their own sessions (see ``Service.start``), so a supervisor killed
    with SIGKILL — which cannot stop them itself — would otherwise leave them running.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the orderly stop still applies
        pass


PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float,
                  proc: subprocess.Popen | None = None) -> None:
    """Wait until ``host:port`` accepts a TCP connection, or raise with a clear reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f} s")


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ready_timeout: float = 60.0
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("ab")
        log.info("starting %s (log: %s)", self.name, self.log_path)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            # Own process group: a Ctrl-C at the terminal reaches only the supervisor, which
            # then stops the children in order instead of all at once.
            start_new_session=True,
            # the supervisor starts children from its one thread, so preexec_fn is safe here
            preexec_fn=_die_with_parent,
        )
        logfile.close()

    def wait_ready(self) -> None:
        try:
            wait_for_port(self.host, self.port, self.ready_timeout, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.name} did not start: {exc}; see {self.log_path}") from None

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def stop_together(services: list[Service], grace: float = 30.0) -> None:
    """SIGTERM every running service at once (last started first), then wait for each;
    SIGKILL what has not stopped within ``grace``. Quicker than ``Supervisor.stop_all`` (one
    after another) when nothing depends on the stop order: tests and benchmarks that run the
    pilot's pieces themselves."""
    for s in reversed(services):
        if s.proc is not None and s.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.proc.pid, signal.SIGTERM)
    for s in reversed(services):
        if s.proc is None:
            continue
        try:
            s.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.proc.pid, signal.SIGKILL)
            s.proc.wait(10)


class Supervisor:
    """Runs services in start order; stops them in reverse order, whatever happens."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def start(self, service: Service) -> Service:
        self.services.append(service)
        service.start()
        service.wait_ready()
        return service

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def watch(self, poll: float = 0.5) -> int:
        """Block until a service dies (returns 1) or SIGINT/SIGTERM arrives (returns 0)."""
        stopping = {"flag": False}

        def on_signal(signum: int, _frame: object) -> None:
            stopping["flag"] = True

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stopping["flag"]:
                for service in self.services:
                    if service.proc is not None and service.proc.poll() is not None:
                        print(f"{service.name} stopped unexpectedly (status "
                              f"{service.proc.returncode}); see {service.log_path}",
                              file=sys.stderr)
                        return 1
                time.sleep(poll)
            return 0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
