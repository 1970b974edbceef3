"""The tamper-evident message log in a real platform process (``serve --message-log``):
calls leave hash-chained records, a clean stop signs the log, ``listning platform verify-log``
says intact or names the tampered line, and a log that cannot be written refuses calls."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from vp_support import (
    CONSUMER,
    GET_LISTING,
    OK_RESPONSE,
    REPO,
    assert_vp,
    client,
    envelope,
    main_snapshot,
)

PATH = "/GetListing/2/rivtabp21"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f"{GET_LISTING}:GetListing"}


def post(session: requests.Session, platform, address: str, correlation_id: str
         ) -> requests.Response:
    return session.post(platform.urls["https"] + PATH, data=envelope(address=address),
                        headers={**HEADERS, "x-skltp-correlation-id": correlation_id},
                        timeout=15)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def verify(path: Path, cert: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "listning", "platform", "verify-log", str(path),
                           "--cert", str(cert)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def logged_platform(tmp_path, certs, producers, platform_factory):
    snap_file = tmp_path / "snapshot.json"
    main_snapshot(producers).save(snap_file)
    msglog = tmp_path / "messages.jsonl"
    platform = platform_factory("logged", str(snap_file), "--message-log", str(msglog),
                                certs=certs)
    return platform, msglog


def test_calls_are_recorded_and_the_stopped_log_verifies(logged_platform, certs, tmp_path):
    platform, msglog = logged_platform
    with client(certs, certs.consumer) as s:
        ok = post(s, platform, "08", "corr-ok")
        refused = post(s, platform, "nowhere", "corr-refused")
    assert ok.status_code == 200 and ok.content == OK_RESPONSE
    assert_vp(refused, "VP004", "Client")

    platform.stop()
    recs = records(msglog)
    legs = [(r["correlation_id"], r["leg"]) for r in recs if r["kind"] == "leg"]
    assert legs == [("corr-ok", "req-in"), ("corr-ok", "req-out"), ("corr-ok", "resp-in"),
                    ("corr-ok", "resp-out"), ("corr-refused", "req-in"),
                    ("corr-refused", "error"), ("corr-refused", "resp-out")]
    resp_out = next(r for r in recs if r.get("leg") == "resp-out")
    assert (resp_out["sender"], resp_out["receiver"], resp_out["status"]) == (CONSUMER, "08", 200)
    assert next(r for r in recs if r.get("leg") == "error")["vp_code"] == "VP004"
    assert "<" not in msglog.read_text()  # metadata only: no message body
    assert recs[-1]["kind"] == "sig" and recs[-1]["final"] is True  # the closing signature

    intact = verify(msglog, certs.platform.cert)
    assert intact.returncode == 0, intact.stderr
    assert "intact" in intact.stdout

    # an insider edits where the call went: verification names the line
    lines = msglog.read_text(encoding="utf-8").splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if '"receiver":"08"' in line)
    lines[n] = lines[n].replace('"receiver":"08"', '"receiver":"01"')
    msglog.write_text("".join(lines), encoding="utf-8")
    tampered = verify(msglog, certs.platform.cert)
    assert tampered.returncode == 1
    assert f"{msglog}:{n + 1}: tampered" in tampered.stderr


def test_a_call_the_log_cannot_record_is_refused(logged_platform, certs, producers):
    platform, msglog = logged_platform
    pid = platform.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    with client(certs, certs.consumer) as s:
        assert post(s, platform, "08", "corr-before").status_code == 200
        # "disk full" for the platform: no file of it may grow past the log's current size
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (msglog.stat().st_size, hard))
        try:
            refused = post(s, platform, "08", "corr-unlogged")
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
        assert_vp(refused, "VP012", "Server")  # fail closed ...
        assert "message log" in refused.text
        assert "corr-unlogged" not in {x.headers.get("x-skltp-correlation-id")
                                       for x in producers.seen}  # ... before the producer
        # space again: calls pass and are recorded, the chain unbroken
        assert post(s, platform, "08", "corr-after").status_code == 200
    platform.stop()
    ids = {r.get("correlation_id") for r in records(msglog)}
    assert {"corr-before", "corr-after"} <= ids and "corr-unlogged" not in ids
    assert verify(msglog, certs.platform.cert).returncode == 0


def test_message_log_needs_the_platform_key(tmp_path):
    r = subprocess.run([sys.executable, "-m", "routing.vp", "serve", "--catalogue",
                        str(tmp_path / "none.json"), "--port", "-1", "--message-log",
                        str(tmp_path / "m.jsonl")], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--key" in r.stderr
    assert not (tmp_path / "m.jsonl").exists()
