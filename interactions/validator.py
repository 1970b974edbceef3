"""``listning validate``: check messages of the release against the contract and its rules.

A message is a SOAP 1.1 envelope or a bare payload (its root is a contract's request or
response element). Checks, in order: the hardened parse (size cap, no DTD or entities — a
failure here makes the input *unusable*), the SOAP 1.1 envelope, the LogicalAddress header on
requests, that the body element belongs to a contract of the release, the XSDs (one compiled
schema for everything, see ``validation``), then the rules the XSDs cannot express
(identifiers, code systems, actor types, result texts). Every problem carries a short rule id.

Problem messages never repeat a personal identity number: reports end up in CI logs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lxml import etree

from interactions import identifiers as ids
from interactions.contracts import (
    DOMAIN_EXT_NS,
    DOMAIN_NS,
    REGISTRY_NS,
    SOAP11_ENV,
    Contract,
    all_contracts,
    by_element,
)
from interactions.validation import (
    EnvelopeError,
    read_envelope,
    validate_element,
)
from interactions.xmlload import DEFAULT_MAX_BYTES, XmlInputError, parse_bytes

WSA_NS = "http://www.w3.org/2005/08/addressing"
MONITORING_NS = "urn:riv:itintegration:monitoring:1"

# Rule id -> what it checks. Rules marked unusable stop everything after them (exit 2).
RULES: dict[str, str] = {
    "unreadable": "the file cannot be read (missing, a directory, no permission) [unusable]",
    "empty": "the input is empty [unusable]",
    "too-large": "the input is larger than --max-bytes [unusable]",
    "doctype": "a DOCTYPE or ENTITY declaration (forbidden in SOAP; XXE) [unusable]",
    "malformed": "not well-formed XML [unusable]",
    "envelope": "not a SOAP 1.1 envelope (SOAP 1.2, extra elements, empty or crowded Body)",
    "unknown-contract": "the body element is no request or response of this release",
    "logical-address": "a request without a usable LogicalAddress header, or one the platform "
                       "does not route on (an earlier wsa:To)",
    "schema": "the header or body breaks the XSDs",
    "personnummer": "a personnummer/samordningsnummer with a bad form, date or check digit",
    "oid": "an identifier with the wrong root OID for what it identifies",
    "county-code": "a county (KV län) without one of the 21 two-digit codes",
    "hsa-id": "an HSA-id whose organisation number has a wrong check digit",
    "listing-type": "a listing type that misuses the national code system",
    "actor-type": "CreateListing by an actor other than CITIZEN or GUARDIAN",
    "result-text": "an ERROR or INFO resultCode without resultText",
    "date-order": "a listing whose validToDate is before its validFromDate",
    "service-contract": "PingForConfiguration for a namespace that is no contract of the release",
    "date-time": "a pingDateTime that is not a real date and time",
    "extension": "a 2.1 extension element repeated under one parent (the XSDs' lax wildcard "
                 "accepts it; the platform's models refuse it)",
}
UNUSABLE_RULES = frozenset({"unreadable", "empty", "too-large", "doctype", "malformed"})

_COUNTY_ELEMENTS = frozenset({"homeCounty", "newListingCounty", "listingCounties",
                              "homeCountyCode"})
_CV_LISTING_TYPES = frozenset({"listingType", "listingTypes", "supportedListingTypes"})
_HSA_TEXT_ELEMENTS = frozenset({"healthcareFacilityHSAId", "healthcarePersonnel",
                                "healthcareFacilities"})
_HSA_ID_PARENTS = frozenset({"healthcareFacilities", "healthcareFacility",
                             "healthcarePersonnel"})
_CREATE_ACTORS = frozenset({"CITIZEN", "GUARDIAN"})
_PERSON_ACTORS = _CREATE_ACTORS
_ACTOR_ENUM = frozenset({"CITIZEN", "GUARDIAN", "REGION", "PRIVATE_CAREGIVER",
                         "SELF_OWNED_CAREGIVER", "HEALTHCARE_ADVISER"})
_TEXT_REQUIRED = "INFO"  # plus every code starting with ERROR


# A personal identity number as it may appear in a value we quote: 10 or 12 digits, optionally
# with - or + before the last four. Not inside a longer word, so the organisation number of an
# HSA-id ("SE2321000073-…") and longer digit runs (timestamps) stay readable.
_PERSONAL_ID_IN_TEXT = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}(?![0-9A-Za-z])")
_WITHHELD = "[number withheld]"


def redact(message: str) -> str:
    """The message with every personnummer-shaped number masked: reports end up in CI logs, and
    a personnummer put in the wrong field (root and extension swapped) is the classic mistake."""
    return _PERSONAL_ID_IN_TEXT.sub(_WITHHELD, message)


@dataclass(frozen=True)
class Problem:
    rule: str
    line: int | None
    message: str

    def __post_init__(self) -> None:
        # Central, so no rule (ours or libxml2's schema texts) can repeat a personnummer.
        object.__setattr__(self, "message", redact(self.message))

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "line": self.line, "message": self.message}


@dataclass
class Report:
    """The verdict on one message."""

    source: str
    usable: bool = True
    problems: list[Problem] = field(default_factory=list)
    contract: str | None = None
    is_response: bool | None = None
    envelope: bool | None = None  # True: SOAP envelope, False: bare payload, None: not known

    @property
    def valid(self) -> bool:
        return self.usable and not self.problems

    @property
    def verdict(self) -> str:
        return "unusable" if not self.usable else "valid" if not self.problems else "invalid"

    @property
    def message_kind(self) -> str | None:
        return None if self.is_response is None else "response" if self.is_response else "request"

    @property
    def rules(self) -> set[str]:
        return {p.rule for p in self.problems}

    def add(self, rule: str, element: etree._Element | None, message: str) -> None:
        self.problems.append(Problem(rule, None if element is None else element.sourceline,
                                     message))

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "usable": self.usable,
            "valid": self.valid,
            "contract": self.contract,
            "kind": self.message_kind,
            "envelope": self.envelope,
            "problems": [p.to_dict() for p in self.problems],
        }


# --- entry points --------------------------------------------------------------------------

def validate_bytes(data: bytes, *, source: str = "<bytes>",
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Report:
    """Validate one message given as bytes."""
    try:
        root = parse_bytes(data, max_bytes=max_bytes)
    except XmlInputError as exc:
        return Report(source, usable=False, problems=[Problem(exc.kind, exc.line, exc.message)])
    return validate_root(root, source=source)


def validate_file(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Report:
    """Validate one message file (its size is checked before it is read)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            return _unusable(str(p), "unreadable", "is a directory, not a message file")
        if size > max_bytes:
            return _unusable(str(p), "too-large",
                             f"the file is {size} bytes; the limit is {max_bytes} bytes")
        data = p.read_bytes()
    except FileNotFoundError:
        return _unusable(str(p), "unreadable", "no such file")
    except OSError as exc:
        return _unusable(str(p), "unreadable", f"cannot read the file: {exc.strerror}")
    return validate_bytes(data, source=str(p), max_bytes=max_bytes)


def validate_root(root: etree._Element, *, source: str = "<element>") -> Report:
    """Validate an already parsed (with ``xmlload``) envelope or bare payload."""
    report = Report(source)
    if etree.QName(root).localname == "Envelope":  # SOAP 1.1, 1.2 or a stray namespace
        report.envelope = True
        try:
            env = read_envelope(root)
        except EnvelopeError as exc:
            report.problems.append(Problem("envelope", exc.line, exc.message))
            return report
        payload, header = env.payload, env.header
    else:
        report.envelope = False
        payload, header = root, None

    found = by_element(payload.tag)
    if found is None:
        report.add("unknown-contract", payload, _unknown_element(payload, report.envelope))
        return report
    contract, is_response = found
    report.contract, report.is_response = contract.name, is_response

    if report.envelope and not is_response:
        _check_logical_address(report, root, header, contract)
    if header is not None:
        for h in header:
            if isinstance(h.tag, str) and etree.QName(h).namespace == REGISTRY_NS:
                _schema(report, h, contract)
    _schema(report, payload, contract)
    _rules(report, payload, contract, is_response)
    return report


def _unusable(source: str, rule: str, message: str) -> Report:
    return Report(source, usable=False, problems=[Problem(rule, None, message)])


# --- envelope, header, contract ------------------------------------------------------------

def _unknown_element(payload: etree._Element, in_envelope: bool | None) -> str:
    qn = etree.QName(payload)
    if qn.namespace == SOAP11_ENV and qn.localname == "Fault":
        return ("the body is a SOAP fault: a technical error reply (the platform's VP codes or a "
                "producer failure), not a request or response of a contract")
    known = {c.namespace: c for c in all_contracts().values()}
    if qn.namespace in known:
        c = known[qn.namespace]
        return (f"contract {c.name} has no element {qn.localname}; "
                f"its elements are {c.name} and {c.name}Response")
    where = "the body element" if in_envelope else "the root element"
    hint = ""
    if qn.namespace and qn.namespace.startswith("urn:riv:"):
        same_name = [c for c in known.values() if qn.localname in (c.name, f"{c.name}Response")]
        if same_name:
            hint = f"; {qn.localname} belongs to namespace {same_name[0].namespace}"
    if not in_envelope:
        return (f"{where} {qn.localname} (namespace {qn.namespace or 'none'}) is neither a "
                f"SOAP 1.1 envelope nor a request or response of this release{hint}")
    return (f"{where} {qn.localname} is in namespace {qn.namespace or 'none'}, which is no "
            f"contract of this release{hint}")


def _check_logical_address(report: Report, root: etree._Element,
                           header: etree._Element | None, contract: Contract) -> None:
    la = f"{{{REGISTRY_NS}}}LogicalAddress"
    if header is None:
        report.add("logical-address", root,
                   f"the request has no soap:Header; every RIV-TA BP 2.1 request carries the "
                   f"{la} header")
        return
    found = header.findall(la)
    if not found:
        others = [etree.QName(h) for h in header if isinstance(h.tag, str)]
        wsa = next((q for q in others if q.namespace == WSA_NS and q.localname == "To"), None)
        misplaced = next((q for q in others if q.localname == "LogicalAddress"), None)
        if wsa is not None:
            msg = f"wsa:To is the RIV-TA BP 2.0 header; BP 2.1 requests carry {la}"
        elif misplaced is not None:
            msg = (f"LogicalAddress is in namespace {misplaced.namespace or 'none'}; "
                   f"it belongs in {REGISTRY_NS}")
        else:
            msg = f"the request has no {la} header"
        report.add("logical-address", header, msg)
        return
    # The platform routes on the first direct header child named LogicalAddress or To (any
    # namespace, as BP 2.0 and 2.1 both pass it): one before ours means it routes elsewhere.
    first = next((h for h in header if isinstance(h.tag, str)
                  and etree.QName(h).localname in ("LogicalAddress", "To")), None)
    if first is not None and first is not found[0]:
        q = etree.QName(first)
        report.add("logical-address", first,
                   f"{q.localname} (namespace {q.namespace or 'none'}) comes before the "
                   f"{la} header; the platform routes on the first of them, so remove it")
    if len(found) > 1:
        report.add("logical-address", found[1], "the request has more than one LogicalAddress")
    value = (found[0].text or "").strip()
    if not value:
        report.add("logical-address", found[0], "the LogicalAddress header is empty")
    elif contract.in_domain and not ids.is_county_code(value):
        report.add("logical-address", found[0],
                   f"logical address {value!r} is not a county code; in the carelisting domain "
                   f"it is the two-digit county code of the region that must answer "
                   f"({', '.join(ids.counties())})")


_NS_IN_MESSAGE = re.compile(r"(?<!##other)\{([^}]*)\}")  # "##other{ns}*" must stay whole


def _schema(report: Report, element: etree._Element, contract: Contract) -> None:
    prefixes = {contract.namespace: "", DOMAIN_NS: "core:", DOMAIN_EXT_NS: "ext:",
                REGISTRY_NS: "add:", MONITORING_NS: "core:"}

    def short(m: re.Match[str]) -> str:
        # The prefixes the examples use; any other namespace stays spelt out.
        return prefixes.get(m[1], m[0])

    for p in validate_element(element):
        report.problems.append(Problem("schema", p.line, _NS_IN_MESSAGE.sub(short, p.message)))


# --- rules the XSDs cannot express ---------------------------------------------------------

def _children(parent: etree._Element, namespaces: tuple[str, ...]) -> Iterator[etree._Element]:
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).namespace in namespaces:
            yield child


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _child_text(el: etree._Element, local: str) -> tuple[etree._Element | None, str | None]:
    for child in _children(el, (DOMAIN_NS,)):
        if _local(child) == local:
            return child, (child.text or "").strip()
    return None, None


def _rules(report: Report, payload: etree._Element, contract: Contract,
           is_response: bool) -> None:
    ns = (contract.namespace,)
    top = list(_children(payload, ns))
    if contract.in_domain:
        for el in top:
            name = _local(el)
            if name == "personId":
                _check_person(report, el, name)
            elif name == "actor":
                _check_actor(report, el, contract)
            elif name in _COUNTY_ELEMENTS:
                _check_county(report, el, name)
        for el in payload.iter():
            if not isinstance(el.tag, str):
                continue
            qn = etree.QName(el)
            if qn.namespace not in (contract.namespace, DOMAIN_NS):
                continue
            if qn.localname in _CV_LISTING_TYPES:
                _check_listing_type(report, el, qn.localname)
            elif qn.localname in _HSA_TEXT_ELEMENTS and len(el) == 0 and el.text:
                _check_hsa(report, el, qn.localname)
            elif (qn.localname == "id" and el.getparent() is not None
                  and _local(el.getparent()) in _HSA_ID_PARENTS):
                _check_hsa(report, el, f"{_local(el.getparent())}/id")
            elif qn.localname == "validToDate":
                _check_date_order(report, el)
    _check_extensions(report, payload)
    if is_response:
        _check_result(report, top)
    if contract.name == "PingForConfiguration":
        _check_ping(report, top, is_response)


def _check_extensions(report: Report, payload: etree._Element) -> None:
    """Each 2.1 extension element at most once per parent: the 2.0 XSDs take them through a lax
    ##other wildcard (any number), the models have one typed field each and refuse a repeat."""
    for parent in payload.iter():
        seen: set[str] = set()
        for child in parent:
            if not isinstance(child.tag, str) or etree.QName(child).namespace != DOMAIN_EXT_NS:
                continue
            if child.tag in seen:
                report.add("extension", child,
                           f"ext:{_local(child)} occurs more than once in {_local(parent)}; "
                           f"a 2.1 extension element may occur once")
            seen.add(child.tag)


def _check_person(report: Report, el: etree._Element, what: str) -> None:
    root_el, root = _child_text(el, "root")
    _, ext = _child_text(el, "extension")
    if root_el is None:
        return  # the schema reports the missing root
    if root not in ids.PERSON_OIDS:
        report.add("oid", root_el,
                   f"{what}: root {root!r} is not a person's OID; use "
                   f"{ids.PERSONNUMMER_OID} (personnummer) or "
                   f"{ids.SAMORDNINGSNUMMER_OID} (samordningsnummer)")
        return
    reason = ids.check_personal_id(ext, root)
    if reason:
        report.add("personnummer", el, f"{what}: {reason}")


def _check_actor(report: Report, el: etree._Element, contract: Contract) -> None:
    type_el, actor_type = _child_text(el, "actorType")
    id_el = next((c for c in _children(el, (DOMAIN_NS,)) if _local(c) == "actorId"), None)
    if contract.name == "CreateListing" and actor_type in _ACTOR_ENUM \
            and actor_type not in _CREATE_ACTORS:
        report.add("actor-type", type_el,
                   f"actor type {actor_type} may not create a listing; "
                   f"CreateListing takes CITIZEN or GUARDIAN only")
    if id_el is None:
        return
    _, root = _child_text(id_el, "root")
    if actor_type in _PERSON_ACTORS or root in ids.PERSON_OIDS:
        _check_person(report, id_el, "actor/actorId")
    elif root == ids.HSA_ID_OID:
        _, ext = _child_text(id_el, "extension")
        reason = ids.check_hsa_id(ext)
        if reason:
            report.add("hsa-id", id_el, f"actor/actorId: {reason}")


def _check_county(report: Report, el: etree._Element, what: str) -> None:
    root_el, root = _child_text(el, "root")
    ext_el, ext = _child_text(el, "extension")
    if root_el is None:
        return
    if root != ids.COUNTY_OID:
        report.add("oid", root_el,
                   f"{what}: root {root!r} is not the county (KV län) OID {ids.COUNTY_OID}")
    elif not ext:
        report.add("county-code", el,
                   f"{what}: the county code (extension) is missing; a county is identified "
                   f"by its two-digit code")
    elif not ids.is_county_code(ext):
        report.add("county-code", ext_el,
                   f"{what}: {ext!r} is not a county code; the codes are "
                   f"{', '.join(ids.counties())}")


def _check_hsa(report: Report, el: etree._Element, what: str) -> None:
    value = (el.text or "").strip()
    # The form is the schema's (HSAIdType); only the organisation number's check digit is ours.
    if not ids.HSA_ID_PATTERN.fullmatch(value) or len(value) > ids.HSA_ID_MAX_LENGTH:
        return
    reason = ids.check_hsa_id(value)
    if reason:
        report.add("hsa-id", el, f"{what}: {reason}")


def _check_listing_type(report: Report, el: etree._Element, what: str) -> None:
    _, code = _child_text(el, "code")
    system_el, system = _child_text(el, "codeSystem")
    if code is None or system is None:
        return
    if system == ids.LISTING_TYPE_CODE_SYSTEM and code not in ids.NATIONAL_LISTING_TYPES:
        report.add("listing-type", el,
                   f"{what}: code {code!r} is not in the national listing-type code system "
                   f"{ids.LISTING_TYPE_CODE_SYSTEM} (its code is {ids.LISTING_TYPE_PV}); a "
                   f"regional type needs the region's own code system")
    elif code == ids.LISTING_TYPE_PV and system != ids.LISTING_TYPE_CODE_SYSTEM:
        report.add("listing-type", system_el,
                   f"{what}: {ids.LISTING_TYPE_PV} is the national code; its codeSystem is "
                   f"{ids.LISTING_TYPE_CODE_SYSTEM}, not {system!r}")


def _check_date_order(report: Report, to_el: etree._Element) -> None:
    parent = to_el.getparent()
    _, start = _child_text(parent, "validFromDate") if parent is not None else (None, None)
    end = (to_el.text or "").strip()
    try:
        if start and datetime.fromisoformat(end) < datetime.fromisoformat(start):
            report.add("date-order", to_el, "validToDate is before validFromDate")
    except (ValueError, TypeError):  # TypeError: one date with a zone, one without
        pass  # the schema reports dates it cannot read


def _check_result(report: Report, top: Iterable[etree._Element]) -> None:
    els = {_local(e): e for e in top}
    code_el = els.get("resultCode")
    if code_el is None:
        return
    code = (code_el.text or "").strip()
    text = (els["resultText"].text or "").strip() if "resultText" in els else ""
    if (code == _TEXT_REQUIRED or code.startswith("ERROR")) and not text:
        report.add("result-text", code_el,
                   f"resultCode {code} needs a resultText the consumer can show the resident")


def _check_ping(report: Report, top: Iterable[etree._Element], is_response: bool) -> None:
    for el in top:
        name, value = _local(el), (el.text or "").strip()
        if not is_response and name == "serviceContractNamespace":
            if value not in {c.namespace for c in all_contracts().values()}:
                report.add("service-contract", el,
                           f"{value!r} is not the namespace of a contract of this release")
        elif is_response and name == "pingDateTime" and re.fullmatch(r"[0-9]{14}", value):
            try:
                datetime.strptime(value, "%Y%m%d%H%M%S")
            except ValueError:
                report.add("date-time", el,
                           f"pingDateTime {value} is not a real date and time (YYYYMMDDhhmmss)")


# --- command line --------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="message files (SOAP envelopes or bare payloads); a directory means "
                             "every *.xml under it; - reads standard input")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of reports instead of readable lines")
    parser.add_argument("--max-bytes", type=_positive_int, default=DEFAULT_MAX_BYTES,
                        metavar="N", help="refuse larger inputs as unusable "
                                          f"(default {DEFAULT_MAX_BYTES})")
    parser.epilog = "rules: " + ", ".join(RULES)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return n


def _validate_args(args: list[str], max_bytes: int) -> Iterator[Report]:
    for a in args:
        p = Path(a)
        if a == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)  # one byte more tells "too large"
            yield validate_bytes(data, source="<stdin>", max_bytes=max_bytes)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*.xml") if f.is_file())
            if not found:
                yield _unusable(a, "unreadable", "the directory holds no *.xml files")
            for f in found:
                yield validate_file(f, max_bytes=max_bytes)
        else:
            yield validate_file(p, max_bytes=max_bytes)


def format_report(report: Report) -> list[str]:
    """Readable lines: one per problem (``FILE:LINE: [rule] message``) and the verdict."""
    lines = []
    for p in report.problems:
        where = f"{report.source}:{p.line}" if p.line else report.source
        lines.append(f"{where}: [{p.rule}] {p.message}")
    what = " ".join(x for x in (report.contract, report.message_kind) if x)
    if report.verdict == "valid":
        lines.append(f"{report.source}: valid ({what})")
    elif report.verdict == "invalid":
        n = len(report.problems)
        lines.append(f"{report.source}: invalid ({what + ', ' if what else ''}"
                     f"{n} problem{'s' if n != 1 else ''})")
    else:
        lines.append(f"{report.source}: unusable")
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate every FILE; exit 0 if all are valid, 1 if any is invalid, 2 if any is unusable."""
    reports = list(_validate_args(args.files, args.max_bytes))
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for r in reports:
            for line in format_report(r):
                print(line)
        if len(reports) > 1:
            counts = {v: sum(r.verdict == v for r in reports)
                      for v in ("valid", "invalid", "unusable")}
            print(f"{len(reports)} files: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    if any(not r.usable for r in reports):
        return 2
    return 1 if any(not r.valid for r in reports) else 0
