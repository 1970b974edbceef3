"""Fuzzing the XML entry points: the hardened loader, the envelope check, the platform's
streaming and full-parse envelope readers (differentially), and the validator.

Properties, for every input: only the documented errors (XmlInputError, EnvelopeError,
VpError VP015, a validator Report); bounded time; no DOCTYPE or entity ever resolved; huge
inputs refused by the size cap before parsing; and for every well-formed envelope the
streaming reader and the full parse agree on contract namespace, logical address and RIV
version. The seed corpus (contract examples + tests/security/corpus) is replayed first.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from security_support import (
    BIG,
    CORPUS,
    EXAMPLES,
    SOAP11,
    TEST_TIMEOUT,
    check_differential,
    envelopes,
    fuzz_settings,
    mutated_bytes,
    run_loader,
    run_structure,
    run_validator,
    run_vp,
    run_vp_full,
    secret_file,
    seed_files,
    timed,
)

from interactions import xmlload
from interactions.validation import EnvelopeError
from interactions.xmlload import DEFAULT_MAX_BYTES, XmlInputError, parse_bytes
from routing.vp.envelope import PULL_THRESHOLD, convert_address_header
from routing.vp.faults import VpError

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

GLT = "urn:riv:supportprocess:logistics:carelisting:GetListingTypesResponder:2"
OK08 = (GLT, "08", "RIVTABP21")
# Crafted inputs → (loader outcome, VP outcome). The rest of the corpus is checked by the
# generic properties only.
EXPECTED: dict[str, tuple[str, tuple[str | None, ...]]] = {
    "xxe-file-entity.xml": ("doctype", ("VP015",)),
    "xxe-parameter-entity.xml": ("doctype", ("VP015",)),
    "xxe-external-dtd.xml": ("doctype", ("VP015",)),
    "utf16-xxe.xml": ("doctype", ("VP015",)),
    "billion-laughs.xml": ("doctype", ("VP015",)),
    "quadratic-blowup.xml": ("doctype", ("VP015",)),
    "deep-nesting-header.xml": ("malformed", ("VP015",)),
    "deep-nesting-body.xml": ("malformed", ("VP015",)),
    "overlong-name.xml": ("malformed", ("VP015",)),
    "many-attributes.xml": ("ok", OK08),
    "many-namespace-declarations.xml": ("ok", OK08),
    "utf8-bom.xml": ("ok", OK08),
    "utf16-le-bom.xml": ("ok", OK08),
    "utf16-be-bom.xml": ("ok", OK08),
    "utf16-le-no-bom.xml": ("ok", OK08),
    "latin1-declared.xml": ("ok", OK08),
    "utf16-declared-utf8-bytes.xml": ("malformed", ("VP015",)),
    "unknown-encoding.xml": ("malformed", ("VP015",)),
    "invalid-utf8.xml": ("malformed", ("VP015",)),
    "nul-byte.xml": ("malformed", ("VP015",)),
    "undefined-entity.xml": ("malformed", ("VP015",)),
    "cdata-logical-address.xml": ("ok", OK08),
    "char-refs-logical-address.xml": ("ok", OK08),
    "comments-and-pis-everywhere.xml": ("ok", OK08),
    "default-namespace-envelope.xml": ("ok", OK08),
    "prefix-rebound-in-body.xml": ("ok", OK08),
    "nested-logical-address.xml": ("ok", OK08),  # only direct header children count
    "two-logical-addresses.xml": ("ok", OK08),  # the first one routes
    "two-headers.xml": ("ok", OK08),
    "logical-address-foreign-namespace.xml": ("ok", (GLT, "01", "RIVTABP21")),  # local name
    "wsa-to-bp20.xml": ("ok", (GLT, "08", "RIVTABP20")),
    "wsa-to-before-logical-address.xml": ("ok", (GLT, "01", "RIVTABP20")),
    "header-after-body.xml": ("ok", (GLT, None, None)),
    "soap12-envelope.xml": ("ok", ("VP015",)),
    "empty-body.xml": ("ok", ("VP015",)),
    "body-unqualified-element.xml": ("ok", ("VP015",)),
    "xinclude.xml": ("ok", OK08),  # XInclude is never processed
    "truncated-envelope.xml": ("malformed", ("VP015",)),
    "not-xml.xml": ("malformed", ("VP015",)),
    "whitespace-only.xml": ("empty", ("VP015",)),
    # found by fuzzing (see the findings below and docs/reliability.md)
    "large-bp20-cut-after-body-start.xml": ("malformed", (GLT, "08", "RIVTABP20")),  # streamed
    "two-headers-address-in-second.xml": ("ok", (GLT, "08", "RIVTABP20")),
    "zone-qualified-listing-date.xml": ("ok", (
        "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2", None, None)),
    "repeated-2.1-extension-element.xml": ("ok", (
        "urn:riv:supportprocess:logistics:carelisting:GetAvailableHealthcareFacilitiesResponder:2",
        None, None)),
    "personnummer-in-oid-root.xml": ("ok", (
        "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2", "08", "RIVTABP21")),
}


def padded(data: bytes, size: int = PULL_THRESHOLD + 4096) -> bytes:
    """The same document made large enough for the streaming path (a trailing comment)."""
    if data.startswith(b"\xff\xfe") or data[1:2] == b"\x00":
        enc = "utf-16-le"
    elif data.startswith(b"\xfe\xff") or data[:1] == b"\x00":
        enc = "utf-16-be"
    else:
        enc = "ascii"
    return data + ("<!--" + "x" * size + "-->").encode(enc)


# --- replaying the corpus ----------------------------------------------------------------------

@pytest.mark.parametrize("path", seed_files(),
                         ids=lambda p: p.relative_to(CORPUS.parent).as_posix()
                         if p.parent == CORPUS else p.relative_to(EXAMPLES).as_posix())
def test_corpus_replay(path: Path) -> None:
    data = path.read_bytes()
    loaded = run_loader(data)
    run_structure(data)
    report = run_validator(data)
    vp = run_vp(data)
    check_differential(data)
    if not isinstance(loaded, XmlInputError):  # and through the public switch, made large
        assert run_vp(padded(data)) == run_vp_full(data)
    want = EXPECTED.get(path.name) if path.parent == CORPUS else None
    if want is not None:
        kind = loaded.kind if isinstance(loaded, XmlInputError) else "ok"
        assert (kind, vp) == want
        if kind != "ok":
            assert not report.usable and report.rules == {kind}
    if "/valid/" in path.as_posix():
        assert report.valid and vp[0] != "VP015"


def test_corpus_holds_the_attack_classes() -> None:
    names = {p.name for p in CORPUS.glob("*.xml")}
    assert set(EXPECTED) <= names
    assert len(names) >= 40


# --- fuzzing -----------------------------------------------------------------------------------

@fuzz_settings()
@given(mutated_bytes())
def test_mutated_inputs_only_documented_errors(data: bytes) -> None:
    run_loader(data)
    run_structure(data)
    run_validator(data)
    check_differential(data)
    run_vp(data)


@fuzz_settings(2.0)
@given(envelopes())
@example(f'<s:Envelope xmlns:s="{SOAP11}"><s:Header><LogicalAddress '
         f'xmlns="urn:riv:itintegration:registry:1"><![CDATA[08]]></LogicalAddress></s:Header>'
         f'<s:Body><X xmlns="urn:x"/></s:Body></s:Envelope>'.encode("utf-16"))
def test_streaming_reader_agrees_with_full_parse(data: bytes) -> None:
    check_differential(data)
    if not isinstance(run_loader(data), XmlInputError):
        info = run_vp(data)
        assert info == run_vp_full(data)  # whichever path the size picks
        run_validator(data)
        root = parse_bytes(data, max_bytes=BIG)
        one_header = len(root.findall(f"{{{SOAP11}}}Header")) <= 1  # more: see the xfail below
        if info[0] != "VP015" and info[1] is not None and one_header:
            # RIVTABP20 ↔ 21 conversion keeps contract and address, changes only the form
            target = "RIVTABP21" if info[2] == "RIVTABP20" else "RIVTABP20"
            converted = timed(lambda: convert_address_header(data, target, BIG), "convert")
            assert run_vp(converted) == (info[0], info[1], target)


@st.composite
def entity_attacks(draw: st.DrawFn) -> bytes:
    """DOCTYPEs that would pull a secret file (or blow up) if anything resolved them."""
    secret = secret_file().as_uri()
    decl = draw(st.sampled_from([
        f'<!ENTITY e SYSTEM "{secret}">',
        f'<!ENTITY % p SYSTEM "{secret}"> %p;',
        '<!ENTITY e "&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY f "ffffffffffffffffffff">',
        f'<!ENTITY e PUBLIC "-//x//y" "{secret}">',
        '<!ENTITY e SYSTEM "http://127.0.0.1:9/x">',
    ]))
    where = draw(st.sampled_from(["address", "payload", "attribute"]))
    addr = "&e;" if where == "address" else "08"
    payload = '<X xmlns="urn:x">&e;</X>' if where == "payload" else '<X xmlns="urn:x" a="&e;"/>'
    doc = (f"<!DOCTYPE s:Envelope [{decl}]>"
           f'<s:Envelope xmlns:s="{SOAP11}"><s:Header><LogicalAddress '
           f'xmlns="urn:riv:itintegration:registry:1">{addr}</LogicalAddress></s:Header>'
           f"<s:Body>{payload}</s:Body></s:Envelope>")
    if draw(st.booleans()):
        doc += "<!--" + "p" * PULL_THRESHOLD + "-->"
    enc = draw(st.sampled_from(["utf-8", "utf-16", "utf-16-be", "utf-8-sig"]))
    return (f'<?xml version="1.0" encoding="{"UTF-16" if "16" in enc else "UTF-8"}"?>'
            + doc).encode(enc)


@fuzz_settings(0.5)
@given(entity_attacks())
def test_no_entity_is_ever_resolved(data: bytes) -> None:
    loaded = run_loader(data)
    # "malformed" when libxml2 stops at the entity reference before the DOCTYPE check (an
    # attribute's entity in UTF-16, where the byte pre-check cannot see "<!DOCTYPE")
    assert isinstance(loaded, XmlInputError) and loaded.kind in {"doctype", "malformed"}
    assert isinstance(run_structure(data), XmlInputError)
    assert run_vp(data) == ("VP015",)
    report = run_validator(data)
    assert not report.usable and report.rules == {loaded.kind}


@fuzz_settings(0.2)
@given(st.integers(200, 200_000), st.sampled_from(["header", "body", "payload"]))
@example(251, "header").via("found by CI")
@example(253, "header").via("the limit")
@example(254, "header").via("the limit")
@example(254, "body").via("the limit")
@example(255, "body").via("the limit")
def test_deep_nesting_is_refused_or_read_in_bounded_time(depth: int, where: str) -> None:
    nest = "<d>" * depth + "</d>" * depth
    head = f'<x:H xmlns:x="urn:h">{nest}</x:H>' if where == "header" else ""
    body = f'<P xmlns="urn:p">{nest}</P>' if where == "payload" else '<P xmlns="urn:p"/>'
    if where == "body":
        body += nest
    data = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Header>{head}</s:Header>'
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()
    loaded = run_loader(data)
    # libxml2's depth limit (256 elements deep), kept: Envelope, Header/Body and the wrapper
    # element count too (found by CI at depth 251 in the header, which is 254 deep: accepted)
    levels = depth + (2 if where == "body" else 3)
    assert isinstance(loaded, XmlInputError) == (levels > 256)
    run_vp(data)
    run_validator(data)


# --- the size cap --------------------------------------------------------------------------

def test_oversized_input_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = (Path(__file__).resolve().parent / "corpus" / "utf8-bom.xml").read_bytes()
    data = padded(seed, DEFAULT_MAX_BYTES)  # a well-formed envelope, over the cap
    assert len(data) > DEFAULT_MAX_BYTES

    def no_parse(*_: object, **__: object) -> None:
        raise AssertionError("an input over the size cap reached the parser")

    monkeypatch.setattr(xmlload.etree, "fromstring", no_parse)
    tracemalloc.start()
    try:
        loaded = run_loader(data, DEFAULT_MAX_BYTES)
        report = run_validator(data, DEFAULT_MAX_BYTES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(loaded, XmlInputError) and loaded.kind == "too-large"
    assert report.rules == {"too-large"} and not report.usable
    assert peak < 1 << 20, f"{peak} bytes allocated to refuse it: it was copied"
    monkeypatch.undo()
    assert run_vp_full(seed) == OK08  # the same envelope under the cap is read normally


def test_structure_check_on_an_oversized_tree_stays_bounded() -> None:
    # 60 000 header children: the structure check and the readers stay linear
    many = "".join(f'<t:T{i % 7} xmlns:t="urn:t">{i}</t:T{i % 7}>' for i in range(60_000))
    data = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Header>{many}<LogicalAddress '
            f'xmlns="urn:riv:itintegration:registry:1">08</LogicalAddress></s:Header>'
            f'<s:Body><P xmlns="{GLT}"/></s:Body></s:Envelope>').encode()
    assert not isinstance(run_structure(data), EnvelopeError | XmlInputError)
    assert run_vp(data) == (GLT, "08", "RIVTABP21")
    check_differential(data)


# --- findings: failing until fixed where the code lives ----------------------------------------

def test_profile_conversion_when_the_address_is_in_a_second_header() -> None:
    data = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Header/><s:Header><wsa:To '
            f'xmlns:wsa="http://www.w3.org/2005/08/addressing">08</wsa:To></s:Header>'
            f'<s:Body><GetListingTypes xmlns="{GLT}"/></s:Body></s:Envelope>').encode()
    assert run_vp(data) == (GLT, "08", "RIVTABP20")
    converted = convert_address_header(data, "RIVTABP21", BIG)
    assert run_vp(converted) in {("VP015",), (GLT, "08", "RIVTABP21")}


def test_profile_conversion_of_a_large_request_broken_after_the_body_start() -> None:
    pad = "x" * PULL_THRESHOLD
    data = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Header><wsa:To '
            f'xmlns:wsa="http://www.w3.org/2005/08/addressing">08</wsa:To></s:Header>'
            f'<s:Body><GetListingTypes xmlns="{GLT}"><a>{pad}</a>').encode()  # cut off here
    assert run_vp(data) == (GLT, "08", "RIVTABP20")  # routed: the stream stops at the body
    with pytest.raises(VpError) as err:
        convert_address_header(data, "RIVTABP21", BIG)  # to a RIVTABP21 producer
    assert err.value.code == "VP015"


def test_vp_read_envelope_honours_its_size_cap() -> None:
    data = padded((CORPUS / "utf8-bom.xml").read_bytes(), 40_000)
    assert run_vp(data, max_bytes=20_000) == ("VP015",)


@pytest.mark.parametrize("name", ["doctype-text-in-comment.xml", "entity-text-in-cdata.xml"])
def test_same_verdict_for_a_small_and_a_large_envelope(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    assert run_vp(data) == run_vp(padded(data))


def test_validator_flags_a_header_the_platform_routes_differently() -> None:
    data = (CORPUS / "wsa-to-before-logical-address.xml").read_bytes()
    assert run_vp(data)[1] == "01"
    assert "logical-address" in run_validator(data).rules
