"""The tamper-evident message log: a real log, tampered with as an attacker would, must fail
verification at the right line; an intact one must pass; the CLI exit codes follow."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from routing import pki
from routing.msglog import MessageLog, canonical, main, register_msglog, verify_log

REPO = Path(__file__).resolve().parents[2]
LEGS = ("req-in", "req-out", "resp-in", "resp-out")
SIGN_EVERY = 5
N_LEGS = 23


@pytest.fixture(scope="module")
def platform_id(tmp_path_factory: pytest.TempPathFactory) -> pki.Identity:
    return pki.issue(tmp_path_factory.mktemp("pki"), "platform", "SE2321000016-VP01")


@pytest.fixture(scope="module")
def other_id(tmp_path_factory: pytest.TempPathFactory) -> pki.Identity:
    return pki.issue(tmp_path_factory.mktemp("pki-other"), "intruder", "SE2321000016-EVIL")


def leg(i: int) -> dict[str, object]:
    return {"event": LEGS[i % 4], "correlation_id": f"corr-{i // 4}", "sender": "SE2321000016-C1",
            "receiver": "08", "contract": "GetListing:2", "status": 200 if i % 7 else 500,
            "vp_code": None if i % 7 else "VP009", "duration_ms": 1.5 + i,
            # never to be written: a body and an error text that could carry personal data
            "body": "<GetListing>191212121212</GetListing>", "message": "191212121212"}


def write_log(path: Path, ident: pki.Identity, n: int = N_LEGS) -> list[str]:
    with MessageLog.open(path, ident.key, sign_every=SIGN_EVERY) as log:
        for i in range(n):
            log.append(leg(i))
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def log(tmp_path: Path, platform_id: pki.Identity) -> tuple[Path, list[str]]:
    path = tmp_path / "messages.log"
    return path, write_log(path, platform_id)


def rehash(rec: dict) -> dict:
    rec = {k: v for k, v in rec.items() if k != "hash"}
    rec["hash"] = hashlib.sha256(canonical(rec)).hexdigest()
    return rec


def dump(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


def rechain(lines: list[str], start: int) -> list[str]:
    """What a forger without the key can do: recompute prev/seq/hash from index ``start`` on."""
    out = lines[:start]
    prev = json.loads(out[-1])["hash"] if out else "0" * 64
    for n, line in enumerate(lines[start:], start + 1):
        rec = json.loads(line)
        rec["prev"], rec["seq"] = prev, n
        if rec["kind"] == "sig":
            rec["count"] = n - 1
        rec = rehash(rec)
        prev = rec["hash"]
        out.append(dump(rec))
    return out


def kinds(lines: list[str]) -> list[str]:
    return [json.loads(x)["kind"] for x in lines]


def first_leg_after_sig(lines: list[str]) -> int:
    k = kinds(lines)
    return k.index("sig") + 2  # 1-based line of the leg after the first signature


# --- an intact log -----------------------------------------------------------------------

def test_intact_log_verifies_and_holds_metadata_only(log, platform_id) -> None:
    path, lines = log
    res = verify_log(path, platform_id.cert)
    assert res.intact and res.exit_code == 0, res
    # 1 open + 23 legs + a signature every 5 legs (4) + the closing one
    assert res.records == len(lines) == 1 + N_LEGS + N_LEGS // SIGN_EVERY + 1
    assert res.signatures == N_LEGS // SIGN_EVERY + 1 and res.signed_through == len(lines)
    text = path.read_text()
    assert "191212121212" not in text and "GetListing>" not in text
    rec = json.loads(lines[2])  # leg 1: a success, so no vp_code
    assert {k for k in rec} == {"kind", "leg", "correlation_id", "sender", "receiver",
                                "contract", "status", "duration_ms", "seq", "time", "prev",
                                "hash"}
    assert rec["leg"] == "req-out" and json.loads(lines[-1])["final"] is True


def test_vp_call_log_shaped_legs_keep_only_metadata(tmp_path, platform_id) -> None:
    path = tmp_path / "m.log"
    with MessageLog.open(path, platform_id.key) as log:
        # the calls routing/vp/pipeline.py makes on its CallLog, passed on unchanged
        log.leg("req-in", "c1", path="/GetListing/2/rivtabp21", tls=True)
        log.leg("req-out", "c1", sender="SE2321000016-C1", receiver="08",
                contract="GetListing:2", producer="SE2321000016-P08")
        log.leg("error", "c1", sender="SE2321000016-C1", vp_code="VP009",
                message="producer refused 191212121212")
        log.leg("resp-out", "c1", sender="SE2321000016-C1", receiver="08",
                contract="GetListing:2", status=500, vp_code="VP009", duration_ms=12.5)
    recs = [json.loads(x) for x in path.read_text().splitlines()][1:-1]
    assert [r["leg"] for r in recs] == ["req-in", "req-out", "error", "resp-out"]
    assert recs[1]["producer"] == "SE2321000016-P08" and recs[3]["duration_ms"] == 12.5
    assert all("message" not in r and "path" not in r for r in recs)
    assert "191212121212" not in path.read_text()
    assert verify_log(path, platform_id.cert).intact


def test_reopened_log_continues_the_chain(tmp_path, platform_id) -> None:
    path = tmp_path / "m.log"
    write_log(path, platform_id, 7)
    lines = write_log(path, platform_id, 4)  # a platform restart appends to the same file
    assert kinds(lines).count("open") == 2
    assert verify_log(path, platform_id.cert).intact


def test_signature_after_the_interval_even_below_the_count(tmp_path, platform_id) -> None:
    now = [1_000_000.0]
    log = MessageLog.open(tmp_path / "m.log", platform_id.key, sign_every=1000,
                          sign_interval=60, clock=lambda: now[0])
    log.append(leg(0))
    assert not log.sign_if_due()
    now[0] += 61
    assert log.sign_if_due()  # a quiet platform still signs within the interval
    log.append(leg(1))
    now[0] += 61
    log.append(leg(2))  # due on append too
    lines = (tmp_path / "m.log").read_text().splitlines()
    assert kinds(lines) == ["open", "leg", "sig", "leg", "leg", "sig"]
    assert verify_log(tmp_path / "m.log", platform_id.cert, live=True).intact


def test_periodic_signing_task_on_the_event_loop(tmp_path, platform_id) -> None:
    path = tmp_path / "m.log"
    log = MessageLog.open(path, platform_id.key, sign_every=1000, sign_interval=0.05)

    async def platform() -> None:
        signer = asyncio.create_task(log.sign_periodically())
        await asyncio.gather(*(asyncio.to_thread(log.append, leg(i)) for i in range(20)))
        await asyncio.sleep(0.3)  # quiet: the task signs what the appends left unsigned
        assert verify_log(path, platform_id.cert).status == "unsigned-tail"  # not closed yet
        assert verify_log(path, platform_id.cert, live=True).intact
        log.close()
        await asyncio.wait_for(signer, 1)

    asyncio.run(platform())
    lines = path.read_text().splitlines()
    sigs = [json.loads(x) for x in lines if json.loads(x)["kind"] == "sig"]
    assert [s["final"] for s in sigs][-1] is True
    assert any(not s["final"] for s in sigs)  # the quiet period got a periodic signature
    assert verify_log(path, platform_id.cert).intact


def test_concurrent_appends_from_threads_stay_whole_and_chained(tmp_path, platform_id) -> None:
    path = tmp_path / "m.log"
    log = MessageLog.open(path, platform_id.key, sign_every=50)
    threads = [threading.Thread(target=lambda: [log.append(leg(i)) for i in range(300)])
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    res = verify_log(path, platform_id.cert)
    assert res.intact, res
    assert kinds(path.read_text().splitlines()).count("leg") == 1800  # data lost = 0


def test_append_costs_microseconds(tmp_path, platform_id) -> None:
    log = MessageLog.open(tmp_path / "m.log", platform_id.key, sign_every=1000)
    n = 2000
    events = [leg(i) for i in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    for event in events:
        log.append(event)
    per_record = (time.perf_counter() - start) / n * 1e6
    cpu_per_record = (time.process_time() - cpu) / n * 1e6  # less noisy on a shared machine
    log.close()
    print(f"message log: {per_record:.1f} µs wall, {cpu_per_record:.1f} µs CPU per record "
          f"(a signature every 1000)")
    # Generous bound for a loaded 2-core CI machine; typically tens of µs.
    assert per_record < 1000


# --- tampering -----------------------------------------------------------------------------

def tamper_and_verify(path: Path, lines: list[str], cert: Path) -> object:
    path.write_text("".join(lines))
    return verify_log(path, cert)


def test_edited_field_is_caught_at_its_line(log, platform_id) -> None:
    path, lines = log
    rec = json.loads(lines[3])
    rec["status"] = 204  # hide a failed call
    lines[3] = dump(rec)
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line, res.exit_code) == ("tampered", 4, 1)
    assert "altered" in res.problem


def test_edited_field_with_rebuilt_chain_is_caught_by_the_next_signature(log, platform_id):
    path, lines = log
    rec = json.loads(lines[3])
    rec["receiver"] = "01"
    lines[3] = dump(rec)
    lines = rechain(lines, 3)  # every hash and prev after it recomputed: only the key is missing
    res = tamper_and_verify(path, lines, platform_id.cert)
    first_sig = kinds(lines).index("sig") + 1
    assert (res.status, res.line) == ("tampered", first_sig) and "bad signature" in res.problem


def test_deleted_line_is_caught_at_its_place(log, platform_id) -> None:
    path, lines = log
    del lines[9]
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line) == ("tampered", 10) and "removed" in res.problem


def test_swapped_lines_are_caught_at_the_first(log, platform_id) -> None:
    path, lines = log
    lines[4], lines[5] = lines[5], lines[4]
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line) == ("tampered", 5) and "moved" in res.problem


def test_forged_line_with_recomputed_hash_after_the_last_signature(log, platform_id) -> None:
    path, lines = log
    last = json.loads(lines[-1])
    forged = rehash({**json.loads(lines[1]), "correlation_id": "forged", "seq": last["seq"] + 1,
                     "prev": last["hash"]})
    lines.append(dump(forged))
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line, res.exit_code) == ("unsigned-tail", len(lines), 1)


def test_forged_line_inserted_mid_log_with_rebuilt_chain(log, platform_id) -> None:
    path, lines = log
    at = first_leg_after_sig(lines)  # after the first signature
    lines.insert(at - 1, lines[1])
    lines = rechain(lines, at - 1)
    res = tamper_and_verify(path, lines, platform_id.cert)
    second_sig = [i for i, k in enumerate(kinds(lines), 1) if k == "sig"][1]
    assert (res.status, res.line) == ("tampered", second_sig)
    assert f"lines {at}–{second_sig - 1}" in res.problem  # where to look for the forgery
    assert res.signed_through == at - 1  # everything up to the first signature still proven


def test_forged_line_inserted_without_rebuilding_is_caught_at_the_next(log, platform_id):
    path, lines = log
    prev = json.loads(lines[5])
    lines.insert(6, dump(rehash({**prev, "seq": prev["seq"] + 1, "prev": prev["hash"],
                                 "correlation_id": "forged"})))
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line) == ("tampered", 8)


def test_truncated_closing_signature_is_caught(log, platform_id) -> None:
    path, lines = log
    lines = lines[:-3]  # the closing signature and two legs before it
    res = tamper_and_verify(path, lines, platform_id.cert)
    last_sig = max(i for i, k in enumerate(kinds(lines), 1) if k == "sig")
    assert (res.status, res.line) == ("unsigned-tail", last_sig + 1)


def test_log_cut_exactly_after_a_periodic_signature_is_caught(log, platform_id) -> None:
    path, lines = log
    second_sig = [i for i, k in enumerate(kinds(lines), 1) if k == "sig"][1]
    res = tamper_and_verify(path, lines[:second_sig], platform_id.cert)
    assert (res.status, res.line) == ("unsigned-tail", second_sig + 1)
    assert "periodic" in res.problem
    # a running platform's log legitimately ends that way
    assert verify_log(path, platform_id.cert, live=True).intact


def test_torn_last_line_is_reported_as_torn(log, platform_id) -> None:
    path, lines = log
    lines[-1] = lines[-1][:40]  # a crash in the middle of writing the last record
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line, res.exit_code) == ("torn", len(lines), 1)
    # a running platform may be in the middle of a write: --live accepts (and notes) it
    live = verify_log(path, platform_id.cert, live=True)
    assert live.intact and f"line {len(lines)}: the last record is still being written" in \
        " ".join(live.notes)


def test_flipped_byte_in_a_signature(log, platform_id) -> None:
    path, lines = log
    rec = json.loads(lines[-1])
    der = bytearray(base64.b64decode(rec["sig"]))
    der[-5] ^= 0x01
    rec["sig"] = base64.b64encode(bytes(der)).decode()
    lines[-1] = dump(rehash(rec))  # even with its hash recomputed
    res = tamper_and_verify(path, lines, platform_id.cert)
    assert (res.status, res.line) == ("tampered", len(lines)) and "bad signature" in res.problem
    lines[-1] = dump({**rec, "hash": json.loads(lines[-1])["hash"][:-1] + "0"})
    assert tamper_and_verify(path, lines, platform_id.cert).line == len(lines)


def test_removed_first_line_is_caught(log, platform_id) -> None:
    path, lines = log
    res = tamper_and_verify(path, lines[1:], platform_id.cert)
    assert (res.status, res.line) == ("tampered", 1)


def test_log_signed_by_another_key_is_refused(log, platform_id, other_id) -> None:
    path, _ = log
    res = verify_log(path, other_id.cert)
    assert res.status == "tampered" and "another key" in res.problem


def test_crash_then_restart_keeps_the_chain_and_names_the_lost_line(tmp_path, platform_id):
    path = tmp_path / "m.log"
    lines = write_log(path, platform_id, 6)
    with path.open("a") as fh:
        fh.write('{"contract":"GetListing:2","correlation_id":"cr')  # killed mid-write
    torn_line = len(lines) + 1
    lines = write_log(path, platform_id, 3)  # the restarted platform
    assert json.loads(lines[torn_line])["torn_line"] == torn_line
    res = verify_log(path, platform_id.cert)
    assert res.intact, res
    assert any(f"line {torn_line}: a torn record" in n for n in res.notes)


# --- the command line ------------------------------------------------------------------------

def test_cli_exit_codes(log, platform_id, tmp_path, capsys) -> None:
    path, lines = log
    cert = str(platform_id.cert)
    assert main(["verify-log", str(path), "--cert", cert]) == 0
    assert "intact" in capsys.readouterr().out
    del lines[7]
    path.write_text("".join(lines))
    assert main(["verify-log", str(path), "--cert", cert]) == 1
    assert f"{path}:8: tampered" in capsys.readouterr().err
    assert main(["verify-log", str(tmp_path / "missing.log"), "--cert", cert]) == 2
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert main(["verify-log", str(path), "--cert", str(tmp_path / "junk.pem")]) == 2
    # the bare public key (PEM) serves as well as the certificate
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pub = x509.load_pem_x509_certificate(platform_id.cert.read_bytes()).public_key()
    (tmp_path / "platform.pub").write_bytes(pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["verify-log", str(path), "--cert", str(tmp_path / "platform.pub")]) == 1
    capsys.readouterr()
    assert main(["verify-log", str(path), "--cert", cert, "--json"]) == 1
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["status"] == "tampered" and out["line"] == 8


def test_register_msglog_adds_verify_log_to_the_platform_command(log, platform_id) -> None:
    path, _ = log
    parser = argparse.ArgumentParser(prog="listning")
    platform = parser.add_subparsers(dest="command").add_parser("platform")
    register_msglog(platform.add_subparsers(dest="platform_command"))
    args = parser.parse_args(["platform", "verify-log", str(path), "--cert",
                              str(platform_id.cert)])
    assert args.handler(args) == 0


def test_module_entry_point_exit_code(log, platform_id) -> None:
    path, lines = log
    lines[2], lines[3] = lines[3], lines[2]
    path.write_text("".join(lines))
    proc = subprocess.run([sys.executable, "-m", "routing.msglog", "verify-log", str(path),
                           "--cert", str(platform_id.cert)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and f"{path}:3: tampered" in proc.stderr
