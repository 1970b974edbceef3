"""Shared pieces of ``listning contract lint``: findings, rule ids and the per-run session."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from interactions.xmlload import XmlInputError, parse_file

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING = "http://schemas.xmlsoap.org/wsdl/soap12/"
SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"

# Rule id -> what it checks. The ids are what `lint` prints in brackets and what tests look for.
RULES: dict[str, str] = {
    "well-formed": "every .xsd/.wsdl file is well-formed XML without DOCTYPE, of the right kind",
    "folder-name": "an interaction folder is named <Contract>Interaction",
    "file-name": "<Contract>Responder_<m.n>.xsd and <Contract>Interaction_<m.n>_RIVTABP21.wsdl; "
    "core components <domain>_<m.n>[_ext].xsd",
    "core-namespace": "a core component's namespace is urn:riv:<domain>:<major> "
    "(urn:riv:<domain>:<m.n> for _ext)",
    "responder-namespace": "Responder namespace is urn:riv:<domain>:<Contract>Responder:<major>",
    "root-elements": "the Responder schema declares <Contract> and <Contract>Response",
    "root-types": "the root elements are of types <Contract>Type and <Contract>ResponseType",
    "venetian-blind": "only the two root elements are global in a Responder schema",
    "wsdl-namespace": "WSDL targetNamespace is urn:riv:<domain>:<Contract>:<major>:rivtabp21",
    "types-namespace": "the xs:schema inside wsdl:types carries the WSDL's targetNamespace",
    "wsdl-names": "portType/binding/service/port are <Contract>ResponderInterface/Binding/"
    "Service/Port and the operation is <Contract>",
    "message-names": "messages are <Contract>Request and <Contract>Response",
    "body-part": "the body part is named parameters and holds the Responder root element",
    "logical-address-header": "the request's first part is the registry LogicalAddress element, "
    "bound as soap:header",
    "soap-action": "soapAction is the Responder namespace + ':' + <Contract>",
    "one-operation": "exactly one operation per portType and binding",
    "soap-binding": "SOAP 1.1 document/literal binding over HTTP, with a SOAP 1.1 address",
    "trailing-any": "every complex type ends with <xs:any namespace=\"##other\" "
    "processContents=\"lax\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>",
    "schema-version": "every schema has a version attribute matching its file name",
    "form-default": "elementFormDefault=\"qualified\" and attributeFormDefault=\"unqualified\"",
    "national-characters": "names, namespaces and enumeration values are ASCII only "
    "(documentation may use å, ä, ö)",
    "import-resolves": "every import/include has a schemaLocation naming a file inside the "
    "folder, with the imported namespace",
    "xsd-compiles": "every XSD compiles (libxml2 and xmlschema)",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    file: Path
    line: int  # 0 when the finding is about a whole file or folder
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:  # a typo in a rule id would silently escape the tests
            raise ValueError(f"unknown lint rule {self.rule!r}")

    def display(self, cwd: Path | None = None) -> str:
        return f"{_shown(self.file, cwd)}:{self.line}: [{self.rule}] {self.message}"

    def __str__(self) -> str:
        return self.display()


def _shown(path: Path, cwd: Path | None) -> str:
    """Paths relative to the working directory when they lie under it: shorter, clickable."""
    base = cwd or Path.cwd()
    try:
        return os.fspath(path.relative_to(base))
    except ValueError:
        return os.fspath(path)


def qname(el: etree._Element, value: str | None) -> str | None:
    """Resolve a prefixed name (``tns:Foo``) in an attribute value to Clark notation."""
    if not value:
        return None
    prefix, _, local = value.rpartition(":")
    ns = el.nsmap.get(prefix or None)
    return f"{{{ns}}}{local}" if ns else local


def line_of(el: etree._Element | None) -> int:
    return (el.sourceline or 0) if el is not None else 0


@dataclass
class Session:
    """One lint run: the folder's root (imports must stay inside it), findings and parsed files."""

    root: Path
    findings: list[Finding] = field(default_factory=list)
    _docs: dict[Path, etree._Element | None] = field(default_factory=dict)

    def add(self, rule: str, file: Path, line: int, message: str) -> None:
        finding = Finding(rule, file, line, message)
        if finding not in self.findings:
            self.findings.append(finding)

    def load(self, path: Path) -> etree._Element | None:
        """Parse a file once, with the project's hardened parser; None (and a finding) if bad."""
        path = path.resolve()
        if path not in self._docs:
            try:
                root = parse_file(path)
            except XmlInputError as exc:
                self.add("well-formed", path, exc.line or 0, exc.message)
                root = None
            except OSError as exc:
                self.add("well-formed", path, 0, f"cannot read the file: {exc.strerror}")
                root = None
            if root is not None:
                # A base URL, so that libxml2 resolves the schema's relative imports.
                root.getroottree().docinfo.URL = str(path)
            self._docs[path] = root
        return self._docs[path]
