"""Shared parts of the fuzz tests: the targets with their allowed outcomes, seeds, strategies.

Each ``run_*`` calls one target the way the product does and returns a comparable outcome; it
fails the test on any exception outside the target's documented error types, and on a call
that takes longer than ``MAX_SECONDS`` (a hang or a super-linear blow-up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from interactions.validation import EnvelopeError, read_envelope
from interactions.validator import Report, validate_bytes
from interactions.xmlload import XmlInputError, parse_bytes
from routing.vp import envelope as vp_envelope
from routing.vp.faults import VpError

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
EXAMPLES = REPO / "interactions" / "examples"
MAX_SECONDS = 2.0  # CPU seconds per input and target (typical: a few ms)
BIG = 10**9  # a max_bytes that never refuses (size tests pass their own)

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
REGISTRY = "urn:riv:itintegration:registry:1"
WSA = "http://www.w3.org/2005/08/addressing"
# Markers that must never come out of any target: file contents an entity could pull in.
SECRET = "listning-fuzz-secret-7f3c"
LEAKS = ("root:x:0:0", SECRET)

# CI runs the same examples every time (a red build is never a coin toss); other runs explore.
_common = {"deadline": None, "derandomize": bool(os.environ.get("CI")), "print_blob": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much]}
settings.register_profile("security-ci", max_examples=150, **_common)
settings.register_profile("security-dev", max_examples=600, **_common)
settings.register_profile("security-long", max_examples=20_000, **_common)
PROFILE_NAME = os.environ.get("LISTNING_FUZZ_PROFILE", "security-ci")
PROFILE = settings.get_profile(PROFILE_NAME)
# pytest-timeout per fuzz test: a hang fails CI; the long opt-in run has no limit
TEST_TIMEOUT = 0 if PROFILE_NAME == "security-long" else 240


def fuzz_settings(scale: float = 1.0) -> settings:
    """The chosen profile, with ``max_examples`` scaled for cheaper or dearer targets
    (``LISTNING_FUZZ_EXAMPLES`` overrides the profile's base number)."""
    base = int(os.environ.get("LISTNING_FUZZ_EXAMPLES", PROFILE.max_examples))
    return settings(PROFILE, max_examples=max(10, int(base * scale)))


def seed_files() -> list[Path]:
    """The seed corpus: the contract examples (valid and invalid) and the crafted inputs."""
    return sorted(EXAMPLES.glob("*/*/*.xml")) + sorted(CORPUS.glob("*.xml"))


def secret_file() -> Path:
    """A file whose content marks an entity that was resolved (made once per run)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{SECRET}.txt"
    if not path.exists():
        path.write_text(SECRET)
    return path


def timed(fn: Callable[[], Any], what: str) -> Any:
    # CPU time, not wall time: a hang or a blow-up burns CPU, while a stall of the shared
    # machine does not (wall time once measured 4 s for a 300-byte input under load).
    start = time.process_time()
    try:
        return fn()
    finally:
        took = time.process_time() - start
        assert took < MAX_SECONDS, f"{what} took {took:.2f} s CPU (bound {MAX_SECONDS} s)"


def assert_no_leak(*outputs: object) -> None:
    text = " ".join(repr(o) for o in outputs)
    for marker in LEAKS:
        assert marker not in text, f"an entity was resolved: {marker!r} in the output"


# --- the targets -------------------------------------------------------------------------

def run_loader(data: bytes, max_bytes: int = BIG) -> Any:
    """``parse_bytes``: an element or XmlInputError (with a known kind)."""
    try:
        root = timed(lambda: parse_bytes(data, max_bytes=max_bytes), "parse_bytes")
    except XmlInputError as exc:
        assert exc.kind in {"too-large", "doctype", "malformed", "empty"}, exc.kind
        return exc
    assert isinstance(root.tag, str)
    assert root.getroottree().docinfo.doctype == "", "a DOCTYPE got through"
    from lxml import etree

    assert_no_leak(etree.tostring(root))
    return root


def run_structure(data: bytes) -> Any:
    """``parse_bytes`` + ``read_envelope`` (interactions): an Envelope or a documented error."""
    root = run_loader(data)
    if isinstance(root, XmlInputError):
        return root
    try:
        env = timed(lambda: read_envelope(root), "read_envelope")
    except EnvelopeError as exc:
        return exc
    assert env.body.getparent() is env.root and env.payload.getparent() is env.body
    return env


def vp_outcome(fn: Callable[[], Any], what: str) -> tuple[Any, ...]:
    """The VP reader's result as a comparable tuple: ("VP015",) or (namespace, address, ver)."""
    try:
        info = timed(fn, what)
    except VpError as exc:
        assert exc.code == "VP015", f"{what}: {exc.code} {exc.message}"
        return ("VP015",)
    assert info.contract_namespace, "a routed call needs a contract namespace"
    assert_no_leak(info)
    return (info.contract_namespace, info.logical_address, info.riv_version)


def run_vp_full(data: bytes) -> tuple[Any, ...]:
    return vp_outcome(lambda: vp_envelope._read_full(data, BIG), "VP full-parse reader")


def run_vp_stream(data: bytes) -> tuple[Any, ...]:
    return vp_outcome(lambda: vp_envelope._read_streaming(data), "VP streaming reader")


def run_vp(data: bytes, max_bytes: int = BIG) -> tuple[Any, ...]:
    return vp_outcome(lambda: vp_envelope.read_envelope(data, max_bytes), "VP read_envelope")


def run_validator(data: bytes, max_bytes: int = BIG) -> Report:
    """``validate_bytes``: always a Report (never an exception), consistent with itself."""
    report = timed(lambda: validate_bytes(data, max_bytes=max_bytes), "validate_bytes")
    assert isinstance(report, Report)
    assert report.verdict in {"valid", "invalid", "unusable"}
    assert report.usable == (not ({p.rule for p in report.problems}
                                  & {"empty", "too-large", "doctype", "malformed"}))
    assert_no_leak(report.to_dict())
    return report


def check_differential(data: bytes) -> None:
    """For a well-formed document, the streaming and full-parse readers agree exactly, and
    the interactions envelope reader agrees on the contract."""
    loaded = run_structure(data)
    stream, full = run_vp_stream(data), run_vp_full(data)
    if isinstance(loaded, XmlInputError):
        return  # not well-formed: the stream may stop before the broken part (by design)
    assert stream == full, f"streaming {stream} != full parse {full}"
    if not isinstance(loaded, EnvelopeError):
        from lxml import etree

        ns = etree.QName(loaded.payload).namespace
        expected = ns if ns else "VP015"  # the VP routes on the body element's namespace
        assert full[0] == expected, f"VP reads {full}, the envelope reader {ns!r}"


# --- strategies ------------------------------------------------------------------------------

def seed_bytes() -> st.SearchStrategy[bytes]:
    return st.sampled_from([p.read_bytes() for p in seed_files() if p.stat().st_size < 70_000])


TOKENS = [b"<", b">", b"&", b"]]>", b"<![CDATA[", b"<!--", b"-->", b"<?", b"?>", b"\x00",
          b"\xef\xbb\xbf", b"\xff\xfe", b"&amp;", b"&#0;", b"&#x10FFFF;", b"&#xD800;",
          b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", b"&e;",
          b'xmlns:soap="http://www.w3.org/2003/05/soap-envelope"', b'xmlns=""',
          b"</soap:Header>", b"<soap:Body>", b"</soap:Body>", b"\r\n", b"\xc3", b"\xe5"]


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A seed with a few byte-level edits: flips, cuts, inserted XML tokens, splices."""
    data = bytearray(draw(seed_bytes()))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "token", "splice", "cut"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == "splice":
            other = draw(seed_bytes())
            start = draw(st.integers(0, max(0, len(other) - 1)))
            data[pos:pos] = other[start:start + draw(st.integers(1, 400))]
        else:
            data = data[:pos]
    return bytes(data)


CONTRACT_NAMESPACES = [
    "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2",
    "urn:riv:supportprocess:logistics:carelisting:UpdateListingResponder:2",
    "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1",
    "urn:example:other:1", "", SOAP11,
]
_text = st.sampled_from(["08", " 08 ", "\n\t01\n", "", "  ", "*", "ÅÄÖ", "0&amp;8", "&#48;8",
                         "<![CDATA[08]]>", "0<!-- c -->8", "08<?pi x?>", "SE2321000016-1A2B"])


@st.composite
def header_child(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["la", "la-other-ns", "la-no-ns", "to", "other", "comment",
                                 "pi", "nested"]))
    text = draw(_text)
    if kind == "la":
        prefix = draw(st.sampled_from(["add", "a", ""]))
        if prefix == "":
            return f'<LogicalAddress xmlns="{REGISTRY}">{text}</LogicalAddress>'
        return (f'<{prefix}:LogicalAddress xmlns:{prefix}="{REGISTRY}">{text}'
                f"</{prefix}:LogicalAddress>")
    if kind == "la-other-ns":
        return f'<x:LogicalAddress xmlns:x="urn:evil">{text}</x:LogicalAddress>'
    if kind == "la-no-ns":
        return f'<LogicalAddress xmlns="">{text}</LogicalAddress>'
    if kind == "to":
        return f'<wsa:To xmlns:wsa="{WSA}">{text}</wsa:To>'
    if kind == "other":
        return f'<t:Trace xmlns:t="urn:trace">{text}</t:Trace>'
    if kind == "comment":
        return "<!-- LogicalAddress 99 -->"
    if kind == "pi":
        return "<?LogicalAddress 99?>"
    return f'<w:W xmlns:w="urn:w"><LogicalAddress xmlns="{REGISTRY}">99</LogicalAddress></w:W>'


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Structure-aware SOAP envelopes: prefixes, header forms, body forms, prolog, encoding."""
    p = draw(st.sampled_from(["soap", "s", "SOAP-ENV", ""]))
    env_ns = draw(st.sampled_from([SOAP11] * 6 + [SOAP12, "urn:not-soap"]))
    q = (lambda local: f"{p}:{local}") if p else (lambda local: local)
    decl = f'xmlns:{p}="{env_ns}"' if p else f'xmlns="{env_ns}"'
    parts: list[str] = []
    if draw(st.booleans()):
        parts.append(f"<{q('Header')}>" + "".join(draw(st.lists(header_child(), max_size=4)))
                     + f"</{q('Header')}>")
    ns = draw(st.sampled_from(CONTRACT_NAMESPACES))
    local = draw(st.sampled_from(["GetListing", "UpdateListingResponse", "X"]))
    payload = f'<{local} xmlns="{ns}"><a>1</a></{local}>' if ns else f'<{local} xmlns=""/>'
    body_items = draw(st.lists(st.sampled_from(["<!-- c -->", "<?pi?>", " \n ", "<![CDATA[]]>"]),
                               max_size=2))
    body = "".join(body_items) + (payload if draw(st.integers(0, 9)) else "")
    if draw(st.integers(0, 5)) == 0:
        body += '<e:Extra xmlns:e="urn:e"/>'
    parts.append(f"<{q('Body')}>{body}</{q('Body')}>")
    if draw(st.integers(0, 6)) == 0:  # a second header or a stray element, before or after
        stray = draw(st.sampled_from([f"<{q('Header')}/>", '<z:Z xmlns:z="urn:z"/>',
                                      f"<{q('Body')}/>"]))
        parts.insert(draw(st.integers(0, len(parts))), stray)
    doc = f"<{q('Envelope')} {decl}>" + "".join(parts) + f"</{q('Envelope')}>"
    prolog = draw(st.sampled_from(["", "<!-- before -->", "<?pi before?>\n"]))
    tail = draw(st.sampled_from(["", "\n", "<!-- after -->"]))
    pad = draw(st.sampled_from([0, 0, 0, 20_000]))  # crosses the streaming threshold
    if pad:
        tail += "<!--" + "p" * pad + "-->"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le",
                                     "iso-8859-1"]))
    declared = {"utf-8-sig": "UTF-8", "utf-16-le": "UTF-16LE"}.get(encoding, encoding.upper())
    xml_decl = (f'<?xml version="1.0" encoding="{declared}"?>\n'
                if draw(st.booleans()) or encoding.startswith("utf-16") else "")
    if encoding == "utf-16-le" and not xml_decl:
        encoding = "utf-8"
    return (xml_decl + prolog + doc + tail).encode(encoding)
