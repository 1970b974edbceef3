"""Schema validation on the hot path: libxml2 through lxml, compiled once.

One in-memory "driver" schema imports every Responder XSD and the registry XSD, so a single
compiled schema validates the LogicalAddress header element and any request or response body
element of the release (about 3 µs a message; compiling takes a few ms, once).
For readable error messages in tools and tests use xmlschema instead; it is ~100× slower.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

from lxml import etree

from interactions.contracts import (
    REGISTRY_NS,
    SCHEMAS_DIR,
    SOAP11_ENV,
    all_contracts,
)

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"


@dataclass(frozen=True)
class SchemaProblem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class EnvelopeError(ValueError):
    """The document is not a usable SOAP 1.1 envelope."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Envelope:
    root: etree._Element
    header: etree._Element | None
    body: etree._Element
    payload: etree._Element  # the first (and only) element inside soap:Body

    @property
    def logical_address(self) -> str | None:
        """Text of the RIV-TA BP 2.1 LogicalAddress header, if there is one."""
        if self.header is None:
            return None
        el = self.header.find(f"{{{REGISTRY_NS}}}LogicalAddress")
        return None if el is None else (el.text or "").strip()

    @property
    def logical_address_element(self) -> etree._Element | None:
        if self.header is None:
            return None
        return self.header.find(f"{{{REGISTRY_NS}}}LogicalAddress")


def _driver_source() -> bytes:
    imports = [f'<xs:import namespace="{REGISTRY_NS}" schemaLocation="'
               f'{(SCHEMAS_DIR / "itintegration_registry_1.0.xsd").as_uri()}"/>']
    for c in all_contracts().values():
        imports.append(f'<xs:import namespace="{c.namespace}" schemaLocation="{c.xsd.as_uri()}"/>')
    return (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'targetNamespace="urn:listning:validation-driver" elementFormDefault="qualified">'
        + "".join(imports)
        + "</xs:schema>"
    ).encode()


_BUILDING = threading.Lock()
_built: etree.XMLSchema | None = None  # once built, read without the lock
_per_thread = threading.local()


def driver_schema() -> etree.XMLSchema:
    """The compiled schema for every header and body element of the release.

    Built once, under a lock: the first calls of a region under load came from several
    request threads at once, and libxml2 building the schema concurrently crashed a region
    (SIGSEGV, "Document is not valid XML Schema": benchmarks/year_of_traffic.py). Servers
    build it at start-up, in the main thread, before any request thread runs."""
    global _built
    schema = _built
    if schema is None:
        with _BUILDING:
            schema = _built = _build_driver_schema()
    return schema


def _thread_schema() -> etree.XMLSchema:
    """This thread's copy of the driver schema (the main thread's is ``driver_schema()``).

    An lxml schema keeps the messages of a validation in one error log per schema object,
    cleared and filled by every call, while libxml2 validates without the GIL: with one schema
    shared by request threads, a failed request could be answered with another caller's
    errors, and so its content (tests/security/test_validation_threads.py). A schema per
    thread keeps each caller's errors its own without serialising validations. Each copy is
    compiled once, under the build lock (~2 ms and ~0.4 MB; a producer has ~16 threads)."""
    schema = getattr(_per_thread, "schema", None)
    if schema is None:
        if threading.current_thread() is threading.main_thread():
            schema = driver_schema()
        else:
            driver_schema()  # the first build, and its failure, happen as they always did
            with _BUILDING:
                schema = _compile_driver_schema()
        _per_thread.schema = schema
    return schema


@cache
def _build_driver_schema() -> etree.XMLSchema:
    return _compile_driver_schema()


def _compile_driver_schema() -> etree.XMLSchema:
    # Our own contract files: resolved locally with entity resolution and network off.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.fromstring(_driver_source(), parser, base_url=SCHEMAS_DIR.as_uri() + "/")
    return etree.XMLSchema(doc)


def validate_element(element: etree._Element) -> list[SchemaProblem]:
    """Validate one header or body element against the release's XSDs."""
    schema = _thread_schema()
    if schema.validate(element):
        return []
    return [SchemaProblem(e.line or None, e.message) for e in schema.error_log]


def read_envelope(root: etree._Element) -> Envelope:
    """Check the SOAP 1.1 envelope structure and find its parts (no schema validation)."""
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise EnvelopeError("SOAP 1.2 envelope; RIV-TA BP 2.1 uses SOAP 1.1", root.sourceline)
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise EnvelopeError(f"not a SOAP 1.1 envelope (root element is {root.tag})",
                            root.sourceline)
    header = body = None
    for child in root:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        if child.tag == f"{{{SOAP11_ENV}}}Header" and header is None and body is None:
            header = child
        elif child.tag == f"{{{SOAP11_ENV}}}Body" and body is None:
            body = child
        else:
            raise EnvelopeError(f"unexpected element {child.tag} in the envelope", child.sourceline)
    if body is None:
        raise EnvelopeError("the envelope has no soap:Body", root.sourceline)
    payload = [el for el in body if isinstance(el.tag, str)]
    if not payload:
        raise EnvelopeError("soap:Body is empty", body.sourceline)
    if len(payload) > 1:
        raise EnvelopeError("soap:Body holds more than one element", payload[1].sourceline)
    return Envelope(root, header, body, payload[0])
