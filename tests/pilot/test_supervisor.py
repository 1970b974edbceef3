"""The pilot's supervisor leaves no process behind, even when it is killed itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from listning.supervisor import Service, Supervisor, free_port
    port = free_port()
    sup = Supervisor()
    svc = sup.start(Service("web", [sys.executable, "-m", "http.server", "--bind",
                                    "127.0.0.1", str(port)], port, Path(sys.argv[1])))
    print(svc.proc.pid, flush=True)
    time.sleep(120)
""")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


def test_children_stop_when_the_supervisor_is_killed_with_sigkill(tmp_path: Path) -> None:
    sup = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "web.log")],
                           stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        child = int(sup.stdout.readline())
        os.kill(child, 0)  # the child runs
        sup.send_signal(signal.SIGKILL)  # the supervisor cannot clean up after this
        sup.wait(timeout=10)
        assert _gone(child, 10), "the child outlived its killed supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
        if child and not _gone(child, 0):
            os.kill(child, signal.SIGKILL)
