"""Raw SOAP 1.1 over HTTP(S) for the conformance suite.

The suite builds its request envelopes from the compiled models (``interactions.models``) and
sends the bytes itself instead of going through the zeep client (``consumers.client``): a
conformance verdict needs the raw exchange — HTTP status, content type, the exact body and the
time it took — and must be able to send deliberately broken requests (not XML, a DOCTYPE, no
LogicalAddress, a wrong namespace) that a typed client refuses to build.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from lxml import etree

from interactions.contracts import REGISTRY_NS, SOAP11_ENV, Contract
from interactions.models import to_element

CORRELATION_HEADER = "x-skltp-correlation-id"


@dataclass
class Exchange:
    """One request and what came back (or why nothing did)."""

    contract: str
    url: str
    request: bytes
    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None  # transport problem: timeout, refused, TLS

    @property
    def timed_out(self) -> bool:
        return bool(self.error and self.error.startswith("timeout"))


def envelope(payload: etree._Element, logical_address: str | None) -> bytes:
    """A SOAP 1.1 envelope with the LogicalAddress header (left out when None)."""
    env = etree.Element(f"{{{SOAP11_ENV}}}Envelope",
                        nsmap={"soap": SOAP11_ENV, "add": REGISTRY_NS})
    if logical_address is not None:
        header = etree.SubElement(env, f"{{{SOAP11_ENV}}}Header")
        etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = logical_address
    body = etree.SubElement(env, f"{{{SOAP11_ENV}}}Body")
    body.append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def model_envelope(message: Any, logical_address: str | None) -> bytes:
    return envelope(to_element(message), logical_address)


class Transport:
    """Posts envelopes to ``base_url`` + the contract path, with mutual TLS when given."""

    def __init__(self, base_url: str, *, cert: str | None = None, key: str | None = None,
                 ca: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # Not the environment's proxies or CA bundle: REQUESTS_CA_BUNDLE would silently replace
        # the pinned CA (requests lets it override Session.verify).
        self.session.trust_env = False
        if cert and key:
            self.session.cert = (str(cert), str(key))
        if ca:
            self.session.verify = str(ca)

    def url(self, contract: Contract) -> str:
        return self.base_url + contract.path

    def post(self, contract: Contract, data: bytes, *, soap_action: str | None = None,
             headers: dict[str, str] | None = None) -> Exchange:
        url = self.url(contract)
        action = soap_action if soap_action is not None else contract.soap_action
        hdrs = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"',
                CORRELATION_HEADER: str(uuid.uuid4())}
        hdrs.update(headers or {})
        ex = Exchange(contract.name, url, data)
        started = time.perf_counter()
        try:
            r = self.session.post(url, data=data, headers=hdrs, timeout=self.timeout)
            ex.status, ex.content_type, ex.body = (r.status_code, r.headers.get("Content-Type", ""),
                                                   r.content)
        except requests.Timeout:
            ex.error = f"timeout: no answer within {self.timeout:g} s"
        except requests.exceptions.SSLError as exc:
            ex.error = f"TLS: {exc}"
        except requests.ConnectionError as exc:
            ex.error = f"connection: {exc}"
        ex.seconds = time.perf_counter() - started
        return ex

    def get(self, url: str) -> requests.Response:
        return self.session.get(url, timeout=self.timeout)

    def close(self) -> None:
        self.session.close()
