"""Typed clients for every contract of the release, over HTTPS with mutual TLS.

zeep builds the request envelopes and maps responses to objects with attribute access by XSD
names; everything between is ours, because zeep neither validates responses nor lets a caller
set per-call HTTP headers: one ``requests.Session`` per ``ListingClient`` (client certificate,
CA, keep-alive pool) posts the envelope; the response bytes go through the project's hardened
parser (``interactions.xmlload``) and libxml2 validation against the XSDs *before* zeep sees
them, so a DOCTYPE or a schema-invalid answer never reaches the caller as data.

Usage::

    from consumers.client import ListingClient
    from consumers import values as v

    client = ListingClient("https://vp.example:8443", cert=..., key=..., ca=...)
    r = client.get_listing("08", actor=v.actor(pid), personId=v.person(pid))
    r.response.resultCode, r.response.listings[0].remainingChanges, r.correlation_id
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.xsd.valueobjects import CompoundValue

from interactions.contracts import SOAP11_ENV, Contract, all_contracts
from interactions.validation import EnvelopeError, read_envelope, validate_element
from interactions.xmlload import DEFAULT_MAX_BYTES, XmlInputError, parse_bytes

log = logging.getLogger(__name__)

ZEEP_SETTINGS = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)
CORRELATION_HEADER = "x-skltp-correlation-id"
ORIGINAL_CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
PRODUCER_RT_HEADER = "x-skltp-prt"

# Only the writes retry (carelisting-contracts.md §5); a read is cheap to repeat by the caller
# and must not pile up behind a slow producer.
RETRYING_CONTRACTS = frozenset({"CreateListing", "UpdateListing"})


# --- errors ------------------------------------------------------------------------------

class ClientError(Exception):
    """A call that did not produce a usable response. Carries the correlation id to quote."""

    def __init__(self, message: str, *, contract: str, correlation_id: str,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.contract = contract
        self.correlation_id = correlation_id
        self.attempts = attempts

    def __str__(self) -> str:
        tries = f", {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.contract}: {self.message} (correlation id {self.correlation_id}{tries})"


class InvalidRequest(ClientError):
    """The body given to the client does not fit the contract (nothing was sent)."""


class TransportError(ClientError):
    """No SOAP answer: connection refused or reset, TLS failure, timeout, non-SOAP HTTP error."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.retryable = retryable  # False for a failed TLS handshake: trying again cannot help


class ClientTimeout(TransportError):
    """The producer (or platform) did not connect or answer within the configured time."""


class SoapFault(ClientError):
    """A SOAP fault: a technical error from the platform (e.g. ``VP004 …``) or the producer."""

    def __init__(self, faultcode: str, faultstring: str, detail: str | None = None,
                 **kw: Any) -> None:
        super().__init__(f"SOAP fault {faultcode}: {faultstring}", **kw)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.detail = detail

    @property
    def is_client_fault(self) -> bool:
        """True for ``soap:Client``: the request itself was refused, repeating it cannot help."""
        return self.faultcode.rpartition(":")[2] == "Client"

    @property
    def retryable(self) -> bool:
        return not self.is_client_fault

    @property
    def vp_code(self) -> str | None:
        """The platform's error code (``VP004``) when the fault came from the platform."""
        head = self.faultstring.split(" ", 1)[0]
        return head if len(head) == 5 and head.startswith("VP") and head[2:].isdigit() else None


class InvalidResponse(ClientError):
    """An answer that is not a valid response of the contract: not XML, a DOCTYPE, the wrong
    element, or schema-invalid (``problems`` lists what the XSD validation found)."""

    def __init__(self, message: str, problems: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.problems = problems or []


# --- result ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CallResult:
    """A validated response. ``response`` is zeep's object: ``response.resultCode``,
    ``response.listings[0].healthcareFacility.name``; the 2.1 extension elements are lifted
    to attributes by name too (``listing.remainingChanges``, ``facility.queueLength``)."""

    contract: str
    logical_address: str
    response: Any
    correlation_id: str
    round_trip_ms: float
    attempts: int = 1
    producer_ms: float | None = None  # x-skltp-prt from the platform, when it sent one
    payload: etree._Element | None = field(default=None, repr=False)  # the validated element

    @property
    def result_code(self) -> str | None:
        return getattr(self.response, "resultCode", None)

    @property
    def ok(self) -> bool:
        """Done (``OK`` or ``INFO``); any ``ERROR*`` means not done."""
        return self.result_code in ("OK", "INFO")


# --- zeep, once per process ----------------------------------------------------------------

@cache
def zeep_client(contract_name: str) -> zeep.Client:
    """The zeep client for a contract, built from the local WSDL (only to build and read
    messages: this project's sessions do the HTTP)."""
    contract = all_contracts()[contract_name]
    return zeep.Client(str(contract.wsdl), settings=ZEEP_SETTINGS)


def _lift_extensions(obj: Any, element: etree._Element, client: zeep.Client) -> None:
    """Give wildcard-carried extension elements (2.1's queueLength, remainingChanges, …) their
    XSD names on the zeep object; zeep keeps only their values, anonymously, in ``_value_1``."""
    if not isinstance(obj, CompoundValue):
        return
    # The type's own elements by qualified name; anything else came through the wildcard.
    declared = {el.qname.text: name for name, el in obj._xsd_type.elements
                if getattr(el, "qname", None) is not None}
    seen: dict[str, int] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = declared.get(child.tag)
        if name is None:
            try:
                xsd_element = client.wsdl.types.get_element(child.tag)
            except zeep.exceptions.LookupError:
                continue  # an unknown extension: stays in _value_1 as an element
            local = etree.QName(child).localname
            if local not in obj:  # never shadow a declared element of the same name
                setattr(obj, local, xsd_element.parse(child, client.wsdl.types))
            continue
        value = obj[name]
        if isinstance(value, list):
            index = seen.get(name, 0)
            seen[name] = index + 1
            value = value[index] if index < len(value) else None
        _lift_extensions(value, child, client)


def _fault_of(payload: etree._Element) -> tuple[str, str, str | None] | None:
    if payload.tag != f"{{{SOAP11_ENV}}}Fault":
        return None
    code = (payload.findtext("faultcode") or "").strip()
    text = (payload.findtext("faultstring") or "").strip()
    detail_el = payload.find("detail")
    detail = None
    if detail_el is not None:
        detail = " ".join(t.strip() for t in detail_el.itertext() if t.strip()) or None
    return code or "soap:Server", text or "(no faultstring)", detail


# --- the client -----------------------------------------------------------------------------

class ListingClient:
    """Calls the carelisting contracts (and PingForConfiguration) at ``base_url``, usually the
    service platform, which routes on the LogicalAddress header (a two-digit county code).

    ``cert``/``key``: this system's client certificate (its HSA-id in SERIALNUMBER); ``ca``:
    the CA that signed the server's certificate. ``timeout`` is the read timeout per call
    attempt, ``connect_timeout`` the TCP/TLS connect timeout. CreateListing and UpdateListing
    are retried ``retries`` times on a timeout, a connection error or a ``soap:Server`` fault,
    after ``backoff`` × 2ⁿ seconds (+ up to 25 % jitter, at most ``max_backoff``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        cert: Path | str | None,
        key: Path | str | None,
        ca: Path | str | None,
        timeout: float = 30.0,
        connect_timeout: float = 2.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        consumer_hsa_id: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must not be negative")
        if (cert is None) != (key is None):
            raise ValueError("give both cert and key for mutual TLS, or neither")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.consumer_hsa_id = consumer_hsa_id
        self.max_response_bytes = max_response_bytes
        self._rng = random.Random()  # noqa: S311 -- jitter, not security
        self.session = requests.Session()
        if cert is not None:
            self.session.cert = (str(cert), str(key))
        # verify=CA pins the platform's CA; without one, the system trust store is used.
        self.session.verify = str(ca) if ca is not None else True
        self.session.trust_env = False  # no proxies or netrc from the environment

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ListingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one method per contract --

    def create_listing(self, logical_address: str, *, correlation_id: str | None = None,
                       **body: Any) -> CallResult:
        return self.call("CreateListing", logical_address, correlation_id=correlation_id, **body)

    def update_listing(self, logical_address: str, *, correlation_id: str | None = None,
                       **body: Any) -> CallResult:
        return self.call("UpdateListing", logical_address, correlation_id=correlation_id, **body)

    def get_listing(self, logical_address: str, *, correlation_id: str | None = None,
                    **body: Any) -> CallResult:
        return self.call("GetListing", logical_address, correlation_id=correlation_id, **body)

    def get_listing_county(self, logical_address: str, *, correlation_id: str | None = None,
                           **body: Any) -> CallResult:
        return self.call("GetListingCounty", logical_address, correlation_id=correlation_id,
                         **body)

    def get_listing_types(self, logical_address: str, *, correlation_id: str | None = None,
                          **body: Any) -> CallResult:
        return self.call("GetListingTypes", logical_address, correlation_id=correlation_id,
                         **body)

    def get_available_healthcare_facilities(
        self, logical_address: str, *, correlation_id: str | None = None, **body: Any
    ) -> CallResult:
        return self.call("GetAvailableHealthcareFacilities", logical_address,
                         correlation_id=correlation_id, **body)

    def get_available_healthcare_personnel(
        self, logical_address: str, *, correlation_id: str | None = None, **body: Any
    ) -> CallResult:
        return self.call("GetAvailableHealthcarePersonnel", logical_address,
                         correlation_id=correlation_id, **body)

    def get_logical_addressees_by_service_contract(
        self, logical_address: str, *, correlation_id: str | None = None, **body: Any
    ) -> CallResult:
        """The platform's own catalogue contract: which logical addresses a consumer may call
        a contract at (``serviceConsumerHsaId``, ``serviceContractNameSpace``)."""
        return self.call("GetLogicalAddresseesByServiceContract", logical_address,
                         correlation_id=correlation_id, **body)

    def ping(self, logical_address: str, service_contract_namespace: str | None = None, *,
             correlation_id: str | None = None) -> CallResult:
        """PingForConfiguration; by default asks about the ping contract itself."""
        contract = all_contracts()["PingForConfiguration"]
        return self.call(
            contract.name, logical_address, correlation_id=correlation_id,
            serviceContractNamespace=service_contract_namespace or contract.namespace,
            logicalAddress=logical_address,
        )

    # -- the generic call --

    def call(self, contract_name: str, logical_address: str, *,
             correlation_id: str | None = None, **body: Any) -> CallResult:
        """Call ``contract_name`` at ``logical_address`` with the request ``body`` (keyword
        arguments named as the request's XSD elements)."""
        try:
            contract = all_contracts()[contract_name]
        except KeyError:
            raise ValueError(f"unknown contract {contract_name!r}; known: "
                             f"{', '.join(sorted(all_contracts()))}") from None
        cid = correlation_id or str(uuid.uuid4())
        envelope = self._build(contract, logical_address, body, cid)
        max_attempts = 1 + (self.retries if contract.name in RETRYING_CONTRACTS else 0)
        attempt = 1
        while True:
            try:
                result = self._attempt(contract, logical_address, envelope, cid, attempt)
            except (TransportError, SoapFault) as exc:
                if not exc.retryable or attempt >= max_attempts:
                    exc.attempts = attempt
                    raise
                delay = self._delay(attempt)
                # Not the fault text: a producer might echo a personnummer in it.
                what = (exc.vp_code or exc.faultcode) if isinstance(exc, SoapFault) else \
                    type(exc).__name__
                log.warning("%s @%s attempt %d failed (%s); retrying in %.2f s, correlation id %s",
                            contract.name, logical_address, attempt, what, delay, cid)
                time.sleep(delay)
                attempt += 1
                continue
            log.debug("%s @%s %s in %.1f ms, correlation id %s", contract.name, logical_address,
                      result.result_code, result.round_trip_ms, cid)
            return result

    def _delay(self, attempt: int) -> float:
        base = self.backoff * (2 ** (attempt - 1))
        return min(self.max_backoff, base * (1 + 0.25 * self._rng.random()))

    def _build(self, contract: Contract, logical_address: str, body: dict[str, Any],
               cid: str) -> bytes:
        client = zeep_client(contract.name)
        try:
            envelope = client.create_message(
                client.service, contract.name,
                _soapheaders={"LogicalAddress": logical_address}, **body,
            )
        except (TypeError, zeep.exceptions.Error) as exc:
            raise InvalidRequest(f"the request does not fit the contract: {exc}",
                                 contract=contract.name, correlation_id=cid) from None
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    def _attempt(self, contract: Contract, logical_address: str, envelope: bytes, cid: str,
                 attempt: int) -> CallResult:
        url = self.base_url + contract.path
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{contract.soap_action}"',
            CORRELATION_HEADER: cid,
        }
        if self.consumer_hsa_id:
            headers[ORIGINAL_CONSUMER_HEADER] = self.consumer_hsa_id
        ctx = {"contract": contract.name, "correlation_id": cid, "attempts": attempt}
        started = time.perf_counter()
        try:
            with self.session.post(url, data=envelope, headers=headers, stream=True,
                                   timeout=(self.connect_timeout, self.timeout)) as resp:
                content = self._read_capped(resp, ctx)
                status, resp_headers = resp.status_code, resp.headers
        except requests.Timeout as exc:
            raise ClientTimeout(f"no answer from {url} within the timeout "
                                f"(connect {self.connect_timeout} s, read {self.timeout} s): "
                                f"{exc}", **ctx) from None
        except requests.exceptions.SSLError as exc:
            reason = getattr(exc.args[0], "reason", exc) if exc.args else exc
            raise TransportError(f"TLS with {url} failed{self._cert_hint(url)}: {reason}",
                                 retryable=False, **ctx) from None
        except requests.RequestException as exc:
            # With TLS 1.3 a refused client certificate shows only as a dropped connection.
            raise TransportError(f"could not reach {url}{self._cert_hint(url)}: {exc}",
                                 **ctx) from None
        round_trip_ms = (time.perf_counter() - started) * 1000
        payload = self._read_payload(contract, url, status, content, ctx)
        client = zeep_client(contract.name)
        operation = client.service._binding.get(contract.name)
        try:
            response = operation.process_reply(payload.getroottree().getroot())
        except zeep.exceptions.Error as exc:
            raise InvalidResponse(f"zeep could not read the response: {exc}", **ctx) from None
        _lift_extensions(response, payload, client)
        return CallResult(
            contract=contract.name, logical_address=logical_address, response=response,
            correlation_id=resp_headers.get(CORRELATION_HEADER, cid),
            round_trip_ms=round_trip_ms, attempts=attempt,
            producer_ms=_float_or_none(resp_headers.get(PRODUCER_RT_HEADER)), payload=payload,
        )

    def _cert_hint(self, url: str) -> str:
        if self.session.cert is None and url.startswith("https:"):
            return " (this client sent no client certificate)"
        return ""

    def _read_capped(self, resp: requests.Response, ctx: dict[str, Any]) -> bytes:
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise InvalidResponse(
                    f"the response is larger than {self.max_response_bytes} bytes", **ctx)
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_payload(self, contract: Contract, url: str, status: int, content: bytes,
                      ctx: dict[str, Any]) -> etree._Element:
        """The validated response element, or the right exception for what came back."""
        try:
            envelope = read_envelope(parse_bytes(content, max_bytes=self.max_response_bytes))
        except (XmlInputError, EnvelopeError) as exc:
            if status != 200:  # an HTML error page, an empty 502: not a SOAP answer at all
                raise TransportError(f"HTTP {status} from {url} without a SOAP envelope",
                                     status=status, **ctx) from None
            raise InvalidResponse(f"the response is not a usable SOAP envelope: {exc}",
                                  **ctx) from None
        fault = _fault_of(envelope.payload)
        if fault is not None:
            raise SoapFault(*fault, **ctx)
        if status != 200:
            raise TransportError(f"HTTP {status} from {url} with a non-fault body",
                                 status=status, **ctx)
        if envelope.payload.tag != contract.response_qname:
            raise InvalidResponse(f"expected {contract.response_qname} in the response body, "
                                  f"got {envelope.payload.tag}", **ctx)
        problems = validate_element(envelope.payload)
        if problems:
            raise InvalidResponse(
                "the response does not follow the contract's schema: "
                + "; ".join(str(p) for p in problems[:5]),
                problems=[str(p) for p in problems], **ctx)
        return envelope.payload


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
