"""GetLogicalAddresseesByServiceContract 2: which logical addresses may a consumer call?

Answers from the published snapshot, as the national platform's catalogue does: the logical
addresses of the consumer's permissions for the contract that are valid today (inclusive local
dates, Europe/Stockholm), each once, sorted; a catch-all permission answers ``*``. Bad input
gets a SOAP 1.1 fault (``soap:Client``); no published catalogue gets ``soap:Server``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from lxml import etree

from interactions.contracts import SOAP11_ENV
from interactions.validation import EnvelopeError, read_envelope, validate_element
from interactions.xmlload import XmlInputError, parse_bytes
from routing.catalogue import GLABSC_NAME, GLABSC_NAMESPACE
from routing.snapshot import CATCH_ALL, Snapshot, today_in_sweden

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024  # a GLABSC request is a few hundred bytes
_REQUEST = f"{{{GLABSC_NAMESPACE}}}{GLABSC_NAME}"


@dataclass(frozen=True)
class SoapAnswer:
    status: int
    body: bytes

    @property
    def is_fault(self) -> bool:
        return self.status == 500


def fault(code: str, message: str, detail: str | None = None) -> SoapAnswer:
    """A SOAP 1.1 fault (``code`` is ``Client`` or ``Server``), HTTP 500."""
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    f = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_ENV}}}Body"), f"{{{SOAP11_ENV}}}Fault")
    etree.SubElement(f, "faultcode").text = f"soap:{code}"
    etree.SubElement(f, "faultstring").text = message
    etree.SubElement(etree.SubElement(f, "detail"), "detailString").text = detail or message
    return SoapAnswer(500, etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def answer(data: bytes, snapshot: Snapshot | None, descriptions: dict[str, str] | None = None,
           day: date | None = None) -> SoapAnswer:
    """The SOAP answer to one request body."""
    try:
        root = parse_bytes(data, max_bytes=MAX_REQUEST_BYTES)
        env = read_envelope(root)
    except (XmlInputError, EnvelopeError) as exc:
        return fault("Client", f"The request cannot be read: {exc}")
    if env.payload.tag != _REQUEST:
        return fault("Client", f"This endpoint answers {GLABSC_NAME} "
                               f"({GLABSC_NAMESPACE}), not {env.payload.tag}")
    header = env.logical_address_element
    if header is None:
        return fault("Client", "The LogicalAddress header is missing (RIV-TA BP 2.1)")
    problems = validate_element(header) + validate_element(env.payload)
    if problems:
        return fault("Client", f"The request does not follow the contract: {problems[0]}",
                     "; ".join(str(p) for p in problems))
    if snapshot is None:
        return fault("Server", "The service catalogue has not been published yet")

    consumer = env.payload.findtext(f"{{{GLABSC_NAMESPACE}}}serviceConsumerHsaId").strip()
    namespace = env.payload.findtext(f"{{{GLABSC_NAMESPACE}}}serviceContractNameSpace").strip()
    addresses = _reachable(snapshot, consumer, namespace, day or today_in_sweden())
    known = any(r.contract_namespace.casefold() == namespace.casefold()
                for r in [*snapshot.routes, *snapshot.permissions])
    log.info("GetLogicalAddresseesByServiceContract consumer=%s contract=%s: %d address(es)",
             consumer, namespace, len(addresses))
    return SoapAnswer(200, _response(addresses, descriptions or {},
                                     None if known else
                                     "The catalogue has no routes or permissions for "
                                     f"the service contract {namespace}."))


def _reachable(snapshot: Snapshot, consumer: str, namespace: str, day: date) -> list[str]:
    """Addresses the consumer may call *and* that are routed today.

    A region counts as connected when the catalogue routes its county code (contract
    description §6), so a permission without a route is not an address the consumer can reach;
    a catch-all permission (``*``) reaches every routed address.
    """
    ns = namespace.casefold()
    routed = {r.logical_address.casefold(): r.logical_address for r in snapshot.routes
              if r.contract_namespace.casefold() == ns and r.valid_on(day)
              and r.logical_address != CATCH_ALL}
    permitted = snapshot.addressees(consumer, namespace, day)
    if CATCH_ALL in permitted:
        return sorted(routed.values())
    return [a for a in permitted if a.casefold() in routed]


def _response(addresses: list[str], descriptions: dict[str, str], info: str | None) -> bytes:
    ns = GLABSC_NAMESPACE
    by_key = {k.casefold(): v for k, v in descriptions.items()}
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    body = etree.SubElement(env, f"{{{SOAP11_ENV}}}Body")
    resp = etree.SubElement(body, f"{{{ns}}}{GLABSC_NAME}Response", nsmap={None: ns})
    for address in addresses:
        record = etree.SubElement(resp, f"{{{ns}}}logicalAddressRecord")
        etree.SubElement(record, f"{{{ns}}}logicalAddress").text = address
        description = by_key.get(address.casefold())
        if description:
            etree.SubElement(record, f"{{{ns}}}description").text = description
    etree.SubElement(resp, f"{{{ns}}}resultCode").text = "INFO" if info else "OK"
    if info:
        etree.SubElement(resp, f"{{{ns}}}resultText").text = info
    problems = validate_element(resp)  # never send what the contract forbids
    if problems:
        raise ValueError(f"invalid {GLABSC_NAME} response built: {problems[0]}")
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")
