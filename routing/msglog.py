"""The platform's tamper-evident message log: one hash-chained JSON line per leg, signed.

As national exchange layers keep them (X-Road's message log is the model), the log lets anyone
holding the platform's certificate prove afterwards which calls passed and that no line was
altered, removed, inserted or reordered. It holds metadata only, never message bodies:
correlation id, leg, sender, receiver (logical address), producer (HSA-id), contract, status,
VP code, duration and time.

File format (JSON lines, UTF-8, append-only)::

    {"kind":"open","seq":1,"time":…,"key_id":…,"format":1,"prev":"000…","hash":…}
    {"kind":"leg","seq":2,"time":…,"correlation_id":…,"leg":"req-in",…,"prev":…,"hash":…}
    {"kind":"sig","seq":9,"time":…,"count":8,"final":false,"key_id":…,"sig":…,"prev":…,"hash":…}

* ``hash`` = SHA-256 (hex) of the canonical JSON (sorted keys, no spaces, UTF-8) of the record
  without ``hash``; ``prev`` is the previous record's ``hash`` (64 zeros for the first), and
  ``seq`` counts records from 1. Changing, removing, inserting or reordering a line breaks the
  chain at that line.
* Every ``sign_every`` records or ``sign_interval`` seconds, and at ``close()``
  (``"final": true``), a ``sig`` record: ECDSA P-256/SHA-256 with the platform's key over the
  canonical JSON of the record without ``sig`` and ``hash``, i.e. over the chain head
  (``prev``), ``count`` (records before it) and ``time``. Someone without the key can rebuild
  the hashes after a forged line, but not the next signature.
* A crash can leave a torn last line. The next writer on the file ends that line and writes a
  ``resume`` record naming it (``torn_line``), chained to the last good record; the verifier
  reports the torn line as lost data, not as tampering.

Limits: records after the last signature are only as good as the file (``verify --live``
accepts them, the default does not); a log cut exactly after a periodic signature is detected
(no closing signature) unless verified with ``--live``. Anchoring heads outside the platform
(a timestamping service) would close that gap.

VP integration: ``MessageLog.open(path, key_pem_path)`` once at start (the platform's own key,
``--key``), ``asyncio.create_task(log.sign_periodically())`` next to the server, then per leg
``log.append({"leg": "req-in", "correlation_id": …, "sender": …, …})`` or the CallLog-shaped
``log.leg("req-in", correlation_id, sender=…, …)`` (the same arguments as ``CallLog.leg``);
``log.close()`` at shutdown (the closing signature). Unknown keys (an error's ``message``, the
request path) are dropped: only the fields above are ever written. ``append`` is synchronous
and short (no await, one ``write``): safe from the event loop and from threads. It raises
``OSError`` when the record cannot be written (disk full): the VP then refuses the call with
VP012, a Server fault (it fails closed, as X-Road does; see docs/reliability.md). After a short
write (part of a record in the file) every later append fails until the log is reopened.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

FORMAT = 1
GENESIS = "0" * 64
# The leg fields a record may carry (metadata only; anything else given is dropped).
LEG_FIELDS = ("correlation_id", "leg", "sender", "receiver", "producer", "contract", "status",
              "vp_code", "duration_ms")
_ALIASES = {"event": "leg"}  # the VP's CallLog calls the leg "event"
DEFAULT_SIGN_EVERY = 1000
DEFAULT_SIGN_INTERVAL = 60.0  # seconds


# One encoder, made once: json.dumps with options builds a new one per call (slow).
# default=str: a value JSON has no type for (a datetime, an enum) is logged as its text rather
# than failing the call; reading it back gives the same text, so the hash still verifies.
_canonical_text = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False, default=str).encode


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes hashed and signed: sorted keys, no whitespace, UTF-8."""
    return _canonical_text(record).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _signed_part(record: Mapping[str, Any]) -> bytes:
    return canonical({k: v for k, v in record.items() if k not in ("hash", "sig")})


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the public key (SubjectPublicKeyInfo DER), first 16 hex digits."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


_second_cache: list[Any] = [None, ""]  # [whole second, its "YYYY-MM-DDTHH:MM:SS" text]


def _now_iso(clock: Callable[[], float]) -> str:
    """UTC time with milliseconds; the date part is formatted once a second (it is hot)."""
    now = clock()
    sec = int(now)
    cached = _second_cache
    if cached[0] != sec:
        cached[1] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached[0] = sec
    return f"{cached[1]}.{int((now - sec) * 1000):03d}Z"


# --- writing -------------------------------------------------------------------------------

class MessageLog:
    """Append-only, hash-chained, periodically signed log of legs. Thread-safe.

    Each record is one ``os.write`` on an ``O_APPEND`` descriptor (no user-space buffer, so a
    record is either in the file or not; ``fsync=True`` also survives a power cut, at a cost).
    Safe to call from the event loop: an append costs a few µs (measured in the tests and
    docs/reliability.md), a signature a few tens.
    """

    def __init__(self, path: str | Path, signing_key: ec.EllipticCurvePrivateKey, *,
                 sign_every: int = DEFAULT_SIGN_EVERY,
                 sign_interval: float = DEFAULT_SIGN_INTERVAL,
                 fsync: bool = False, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(signing_key, ec.EllipticCurvePrivateKey) \
                or signing_key.curve.name != "secp256r1":
            raise ValueError("the message log is signed with an EC P-256 private key")
        if sign_every < 1 or sign_interval <= 0:
            raise ValueError("sign_every must be ≥ 1 and sign_interval > 0")
        self.path = Path(path)
        self._key = signing_key
        self._key_id = key_id(signing_key.public_key())
        self._sign_every, self._sign_interval = sign_every, sign_interval
        self._fsync, self._clock = fsync, clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._torn = False  # a short write left part of a record: no more appends
        self._seq, self._head = 0, GENESIS
        self._unsigned = 0  # records since the last signature
        self._last_sig = clock()
        torn_line = self._recover()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with self._lock:
            if torn_line is not None:
                os.write(self._fd, b"\n")  # end the torn line; it stays, as evidence
                if torn_line > 0:
                    self._write({"kind": "resume", "torn_line": torn_line})
            self._write({"kind": "open", "format": FORMAT, "key_id": self._key_id})

    @classmethod
    def open(cls, path: str | Path, key_pem: str | Path, **kwargs: Any) -> MessageLog:
        """A log signed with the private key in the PEM file ``key_pem`` (``routing.pki``)."""
        key = serialization.load_pem_private_key(Path(key_pem).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_pem} holds no EC private key")
        return cls(path, key, **kwargs)

    def _recover(self) -> int | None:
        """Continue an existing chain; the line number of a torn last line, if there is one."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                if size == 0:
                    return None
                lines = _tail_lines(fh, size)
        except FileNotFoundError:
            return None
        total, tail = lines  # line count of the file and its last lines, newest last
        torn = None
        if not tail[-1].endswith(b"\n"):
            if _is_record(tail[-1]):
                torn = -1  # whole record, only its newline is missing: end the line
            else:
                torn, tail = total, tail[:-1]
        for raw in reversed(tail):
            try:
                rec = json.loads(raw)
                self._seq, self._head = int(rec["seq"]), str(rec["hash"])
                break
            except (ValueError, KeyError, TypeError):
                continue  # a torn line acknowledged earlier; the chain goes on before it
        return torn

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Log one leg (a dict with the LEG_FIELDS; others are dropped). Returns the record."""
        fields: dict[str, Any] = {}
        for k, v in event.items():
            k = _ALIASES.get(k, k)
            if k in LEG_FIELDS and v is not None:
                fields[k] = v
        with self._lock:
            rec = self._write({"kind": "leg", **fields})
            self._unsigned += 1
            if self._unsigned >= self._sign_every or \
                    self._clock() - self._last_sig >= self._sign_interval:
                self._sign(final=False)
        return rec

    def leg(self, event: str, correlation_id: str, **fields: Any) -> None:
        """Same call shape as ``routing.vp.calllog.CallLog.leg``, so the VP can call both."""
        self.append({"leg": event, "correlation_id": correlation_id, **fields})

    def sign_if_due(self) -> bool:
        """Sign unsigned records when ``sign_interval`` has passed (for a periodic timer)."""
        with self._lock:
            if self._fd is None or not self._unsigned or \
                    self._clock() - self._last_sig < self._sign_interval:
                return False
            self._sign(final=False)
            return True

    async def sign_periodically(self) -> None:
        """A task for the VP's event loop: signs a quiet log every ``sign_interval`` seconds
        (busy logs are signed on append). Ends when the log is closed."""
        while self._fd is not None:
            await asyncio.sleep(self._sign_interval)
            # disk full: the next leg's append fails its call; try again next interval
            with contextlib.suppress(OSError):
                self.sign_if_due()

    def close(self) -> None:
        """Write the closing signature and close the file (idempotent)."""
        with self._lock:
            if self._fd is None:
                return
            try:
                self._sign(final=True)  # OSError (disk full): the file is closed anyway
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> MessageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Callers hold self._lock.
    def _sign(self, *, final: bool) -> None:
        rec: dict[str, Any] = {"kind": "sig", "seq": self._seq + 1, "time": _now_iso(self._clock),
                               "count": self._seq, "final": final, "key_id": self._key_id,
                               "prev": self._head}
        der = self._key.sign(_signed_part(rec), ec.ECDSA(hashes.SHA256()))
        self._write(rec, sig=base64.b64encode(der).decode())
        self._unsigned = 0
        self._last_sig = self._clock()

    def _write(self, body: dict[str, Any], sig: str | None = None) -> dict[str, Any]:
        if self._fd is None:
            raise ValueError("the message log is closed")
        rec = dict(body)
        rec.setdefault("seq", self._seq + 1)
        rec.setdefault("time", _now_iso(self._clock))
        rec.setdefault("prev", self._head)
        if sig is not None:
            rec["sig"] = sig
        # The line is the canonical text itself with the hash appended: one encoding, not two.
        text = _canonical_text(rec).encode()
        rec["hash"] = hashlib.sha256(text).hexdigest()
        if self._torn:
            raise OSError(errno.EIO, "the message log has a torn record (a short write); "
                                     "restart to end it and continue the chain")
        # One write per record: the line lands whole or (after a crash mid-write) torn.
        line = text[:-1] + b',"hash":"' + rec["hash"].encode() + b'"}\n'
        written = os.write(self._fd, line)  # OSError (disk full): nothing written, chain intact
        if written != len(line):
            # Part of a line is in the file: anything appended now would join it. Stop here;
            # the next open ends the torn line and chains on (``_recover``).
            self._torn = True
            raise OSError(errno.ENOSPC, f"short write to the message log ({written} of "
                                        f"{len(line)} bytes)")
        if self._fsync:
            os.fsync(self._fd)
        self._seq, self._head = rec["seq"], rec["hash"]
        return rec


def _is_record(raw: bytes) -> bool:
    try:
        rec = json.loads(raw)
    except ValueError:
        return False
    return isinstance(rec, dict) and "hash" in rec and "seq" in rec


def _tail_lines(fh: Any, size: int, block: int = 64 * 1024) -> tuple[int, list[bytes]]:
    """(number of lines in the file, its last few lines with their newlines)."""
    fh.seek(max(0, size - block))
    chunk = fh.read()
    lines = chunk.splitlines(keepends=True)
    if size > block:
        lines = lines[1:] or lines  # the first piece may start mid-line
    fh.seek(0)
    total = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    if not chunk.endswith(b"\n"):
        total += 1
    return total, lines


# --- verifying -----------------------------------------------------------------------------

@dataclass
class VerifyResult:
    """The verdict on a log. ``status``: intact, tampered, torn, unsigned-tail or unusable."""

    status: str
    problem: str = ""
    line: int | None = None  # the first bad line (1-based)
    records: int = 0
    signatures: int = 0
    signed_through: int = 0  # the last line covered by a valid signature
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.status == "intact"

    @property
    def exit_code(self) -> int:
        return 0 if self.intact else 2 if self.status == "unusable" else 1

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "intact": self.intact, "problem": self.problem,
                "line": self.line, "records": self.records, "signatures": self.signatures,
                "signed_through": self.signed_through, "notes": self.notes}


def load_public_key(source: bytes | str | Path | ec.EllipticCurvePublicKey
                    | x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The P-256 public key from a certificate or public key (PEM or DER, bytes or a path)."""
    if isinstance(source, x509.Certificate):
        key: Any = source.public_key()
    elif isinstance(source, ec.EllipticCurvePublicKey):
        key = source
    else:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        key = None
        loaders: tuple[Callable[[bytes], Any], ...] = (
            lambda d: x509.load_pem_x509_certificate(d).public_key(),
            serialization.load_pem_public_key,
            lambda d: x509.load_der_x509_certificate(d).public_key(),
            serialization.load_der_public_key,
        )
        for load in loaders:
            try:
                key = load(data)
                break
            except (ValueError, TypeError, UnsupportedAlgorithm):
                continue
        if key is None:
            raise ValueError("neither a certificate nor a public key (PEM or DER)")
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the log is verified with an EC P-256 key; this is another kind")
    return key


def verify_log(path: str | Path, public_cert_or_key: bytes | str | Path
               | ec.EllipticCurvePublicKey | x509.Certificate, *,
               live: bool = False) -> VerifyResult:
    """Check the chain and every signature; name the first bad line.

    ``live``: the writer may still be running, so records after the last signature and a log
    without a closing signature are accepted (and noted).
    """
    try:
        public_key = load_public_key(public_cert_or_key)
    except (OSError, ValueError) as exc:
        return VerifyResult("unusable", f"cannot use the certificate or key: {exc}")
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; read line by line: any size)
    except OSError as exc:
        return VerifyResult("unusable", f"cannot read the log: {exc.strerror or exc}")
    with fh:
        return _verify_lines(fh, public_key, live)


def _verify_lines(fh: Any, public_key: ec.EllipticCurvePublicKey, live: bool) -> VerifyResult:
    kid = key_id(public_key)
    res = VerifyResult("intact")
    seq, head = 0, GENESIS
    last_sig_line, last_sig_final = 0, False
    pending_torn: int | None = None
    last_record_line = 0
    lines = iter(fh)
    following = next(lines, None)
    if following is None:
        return _bad(res, "tampered", None, "the log is empty (a log starts with an open record)")
    no = 0
    while following is not None:
        raw, following = following, next(lines, None)
        no += 1
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError:
            if following is None and not raw.endswith(b"\n"):
                if live:
                    res.notes.append(f"line {no}: the last record is still being written")
                    break
                return _bad(res, "torn", no, "the last line is torn (cut off mid-record, as "
                            "by a crash while writing); the lines before it were checked")
            if pending_torn is None and following is not None and _acknowledges(following, no):
                pending_torn = no
                continue
            return _bad(res, "tampered", no, "not a JSON record")
        if pending_torn is not None:
            pending_torn = None
            res.notes.append(f"line {no - 1}: a torn record from a crash (lost; acknowledged "
                             f"by the resume record on line {no})")
        try:
            problem = _check_record(rec, seq, head)
        except (ValueError, TypeError):  # NaN, or values JSON cannot hash canonically
            problem = "not a log record (values that cannot be hashed)"
        if problem:
            return _bad(res, "tampered", no, problem)
        seq, head = rec["seq"], rec["hash"]
        res.records += 1
        last_record_line = no
        if rec.get("kind") == "sig":
            problem = _check_signature(rec, public_key, kid)
            if problem:
                return _bad(res, "tampered", no, f"{problem} (it covers lines "
                            f"{last_sig_line + 1}–{no - 1})")
            res.signatures += 1
            res.signed_through = no
            last_sig_line, last_sig_final = no, bool(rec.get("final"))
        elif no == 1 and rec.get("kind") != "open":
            return _bad(res, "tampered", 1, "the first record is not the log's open record")
    if last_sig_line < last_record_line:
        first_unsigned = last_sig_line + 1
        msg = (f"{last_record_line - last_sig_line} line(s) from line {first_unsigned} on are "
               f"covered by no signature")
        if not live:
            return _bad(res, "unsigned-tail", first_unsigned, msg + " (forged, or the writer "
                        "is still running or crashed: verify with --live for a running log)")
        res.notes.append(msg + " (live log)")
    elif not last_sig_final:
        msg = (f"the log ends with a periodic signature (line {last_sig_line}), not a closing "
               f"one: its tail may have been cut off")
        if not live:
            return _bad(res, "unsigned-tail", last_sig_line + 1, msg)
        res.notes.append(msg + " (live log)")
    return res


def _acknowledges(raw: bytes, torn_no: int) -> bool:
    try:
        rec = json.loads(raw)
    except ValueError:
        return False
    return isinstance(rec, dict) and rec.get("kind") == "resume" and rec.get("torn_line") == torn_no


def _check_record(rec: dict[str, Any], seq: int, head: str) -> str | None:
    if not isinstance(rec.get("hash"), str) or not isinstance(rec.get("seq"), int):
        return "not a log record (no hash or seq)"
    if record_hash(rec) != rec["hash"]:
        return "the record was altered (its hash does not match its content)"
    if rec.get("prev") != head or rec["seq"] != seq + 1:
        where = "the first record" if seq == 0 else f"record {seq}"
        return (f"the record (seq {rec['seq']}) does not follow {where}: a record was removed, "
                f"inserted or moved here")
    return None


def _check_signature(rec: dict[str, Any], public_key: ec.EllipticCurvePublicKey,
                     kid: str) -> str | None:
    if rec.get("key_id") != kid:
        return f"the signature is by another key ({rec.get('key_id')}), not the given one ({kid})"
    if rec.get("count") != rec["seq"] - 1:
        return "the signature's record count does not match its position"
    try:
        der = base64.b64decode(str(rec.get("sig", "")), validate=True)
        public_key.verify(der, _signed_part(rec), ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return "bad signature: the records it covers or the signature itself were changed"
    return None


def _bad(res: VerifyResult, status: str, line: int | None, problem: str) -> VerifyResult:
    res.status, res.line, res.problem = status, line, problem
    return res


# --- `listning platform verify-log FILE --cert PLATFORM_CERT` ------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the message log (JSON lines)")
    parser.add_argument("--cert", required=True, type=Path, metavar="PLATFORM_CERT",
                        help="the platform's certificate (or public key), PEM or DER")
    parser.add_argument("--live", action="store_true",
                        help="the platform may still be writing: accept an unsigned tail")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def register_msglog(platform_subparsers: argparse._SubParsersAction) -> None:
    """Add ``verify-log`` to the ``listning platform`` subcommands."""
    p = platform_subparsers.add_parser(
        "verify-log", help="check a message log's hash chain and signatures "
        "(exit 0 intact, 1 tampered/torn/unsigned tail, 2 unusable)")
    add_arguments(p)
    p.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    res = verify_log(args.file, args.cert, live=args.live)
    if args.json:
        print(json.dumps(res.to_dict(), ensure_ascii=False))
    else:
        for note in res.notes:
            print(f"{args.file}: note: {note}")
        where = f"{args.file}:{res.line}" if res.line else str(args.file)
        if res.intact:
            print(f"{args.file}: intact ({res.records} records, {res.signatures} signatures)")
        else:
            print(f"{where}: {res.status}: {res.problem}", file=sys.stderr)
    return res.exit_code


def main(argv: list[str] | None = None) -> int:
    """``python -m routing.msglog verify-log FILE --cert PEM`` (until the CLI is wired)."""
    parser = argparse.ArgumentParser(prog="python -m routing.msglog")
    sub = parser.add_subparsers(dest="command", required=True)
    register_msglog(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
