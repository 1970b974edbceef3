"""Reading the envelope up to the first body element: contract, logical address, RIV version.

Two readers with the same result and the same hardened settings (no DTD, no entity expansion,
no network, libxml2's size/depth limits on):

* small envelopes get one full parse with the shared hardened parser (``interactions.xmlload``):
  for a few KB that is cheaper than creating a pull parser;
* large envelopes are read with a pull parser that stops at the first body element, so a
  megabyte of body costs no more than its header. This is not ``xmlload`` because xmlload only
  does whole-document parses; the streaming reader needs its own ``XMLPullParser``, built
  here with xmlload's settings.

Both refuse the same bytes: the streaming path checks the size cap and refuses the text
``<!DOCTYPE`` / ``<!ENTITY`` anywhere (even in a comment or CDATA), as ``parse_bytes`` does, so
the verdict on an envelope never depends on its size.

The switch size is ``PULL_THRESHOLD`` (measured: see docs/performance.md, Platform section).
Also here: the RIVTABP20 ↔ RIVTABP21 header conversion (``wsa:To`` ↔ ``LogicalAddress``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from interactions.contracts import REGISTRY_NS, SOAP11_ENV
from interactions.xmlload import XmlInputError, parse_bytes
from routing.vp.faults import VpError

WSA_NS = "http://www.w3.org/2005/08/addressing"
ENVELOPE = f"{{{SOAP11_ENV}}}Envelope"
HEADER = f"{{{SOAP11_ENV}}}Header"
BODY = f"{{{SOAP11_ENV}}}Body"
BP21, BP20 = "RIVTABP21", "RIVTABP20"
ADDRESS_NAMES = {"LogicalAddress": BP21, "To": BP20}
PULL_THRESHOLD = 16 * 1024  # bytes; below it a full parse is cheaper (measured)
_FIRST_CHUNK = 4096  # the header usually ends within it; later chunks double


@dataclass(slots=True)
class EnvelopeInfo:
    contract_namespace: str
    logical_address: str | None
    riv_version: str | None  # from the address header's form: LogicalAddress → 21, To → 20


def read_envelope(data: bytes, max_bytes: int) -> EnvelopeInfo:
    """The routing inputs of a SOAP 1.1 request, or VpError VP015 when it cannot be read."""
    if len(data) < PULL_THRESHOLD:
        return _read_full(data, max_bytes)
    # The streaming path applies the full parse's byte-level refusals itself, so the verdict
    # never depends on the size: the cap, and the DOCTYPE/ENTITY bytes anywhere (even inside
    # a comment or CDATA, as ``xmlload.parse_bytes`` refuses them; one memchr-speed scan).
    if len(data) > max_bytes:
        raise VpError("VP015", f"the request is not readable XML (too-large: {len(data)} bytes, "
                               f"the limit is {max_bytes})")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise VpError("VP015", "the request is not readable XML (doctype)")
    return _read_streaming(data)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _read_full(data: bytes, max_bytes: int) -> EnvelopeInfo:
    try:
        root = parse_bytes(data, max_bytes=max_bytes)
    except XmlInputError as exc:
        raise VpError("VP015", f"the request is not readable XML ({exc.kind})") from None
    if root.tag != ENVELOPE:
        raise VpError("VP015", "the request is not a SOAP 1.1 envelope")
    address = version = None
    namespace = None
    for part in root:
        if part.tag == HEADER and address is None:
            for child in part:
                if isinstance(child.tag, str) and _local(child.tag) in ADDRESS_NAMES:
                    address = (child.text or "").strip()
                    version = ADDRESS_NAMES[_local(child.tag)]
                    break
        elif part.tag == BODY:
            for child in part:
                if isinstance(child.tag, str):
                    namespace = _namespace(child.tag)
                    break
            break
    if not namespace:
        raise VpError("VP015", "the SOAP body has no namespace-qualified element")
    return EnvelopeInfo(namespace, address, version)


def _pull_parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
    )


def _chunks(data: bytes) -> Iterator[bytes]:
    """Small first, then doubling: the parser stops soon after the header, wherever it ends."""
    view, offset, size = memoryview(data), 0, _FIRST_CHUNK
    while offset < len(data):
        yield bytes(view[offset:offset + size])
        offset += size
        size = min(size * 2, 1 << 20)


def _read_streaming(data: bytes) -> EnvelopeInfo:
    """Feed the parser chunk by chunk and stop at the first element inside soap:Body."""
    parser = _pull_parser()
    depth = 0
    section = None  # HEADER or BODY while inside one
    address = version = None
    try:
        for chunk in _chunks(data):
            parser.feed(chunk)
            for event, el in parser.read_events():
                if event == "start":
                    depth += 1
                    if depth == 1:
                        if el.getroottree().docinfo.doctype:
                            raise VpError("VP015", "DOCTYPE declarations are not allowed")
                        if el.tag != ENVELOPE:
                            raise VpError("VP015", "the request is not a SOAP 1.1 envelope")
                    elif depth == 2:
                        section = el.tag
                    elif depth == 3 and section == BODY:
                        namespace = _namespace(el.tag)
                        if not namespace:
                            break
                        return EnvelopeInfo(namespace, address, version)
                else:
                    if (depth == 3 and section == HEADER and address is None
                            and _local(el.tag) in ADDRESS_NAMES):
                        address = (el.text or "").strip()
                        version = ADDRESS_NAMES[_local(el.tag)]
                    elif depth == 2:
                        if section == BODY:
                            break  # an empty body
                        el.clear()  # header read: free it
                        section = None
                    depth -= 1
            else:
                continue
            break
    except etree.XMLSyntaxError:
        raise VpError("VP015", "the request is not readable XML (malformed)") from None
    raise VpError("VP015", "the SOAP body has no namespace-qualified element")


def convert_address_header(data: bytes, to_version: str, max_bytes: int) -> bytes:
    """Rewrite the address header for the route's profile: BP21 ``LogicalAddress`` ↔ BP20 ``To``.

    A whole-document parse: conversion is rare and must keep everything else as it was. It
    rewrites the element the readers route on: the first address header in document order,
    in whichever soap:Header it is (an envelope may have an empty soap:Header before it).
    """
    try:
        root = parse_bytes(data, max_bytes=max_bytes)
    except XmlInputError as exc:
        # A ≥ PULL_THRESHOLD request was only read up to its body element: the rest may be
        # broken. A Client fault, as for a small request, not an exception out of the pipeline.
        raise VpError("VP015", f"the request is not readable XML ({exc.kind})") from None
    target = (f"{{{REGISTRY_NS}}}LogicalAddress" if to_version == BP21 else f"{{{WSA_NS}}}To")
    for header in root.iterchildren(HEADER):
        for child in header:
            if isinstance(child.tag, str) and _local(child.tag) in ADDRESS_NAMES:
                replacement = etree.Element(target)
                replacement.text = child.text
                replacement.tail = child.tail
                header.replace(child, replacement)
                return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def is_soap_envelope(data: bytes) -> bool:
    """Whether a producer's answer is a SOAP 1.1 envelope (checked as far as its root element)."""
    if len(data) < PULL_THRESHOLD:
        try:
            return parse_bytes(data, max_bytes=len(data) + 1).tag == ENVELOPE
        except XmlInputError:
            return False
    parser = _pull_parser()
    try:
        for chunk in _chunks(data):
            parser.feed(chunk)
            for _event, el in parser.read_events():
                return el.tag == ENVELOPE and not el.getroottree().docinfo.doctype
    except etree.XMLSyntaxError:
        return False
    return False
