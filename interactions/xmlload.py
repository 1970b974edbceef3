"""The one place where XML from outside is parsed.

Every parse of untrusted bytes in this project goes through ``parse_bytes``: no DTD (a
DOCTYPE is refused outright — SOAP 1.1 forbids them), no entity expansion, no network, no
huge trees (libxml2's amplification and depth limits stop billion-laughs and deep nesting),
and a size cap checked before any parsing.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

DEFAULT_MAX_BYTES = 15 * 1024 * 1024  # the platform's default body cap (15 MiB)

_local = threading.local()  # lxml parsers must not be used by two threads at once


class XmlInputError(ValueError):
    """Input that is not acceptable XML. ``kind`` says why, ``line`` where (when known)."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # "too-large" | "doctype" | "malformed" | "empty"
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def hardened_parser() -> etree.XMLParser:
    """This thread's hardened parser (made once per thread)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
        )
        _local.parser = parser
    return parser


def parse_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted XML bytes into an element, or raise ``XmlInputError``."""
    if not data or not data.strip():
        raise XmlInputError("empty", "the message is empty")
    if len(data) > max_bytes:
        raise XmlInputError(
            "too-large", f"the message is {len(data)} bytes; the limit is {max_bytes} bytes"
        )
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlInputError("doctype", "DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        raise XmlInputError("malformed", f"not well-formed XML: {exc.msg}", line) from None
    # The byte check above cannot see a DOCTYPE in an encoding that is not ASCII-compatible
    # (UTF-16, say). internalDTD is set for any DOCTYPE and is cheaper than docinfo.doctype.
    if root.getroottree().docinfo.internalDTD is not None:
        raise XmlInputError("doctype", "DOCTYPE declarations are not allowed in messages", 1)
    return root


def parse_file(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse a file with the same hardened settings (its size is capped before reading it all)."""
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise XmlInputError("too-large", f"{p} is {size} bytes; the limit is {max_bytes} bytes")
    return parse_bytes(p.read_bytes(), max_bytes=max_bytes)
