"""Helpers for the hostile-input, authorisation and chaos tests against real processes.

``Pilot`` runs ``listning pilot --free-ports`` in its own process group and reads its
``endpoints.json``; ``stop()`` (also the end of ``with start_pilot(...)``) sends SIGTERM to the
group (SIGKILL after a grace period), so a failing test never leaves processes behind.
``child_pid`` finds a pilot child by the port on its command line; ``rss_kib`` reads its
resident memory from ``/proc``. ``session`` is a ``requests`` session for mutual TLS, ``soap``
builds a SOAP 1.1 envelope around any body text; ``login`` logs in to the pilot's e-service
with the test e-ID, ``csrf_token`` reads a form's token.

Set ``LISTNING_HOSTILE_PILOT=DIR`` to reuse an already running pilot (development only).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "urn:riv:itintegration:registry:1"
PLATFORM_ADDRESS = "SE5565594230-NTJP"
NS_PREFIX = "urn:riv:supportprocess:logistics:carelisting:"
PING_NS = "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1"
GLABSC_NS = ("urn:riv:infrastructure:itintegration:registry:"
             "GetLogicalAddresseesByServiceContractResponder:2")
VP_CODE = re.compile(r"<faultstring>\s*(VP\d{3})\b")
TIMEOUT = 30.0  # the client gives up here: an answer later than this is a hang
TEST_EID = "/logga-in/test-e-legitimation"  # the pilot e-service's test e-ID login


class PilotUnavailable(RuntimeError):
    pass


@dataclass
class Pilot:
    directory: Path
    proc: subprocess.Popen | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    def __enter__(self) -> Pilot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def port(self, url: str) -> int:
        return int(url.rsplit(":", 1)[1].split("/")[0])

    def children(self) -> dict[int, str]:
        """pid → command line of every process whose parent is the pilot."""
        parent = self.proc.pid if self.proc else None
        out: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
            if "listning" in cmd and (parent is None or ppid == parent):
                out[int(entry.name)] = cmd
        return out

    def child_pid(self, port: int) -> int:
        for pid, cmd in self.children().items():
            if f"--port {port} " in cmd + " ":
                return pid
        raise LookupError(f"no pilot child listens on port {port}")

    def stop(self) -> None:
        """SIGTERM to the pilot (it stops its children in order); any child still alive after
        that (each runs in its own session, so a slow stop would orphan it) gets SIGKILL."""
        if self.proc is None:
            return
        children = self.children()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for pid, cmd in children.items():
            try:  # only if the pid still is that child (never a reused pid)
                still = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                         .decode() == cmd)
            except OSError:
                continue
            if still:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def start_pilot(directory: Path, *, population: int = 40, timeout: float = 150.0) -> Pilot:
    reuse = os.environ.get("LISTNING_HOSTILE_PILOT")
    if reuse:
        d = Path(reuse)
        return Pilot(d, None, json.loads((d / "endpoints.json").read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "pilot.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listning", "pilot", "--data-dir", str(directory),
             "--free-ports", "--population", str(population)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    pilot = Pilot(directory, proc)
    endpoints = directory / "endpoints.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if endpoints.exists():
            pilot.info = json.loads(endpoints.read_text(encoding="utf-8"))
            return pilot
        if proc.poll() is not None:
            raise PilotUnavailable(f"`listning pilot` exited ({proc.returncode}): "
                                   + log_path.read_text(errors="replace")[-800:])
        time.sleep(0.3)
    pilot.stop()
    raise PilotUnavailable(f"`listning pilot` wrote no endpoints.json within {timeout:.0f} s")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for {pid}")


def session(cert: Path | str | None, key: Path | str | None, ca: Path | str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    if cert is not None:
        s.cert = (str(cert), str(key))
    s.verify = str(ca)
    return s


def soap(body: str, *, address: str = "01", header: str | None = None,
         prolog: str = "") -> bytes:
    """A SOAP 1.1 envelope: ``prolog`` before it, the logical address header, ``body`` inside
    soap:Body."""
    head = header if header is not None else (
        f'<add:LogicalAddress xmlns:add="{ADDRESSING}">{address}</add:LogicalAddress>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
            f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Header>{head}</soap:Header>'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>").encode()


def ping_body(address: str = "01") -> str:
    return (f'<p:PingForConfiguration xmlns:p="{PING_NS}"><p:serviceContractNamespace>'
            f"{PING_NS}</p:serviceContractNamespace><p:logicalAddress>{address}"
            "</p:logicalAddress></p:PingForConfiguration>")


def contract_ns(name: str) -> str:
    if name == "PingForConfiguration":
        return PING_NS
    if name == "GetLogicalAddresseesByServiceContract":
        return GLABSC_NS
    return f"{NS_PREFIX}{name}Responder:2"


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "a form with a CSRF token"
    return found.group(1)


def login(url: str, pid: str) -> requests.Session:
    """A session logged in to the e-service at ``url`` as ``pid`` (the pilot's test e-ID)."""
    s = requests.Session()
    s.trust_env = False
    token = csrf_token(s.get(url + TEST_EID, timeout=TIMEOUT).text)
    r = s.post(url + TEST_EID, data={"csrf": token, "person": pid}, allow_redirects=False,
               timeout=TIMEOUT)
    assert r.status_code == 303 and r.headers["Location"] == "/min-listning", r.text[:300]
    return s


def vp_code(text: str) -> str | None:
    found = VP_CODE.search(text)
    return found.group(1) if found else None
