"""Serving the contract's own WSDL and XSDs (never spyne's generated WSDL, which cannot express
a RIV-TA contract: python-soap-notes.md).

``GET <path>?wsdl`` answers the contract's WSDL file with ``soap:address`` set to the public
URL of the endpoint and every ``schemaLocation`` pointing at ``<path>?xsd=NAME``;
``GET <path>?xsd=NAME`` answers one XSD file of the release, its imports rewritten the same
way. NAME must be exactly the file name of one of the release's schema files (the only
lookup is in a dict built from the release folders), so ``?xsd=../../etc/passwd`` or an
absolute path can never reach the file system.

The documents are rewritten once per (contract, public URL) and cached.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import quote

from lxml import etree

from interactions.contracts import HERE as INTERACTIONS_DIR
from interactions.contracts import SCHEMAS_DIR, Contract
from interactions.xmlload import parse_file

XS = "http://www.w3.org/2001/XMLSchema"
SOAP11_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
_SCHEMA_REFS = (f"{{{XS}}}import", f"{{{XS}}}include", f"{{{XS}}}redefine")


class UnknownSchema(LookupError):
    """``?xsd=NAME`` names no schema file of the release."""


@cache
def release_schemas() -> dict[str, Path]:
    """Every XSD of the release by file name: the core components and the Responder schemas."""
    files = [*SCHEMAS_DIR.glob("*.xsd"), *INTERACTIONS_DIR.glob("*Interaction/*.xsd")]
    by_name: dict[str, Path] = {}
    for path in sorted(files):
        if path.name in by_name:  # a name must identify one file, or ?xsd= is ambiguous
            raise RuntimeError(f"two schema files named {path.name}: {by_name[path.name]} "
                               f"and {path}")
        by_name[path.name] = path.resolve()
    return by_name


def _rewrite_locations(root: etree._Element, source: Path, endpoint: str) -> None:
    known = {path: name for name, path in release_schemas().items()}
    for el in root.iter(*_SCHEMA_REFS):
        location = el.get("schemaLocation")
        if not location:
            continue
        name = known.get((source.parent / location).resolve())
        if name is None:  # a reference outside the release: a broken release, not a request
            raise RuntimeError(f"{source.name} refers to {location}, not a release file")
        el.set("schemaLocation", f"{endpoint}?xsd={quote(name)}")


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@cache
def wsdl_document(contract: Contract, public_url: str) -> bytes:
    """The contract's WSDL as served at ``public_url`` (the server's base URL)."""
    endpoint = public_url.rstrip("/") + contract.path
    root = parse_file(contract.wsdl)
    for address in root.iter(f"{{{SOAP11_BINDING}}}address"):
        address.set("location", endpoint)
    _rewrite_locations(root, contract.wsdl, endpoint)
    return _serialise(root)


@cache
def xsd_document(contract: Contract, public_url: str, name: str) -> bytes:
    """One release XSD as served under the contract's endpoint; ``UnknownSchema`` otherwise."""
    path = release_schemas().get(name)
    if path is None:
        raise UnknownSchema(name)
    endpoint = public_url.rstrip("/") + contract.path
    root = parse_file(path)
    _rewrite_locations(root, path, endpoint)
    return _serialise(root)
