"""Fuzzing the message models (``from_element``) and the validator's rules with
structure-aware mutations of schema-valid payloads.

Each mutant is a valid example payload with a few edits a broken or hostile region system
could make: an element removed, repeated, moved, renamed or re-namespaced, siblings swapped,
odd text (zone-qualified times, huge numbers, personnummer, NaN), ``xsi:nil``, foreign
elements, mixed content. Properties: ``from_element`` gives a model or a MessageError, never
anything else; a mutant the XSDs accept is read by the model and written back schema-valid;
the validator returns a Report and never repeats a personnummer in a message.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from security_support import (
    CORPUS,
    EXAMPLES,
    SOAP11,
    TEST_TIMEOUT,
    fuzz_settings,
    run_validator,
    timed,
)

from interactions.contracts import DOMAIN_EXT_NS, DOMAIN_NS, by_element
from interactions.models import MessageError, RivComplexModel, from_element, to_element
from interactions.validation import read_envelope, validate_element
from interactions.validator import Report
from interactions.xmlload import parse_file

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
PERSONNUMMER = "191212121212"  # Tolvan Tolvansson, the well-known test number


def _valid_envelopes() -> list[etree._Element]:
    out = []
    for path in sorted(EXAMPLES.glob("*/valid/*.xml")):
        out.append(parse_file(path))
    return out


ENVELOPES = _valid_envelopes()
TEXTS = ["", " ", "x", "-1", "0", "007", "99999999999999999999999999", "1e3", "true", "TRUE",
         "1", "NaN", "INF", "2024-02-30T00:00:00", "2024-01-01T00:00:00+01:00",
         "2024-01-01T00:00:00Z", "2024-01-01", "24:00:00", "ÅÄÖ åäö", "\u200b", "a" * 300,
         PERSONNUMMER, "19121212-1212", "SE2321000016-1A2B", "08", "CITIZEN", "OK", "ERROR",
         "INFO", "1.2.752.129.2.1.3.1", "1.2.752.129.2.2.1.18", "&", "<", "\t\n"]
NAMESPACES = [DOMAIN_NS, DOMAIN_EXT_NS, "urn:example:foreign", ""]


def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str)]


@st.composite
def mutants(draw: st.DrawFn) -> etree._Element:
    """An envelope whose payload got 1–4 structure-aware edits."""
    env = copy.deepcopy(draw(st.sampled_from(ENVELOPES)))
    payload = read_envelope(env).payload
    for _ in range(draw(st.integers(1, 4))):
        els = _elements(payload)
        inner = els[1:]
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "move", "rename", "renamespace",
                                   "text", "nil", "foreign", "mixed", "attribute", "comment"]))
        target = draw(st.sampled_from(inner)) if inner else payload
        parent = target.getparent()
        if op == "delete" and inner and parent is not None:
            parent.remove(target)
        elif op == "duplicate" and inner and parent is not None:
            target.addnext(copy.deepcopy(target))
        elif op == "swap" and inner and parent is not None and target.getnext() is not None:
            nxt = target.getnext()
            parent.remove(nxt)
            target.addprevious(nxt)
        elif op == "move" and inner and parent is not None:
            dest = draw(st.sampled_from(els))
            if dest is not target and target not in dest.iterancestors():
                parent.remove(target)
                dest.insert(draw(st.integers(0, len(dest))), target)
        elif op == "rename" and inner:
            other = etree.QName(draw(st.sampled_from(els))).localname
            target.tag = etree.QName(etree.QName(target).namespace, other).text
        elif op == "renamespace" and inner:
            ns = draw(st.sampled_from(NAMESPACES))
            local = etree.QName(target).localname
            target.tag = f"{{{ns}}}{local}" if ns else local
        elif op == "text":
            leaves = [e for e in els if len(e) == 0] or els
            draw(st.sampled_from(leaves)).text = draw(st.sampled_from(TEXTS))
        elif op == "nil":
            target.set(XSI_NIL, draw(st.sampled_from(["true", "1", "false", "maybe"])))
        elif op == "foreign":
            ns = draw(st.sampled_from([*NAMESPACES[:3], etree.QName(payload).namespace]))
            extra = etree.SubElement(draw(st.sampled_from(els)),
                                     f"{{{ns}}}{draw(st.sampled_from(['x', 'code', 'id']))}")
            extra.text = draw(st.sampled_from(TEXTS))
        elif op == "mixed":
            leaf = draw(st.sampled_from(els))
            etree.SubElement(leaf, f"{{{DOMAIN_NS}}}root").text = "1"
        elif op == "attribute":
            target.set(draw(st.sampled_from(["a", "{urn:x}b", "id"])), draw(st.sampled_from(TEXTS)))
        else:
            target.append(etree.Comment(" c ")) if draw(st.booleans()) else \
                target.append(etree.ProcessingInstruction("pi", "x"))
    return env


def _repeated_extension(payload: etree._Element) -> bool:
    """A 2.1 extension element twice under one parent: the 2.0 XSD's lax ##other wildcard
    accepts it, the models (one typed field each) refuse it."""
    for el in payload.iter():
        names = [c.tag for c in el if isinstance(c.tag, str)
                 and etree.QName(c).namespace == DOMAIN_EXT_NS]
        if len(names) != len(set(names)):
            return True
    return False


@fuzz_settings(1.5)
@given(mutants())
def test_models_read_mutants_or_raise_message_error(env: etree._Element) -> None:
    payload = read_envelope(env).payload
    try:
        model = timed(lambda: from_element(payload), "from_element")
    except MessageError as exc:
        assert exc.faultcode == "Client.ValidationError"  # becomes a SOAP Client fault
        model = None
    schema_ok = validate_element(payload) == []
    if schema_ok and not _repeated_extension(payload):  # repeated: see the xfail below
        # what the XSDs accept, the model must read, and write back schema-valid
        assert isinstance(model, RivComplexModel), "a schema-valid payload was refused"
        out = to_element(model)
        assert validate_element(out) == [], etree.tostring(out)
        assert type(from_element(out)) is type(model)


@fuzz_settings(1.5)
@given(mutants())
def test_validator_reports_on_mutants_without_leaking_personnummer(env: etree._Element):
    data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    report = run_validator(data)
    assert report.usable and report.envelope is True
    for p in report.problems:
        # libxml2's own texts quote values; ours must not (known leaks: see the xfail below)
        if p.rule != "schema" and p.rule not in KNOWN_LEAKY_RULES:
            assert PERSONNUMMER not in p.message, p


# A personnummer put in the wrong field (root and extension swapped is the classic mistake)
# comes back verbatim in these rules' messages, which end up in CI logs.
LEAKS = {
    "oid": ("GetListing/valid/request-citizen.xml", rb"(<personId>\s*<core:root>)[^<]*"),
    "logical-address": ("GetListing/valid/request-citizen.xml", rb"(<add:LogicalAddress>)[^<]*"),
    "county-code": ("GetListingCounty/valid/response-ok-one-county.xml",
                    rb"(<core:extension>)[0-9][0-9](?=<)"),
    "service-contract": ("PingForConfiguration/valid/request-get-listing.xml",
                         rb"(<serviceContractNamespace>)[^<]*"),
    "listing-type": ("CreateListing/valid/request-citizen-home-region.xml",
                     rb"(<core:code>)[^<]*"),
}
KNOWN_LEAKY_RULES = frozenset(LEAKS)


def leak_case(rule: str) -> Report:
    name, pattern = LEAKS[rule]
    data = (EXAMPLES / name).read_bytes()
    mutant, n = re.subn(pattern, rb"\g<1>" + PERSONNUMMER.encode(), data, count=1)
    assert n == 1, f"{name} no longer has the element this case edits"
    return run_validator(mutant)


@pytest.mark.parametrize("rule", sorted(LEAKS))
def test_a_misplaced_personnummer_is_caught(rule: str) -> None:
    assert rule in leak_case(rule).rules


@pytest.mark.parametrize("rule", sorted(LEAKS))
def test_validator_never_repeats_a_misplaced_personnummer(rule: str) -> None:
    report = leak_case(rule)
    assert not [p.message for p in report.problems if PERSONNUMMER in p.message]


def test_validator_flags_what_the_models_refuse() -> None:
    path = CORPUS / "repeated-2.1-extension-element.xml"
    with pytest.raises(MessageError, match="occurs more than once"):
        from_element(read_envelope(parse_file(path)).payload)
    assert not run_validator(path.read_bytes()).valid


def test_validator_survives_a_zone_qualified_listing_date() -> None:
    """Regression: a validFromDate with a UTC offset made the date-order rule raise
    TypeError (naive vs aware datetime) out of validate_bytes instead of reporting."""
    path = EXAMPLES / "GetListing" / "valid" / "response-info-ending.xml"
    data = path.read_bytes()
    start = data.index(b"<core:validFromDate>") + len(b"<core:validFromDate>")
    end = data.index(b"<", start)
    mutant = data[:start] + b"2024-01-01T00:00:00+01:00" + data[end:]
    report = run_validator(mutant)
    assert report.verdict == "invalid" and report.rules == {"schema"}


def test_every_contract_is_in_the_mutation_seeds() -> None:
    contracts = {by_element(read_envelope(e).payload.tag)[0].name for e in ENVELOPES}
    names = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert contracts == names
    assert Path(EXAMPLES).is_dir() and SOAP11
