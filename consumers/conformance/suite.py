"""The conformance suite's machinery: cases, the run, and what a response must look like.

A case is a function registered with ``@case(contract, name)``; cases run in the order they
are registered, against one producer, and build on each other's state (the resident listed by
one case is the one the next case reads). A case passes by returning (a short note), fails by
raising ``CaseFailed`` and is skipped (missing test data, ``--only``) by raising ``CaseSkipped``.
Every exchange a case makes is kept for the reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from consumers.conformance.testdata import TestData, TestPerson
from consumers.conformance.transport import Exchange, Transport, envelope, model_envelope
from interactions import identifiers as ids
from interactions.contracts import SOAP11_ENV, Contract, all_contracts
from interactions.models import message_class, type_class
from interactions.validator import validate_root
from interactions.xmlload import XmlInputError, parse_bytes

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class CaseFailed(AssertionError):
    """The producer did not behave as the contract says."""


class CaseSkipped(Exception):
    """The case cannot run here (test data lacks what it needs, or --only)."""


@dataclass
class CaseResult:
    name: str
    contract: str
    verdict: str
    message: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    contract: str
    name: str
    func: Callable[[Suite], str | None]
    needs: tuple[str, ...] = ()  # names of earlier cases whose state this one uses


CASES: list[Case] = []


def case(contract: str, name: str, *, needs: tuple[str, ...] = ()) -> Callable[
        [Callable[[Suite], str | None]], Callable[[Suite], str | None]]:
    def register(func: Callable[[Suite], str | None]) -> Callable[[Suite], str | None]:
        CASES.append(Case(contract, name, func, needs))
        return func
    return register


# --- reading responses -----------------------------------------------------------------------

@dataclass
class Answer:
    exchange: Exchange
    root: etree._Element | None = None
    payload: etree._Element | None = None
    fault: str | None = None  # "faultcode: faultstring" when the body is a SOAP fault
    problem: str | None = None  # why this is not a readable SOAP 1.1 message at all


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and _local(c) == name]


def child_text(el: etree._Element, name: str) -> str | None:
    found = children(el, name)
    return (found[0].text or "").strip() if found else None


def read_answer(ex: Exchange) -> Answer:
    a = Answer(ex)
    if ex.error:
        a.problem = ex.error
        return a
    ctype = ex.content_type.lower()
    if "html" in ctype or ex.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        a.problem = f"an HTML page (HTTP {ex.status}, {ex.content_type or 'no content type'}), " \
                    "not a SOAP message"
        return a
    try:
        root = parse_bytes(ex.body)
    except XmlInputError as exc:
        a.problem = f"HTTP {ex.status}, {ex.content_type or 'no content type'}: not a SOAP " \
                    f"message ({exc})"
        return a
    a.root = root
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        a.problem = f"HTTP {ex.status}: the answer is not a SOAP 1.1 envelope (root {root.tag})"
        return a
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    payload = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if not payload:
        a.problem = f"HTTP {ex.status}: the SOAP envelope has no body element"
        return a
    a.payload = payload[0]
    if a.payload.tag == f"{{{SOAP11_ENV}}}Fault":
        a.fault = f"{child_text(a.payload, 'faultcode')}: {child_text(a.payload, 'faultstring')}"
    if "xml" not in ctype:
        a.problem = f"HTTP {ex.status}: content type {ex.content_type or '(none)'!r}; SOAP 1.1 " \
                    "answers are text/xml"
    return a


# --- the suite ---------------------------------------------------------------------------------

class Suite:
    """One run against one producer: the transport, the test data and the cases' shared state."""

    def __init__(self, transport: Transport, data: TestData, *, logical_address: str,
                 sla_calls: int = 100, via_platform: bool = False) -> None:
        self.transport = transport
        self.data = data
        self.logical_address = logical_address
        self.sla_calls = sla_calls
        self.via_platform = via_platform
        self.contracts: dict[str, Contract] = all_contracts()
        self.state: dict[str, Any] = {}
        self.results: list[CaseResult] = []
        self._current: CaseResult | None = None
        self.all_exchanges: list[Exchange] = []

    # -- values ---------------------------------------------------------------------------
    def person(self, p: TestPerson | str) -> Any:
        pid = p.id if isinstance(p, TestPerson) else p
        return type_class("IIType")(root=ids.personal_id_root(pid), extension=pid)

    def county(self, code: str) -> Any:
        return type_class("IIType")(root=ids.COUNTY_OID, extension=code)

    def citizen(self, p: TestPerson) -> Any:
        return type_class("ActorType")(actorId=self.person(p), actorType="CITIZEN")

    def region_actor(self) -> Any:
        hsa = self.data.hsa_id or f"{ids.region_hsa_prefix(self.data.county)}-LIST"
        return type_class("ActorType")(
            actorId=type_class("IIType")(root=ids.HSA_ID_OID, extension=hsa), actorType="REGION")

    def pv(self) -> Any:
        return type_class("CVType")(code=ids.LISTING_TYPE_PV,
                                    codeSystem=ids.LISTING_TYPE_CODE_SYSTEM,
                                    displayName=ids.LISTING_TYPE_PV_NAME)

    def other_county(self) -> str:
        o = self.data.other_resident
        if o is not None and o.county != self.data.county:
            return o.county
        return next(c for c in ("01", "08", "03", "12") if c != self.data.county)

    def need(self, *what: str) -> None:
        missing = [w for w in what if getattr(self.data, w, None) in (None, (), "")]
        if missing:
            raise CaseSkipped(f"the test data has no {', '.join(missing)}")

    # -- calls --------------------------------------------------------------------------------
    def record(self, ex: Exchange) -> Exchange:
        self.all_exchanges.append(ex)
        if self._current is not None:
            self._current.exchanges.append(ex)
        return ex

    def post(self, contract: str, data: bytes, headers: dict[str, str] | None = None) -> Exchange:
        return self.record(self.transport.post(self.contracts[contract], data, headers=headers))

    def send(self, contract: str, **fields: Any) -> Answer:
        msg = message_class(contract)(**fields)
        return read_answer(self.post(contract, model_envelope(msg, self.logical_address)))

    def call(self, contract: str, **fields: Any) -> etree._Element:
        """Send a request and demand a schema-valid SOAP 1.1 response of the contract."""
        return self.expect_response(contract, self.send(contract, **fields))

    def expect_response(self, contract: str, a: Answer) -> etree._Element:
        where = f"{contract}"
        if a.problem and a.payload is None:
            raise CaseFailed(f"{where}: {a.problem}")
        if a.fault:
            raise CaseFailed(f"{where}: a SOAP fault instead of a response ({a.fault})")
        if a.problem:
            raise CaseFailed(f"{where}: {a.problem}")
        c = self.contracts[contract]
        if a.payload.tag != c.response_qname:
            raise CaseFailed(f"{where}: the body element is {a.payload.tag}; expected "
                             f"{c.response_qname} (wrong namespace or name)")
        if a.exchange.status != 200:
            raise CaseFailed(f"{where}: HTTP {a.exchange.status} with a response; expected 200")
        report = validate_root(a.root, source=contract)
        if report.problems:
            first = report.problems[0]
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise CaseFailed(f"{where}: the response breaks the contract [{first.rule}] "
                             f"{first.message}{more}")
        return a.payload

    # -- running ------------------------------------------------------------------------------
    def run(self, only: str | None = None, progress: Callable[[CaseResult], None] | None = None,
            ) -> list[CaseResult]:
        done: dict[str, str] = {}
        for c in CASES:
            result = CaseResult(c.name, c.contract, SKIPPED)
            self._current = result
            started = time.perf_counter()
            try:
                if only and c.contract != only:
                    raise CaseSkipped(f"--only {only}")
                unmet = [n for n in c.needs if done.get(n) != PASSED]
                if unmet:
                    raise CaseSkipped(f"needs {unmet[0]!r} to pass first")
                note = c.func(self)
                result.verdict, result.message = PASSED, note or ""
            except CaseSkipped as exc:
                result.verdict, result.message = SKIPPED, str(exc)
            except CaseFailed as exc:
                result.verdict, result.message = FAILED, str(exc)
            except Exception as exc:  # a bug in a case must not hide the other cases
                result.verdict = FAILED
                result.message = f"the case could not run: {type(exc).__name__}: {exc}"
            result.seconds = time.perf_counter() - started
            done[c.name] = result.verdict
            self._current = None
            self.results.append(result)
            if progress is not None:
                progress(result)
        return self.results


def result_of(payload: etree._Element) -> tuple[str, str | None]:
    return child_text(payload, "resultCode") or "", child_text(payload, "resultText")


def expect_done(payload: etree._Element, what: str) -> str:
    """OK, or INFO (done, with a message to show): anything else fails."""
    code, text = result_of(payload)
    if code not in ("OK", "INFO"):
        raise CaseFailed(f"{what}: resultCode {code} ({text or 'no resultText'}); expected OK "
                         "or INFO")
    return code


def expect_code(payload: etree._Element, codes: tuple[str, ...], what: str) -> str:
    code, text = result_of(payload)
    if code not in codes:
        wanted = "an ERROR code" if len(codes) > 2 else " or ".join(codes)
        raise CaseFailed(f"{what}: resultCode {code} ({text or 'no resultText'}); expected "
                         f"{wanted}")
    if not text:
        raise CaseFailed(f"{what}: resultCode {code} without resultText; the resident must be "
                         "told why")
    return code


@dataclass
class Listed:
    unit: str
    in_queue: bool
    remaining_changes: int | None
    valid_to: str | None = None


def listings(payload: etree._Element) -> list[Listed]:
    out = []
    for el in children(payload, "listings"):
        fac = children(el, "healthcareFacility")
        unit = child_text(fac[0], "id") if fac else None
        rc = child_text(el, "remainingChanges")
        out.append(Listed((unit or "").upper(), child_text(el, "isInQueue") in ("true", "1"),
                          int(rc) if rc and rc.lstrip("-").isdigit() else None,
                          child_text(el, "validToDate")))
    return out


def counties_of(payload: etree._Element) -> list[str]:
    return [child_text(el, "extension") or "" for el in children(payload, "listingCounties")]


def raw_request(contract: Contract, payload_xml: str, logical_address: str | None) -> bytes:
    return envelope(etree.fromstring(payload_xml.encode()), logical_address)
