"""Schema-level RIV-TA BP 2.1 rules: they apply to core components and Responder schemas alike."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import xmlschema
from lxml import etree

from interactions.lint_base import WSDL, XS, Session, line_of

VERSIONED_NAME = re.compile(r"_(?P<version>\d+\.\d+)(?:_ext)?\.xsd$")
CORE_NAME = re.compile(
    r"^(?P<domain>[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*)_(?P<version>\d+\.\d+)(?P<ext>_ext)?\.xsd$"
)
TRAILING_ANY = {
    "namespace": "##other",
    "processContents": "lax",
    "minOccurs": "0",
    "maxOccurs": "unbounded",
}
_ANY_TEXT = " ".join(f'{k}="{v}"' for k, v in TRAILING_ANY.items())
_DOCUMENTATION = {f"{{{XS}}}annotation", f"{{{WSDL}}}documentation"}
_IMPORTS = {f"{{{XS}}}import", f"{{{XS}}}include", f"{{{XS}}}redefine", f"{{{WSDL}}}import"}
_MODEL_GROUPS = {f"{{{XS}}}{n}" for n in ("sequence", "choice", "all", "group")}


def check_schema(s: Session, path: Path, root: etree._Element) -> None:
    """The rules every XSD file follows, whatever its role."""
    _version(s, path, root)
    _form_defaults(s, path, root)
    _trailing_any(s, path, root)
    check_ascii_names(s, path, root)
    check_imports(s, path, root)


def check_core_name(s: Session, path: Path, root: etree._Element) -> None:
    """Core components: <domain>_<m.n>.xsd in urn:riv:<domain>:<major>, _ext in ...:<m.n>."""
    m = CORE_NAME.match(path.name)
    if not m:
        s.add("file-name", path, 0, "a core component is named <domain>_<m.n>.xsd or "
              "<domain>_<m.n>_ext.xsd, with the domain's parts joined by '_' "
              "(e.g. supportprocess_logistics_carelisting_2.1.xsd)")
        return
    domain = m["domain"].replace("_", ":")
    want = f"urn:riv:{domain}:{m['version'] if m['ext'] else m['version'].split('.')[0]}"
    got = root.get("targetNamespace")
    if got != want:
        s.add("core-namespace", path, line_of(root),
              f"targetNamespace is {got!r}; the file name says it is {want!r}")


def _version(s: Session, path: Path, root: etree._Element) -> None:
    m = VERSIONED_NAME.search(path.name)
    got = root.get("version")
    if got is None:
        hint = f'; expected version="{m["version"]}"' if m else ""
        s.add("schema-version", path, line_of(root), f"the schema has no version attribute{hint}")
    elif m and got != m["version"]:
        s.add("schema-version", path, line_of(root),
              f'version="{got}" does not match the file name, which says {m["version"]}')


def _form_defaults(s: Session, path: Path, root: etree._Element) -> None:
    for attr, want in (("elementFormDefault", "qualified"),
                       ("attributeFormDefault", "unqualified")):
        got = root.get(attr)
        if got != want:
            found = "it is missing" if got is None else f'found "{got}"'
            s.add("form-default", path, line_of(root), f'{attr}="{want}" is required ({found})')


def _content_model(ct: etree._Element) -> etree._Element | str | None:
    """The model group of a complex type, "simple" for simple content, None when it has none."""
    for child in ct.iterchildren(tag=etree.Element):
        if child.tag == f"{{{XS}}}simpleContent":
            return "simple"
        if child.tag == f"{{{XS}}}complexContent":
            for derivation in child.iterchildren(f"{{{XS}}}extension", f"{{{XS}}}restriction"):
                for group in derivation.iterchildren(tag=etree.Element):
                    if group.tag in _MODEL_GROUPS:
                        return group
            return None
        if child.tag in _MODEL_GROUPS:
            return child
    return None


def _type_label(ct: etree._Element) -> str:
    if ct.get("name"):
        return f"complex type {ct.get('name')}"
    parent = ct.getparent()
    owner = parent.get("name") if parent is not None else None
    return f"the anonymous complex type of element {owner}" if owner else "an anonymous type"


def _trailing_any(s: Session, path: Path, root: etree._Element) -> None:
    for ct in root.iter(f"{{{XS}}}complexType"):
        model = _content_model(ct)
        if model == "simple":
            continue  # simple content cannot hold elements, so there is nothing to extend
        label = _type_label(ct)
        if not isinstance(model, etree._Element) or model.tag != f"{{{XS}}}sequence":
            s.add("trailing-any", path, line_of(ct),
                  f"{label} has no xs:sequence ending with <xs:any {_ANY_TEXT}/>")
            continue
        items = [c for c in model.iterchildren(tag=etree.Element)
                 if c.tag != f"{{{XS}}}annotation"]
        last = items[-1] if items else None
        if last is None or last.tag != f"{{{XS}}}any":
            s.add("trailing-any", path, line_of(last if last is not None else model),
                  f"{label} does not end with <xs:any {_ANY_TEXT}/>")
            continue
        wrong = [f'{k}="{last.get(k)}"' if last.get(k) is not None else f"no {k}"
                 for k, v in TRAILING_ANY.items() if last.get(k) != v]
        if wrong:
            s.add("trailing-any", path, line_of(last),
                  f"the trailing xs:any of {label} has {', '.join(wrong)}; it must be "
                  f"<xs:any {_ANY_TEXT}/>")


def _outside_documentation(el: etree._Element) -> Iterator[etree._Element]:
    yield el
    for child in el.iterchildren(tag=etree.Element):
        if child.tag not in _DOCUMENTATION:
            yield from _outside_documentation(child)


def check_ascii_names(s: Session, path: Path, root: etree._Element) -> None:
    """No å, ä, ö (or any non-ASCII) in names, namespaces and enumeration values."""
    for el in _outside_documentation(root):
        attrs = ["name", "targetNamespace"]
        if el.tag == f"{{{XS}}}enumeration":
            attrs.append("value")
        for attr in attrs:
            value = el.get(attr)
            if value and not value.isascii():
                odd = "".join(sorted({c for c in value if not c.isascii()}))
                s.add("national-characters", path, line_of(el),
                      f'{etree.QName(el).localname} {attr}="{value}" contains {odd}; RIV-TA '
                      "allows national characters only in comments and documentation")


def check_imports(s: Session, path: Path, root: etree._Element) -> list[Path] | None:
    """Check every import/include of a file; the files they name, or None if any is broken."""
    targets: list[Path] = []
    broken = False
    for imp in root.iter(*_IMPORTS):
        kind = f"{'wsdl' if imp.tag.startswith('{' + WSDL) else 'xs'}:{etree.QName(imp).localname}"
        attr = "location" if kind == "wsdl:import" else "schemaLocation"
        loc = imp.get(attr)
        line = line_of(imp)
        what = f'{kind} of namespace {imp.get("namespace")}' if imp.get("namespace") else kind
        if not loc:
            s.add("import-resolves", path, line,
                  f"{what} has no {attr}; a release must name its files so it is self-contained")
            broken = True
            continue
        if urlsplit(loc).scheme or loc.startswith("/"):
            s.add("import-resolves", path, line,
                  f'{attr}="{loc}" is not a relative path to a file in the release')
            broken = True
            continue
        target = (path.parent / loc).resolve()
        if not target.is_relative_to(s.root):
            s.add("import-resolves", path, line,
                  f'{attr}="{loc}" points outside the service-domain folder {s.root}')
            broken = True
        elif not target.is_file():
            s.add("import-resolves", path, line, f'{attr}="{loc}" does not resolve to a file')
            broken = True
        else:
            imported = s.load(target)
            if imported is None:
                broken = True  # reported as well-formed already
                continue
            targets.append(target)
            want = imp.get("namespace") if kind == "xs:import" else root.get("targetNamespace")
            got = imported.get("targetNamespace")
            if kind != "wsdl:import" and got != want:
                s.add("import-resolves", path, line,
                      f'{attr}="{loc}" has targetNamespace {got!r}, not {want!r}')
                broken = True
    return None if broken else targets


def _imports_clean(s: Session, path: Path, seen: set[Path]) -> bool:
    """True if every file reachable through imports exists, parses and has the right namespace.

    ``seen`` collects the files reached (the schema and everything it imports).
    """
    if path in seen:
        return True
    seen.add(path)
    root = s.load(path)
    if root is None:
        return False
    targets = check_imports(s, path, root)
    return targets is not None and all(_imports_clean(s, t, seen) for t in targets)


# Fingerprints of import closures xmlschema has accepted. xmlschema takes ~50 ms a schema (it
# checks every document against the meta-schema); a process that lints many copies of the same
# files, like the test suite, then pays for that once per distinct set of files.
_XMLSCHEMA_ACCEPTED: set[str] = set()


def _fingerprint(path: Path, closure: set[Path]) -> str:
    digest = hashlib.sha256()
    for p in sorted(closure):
        digest.update(os.path.relpath(p, path.parent).encode() + b"\0")
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def check_compiles(s: Session, path: Path, root: etree._Element) -> None:
    """Compile with libxml2 (what validates on the request path) and with xmlschema (stricter)."""
    closure: set[Path] = set()
    if not _imports_clean(s, path.resolve(), closure):
        return  # the broken import is the finding; compiling would only repeat it
    try:
        etree.XMLSchema(root.getroottree())
    except etree.XMLSchemaParseError as exc:
        errors = list(exc.error_log.filter_from_errors()) or list(exc.error_log)
        for e in errors:
            where = Path(e.filename) if e.filename and Path(e.filename).is_file() else path
            s.add("xsd-compiles", where, e.line or 0, f"libxml2: {e.message}")
        if not errors:
            s.add("xsd-compiles", path, 0, f"libxml2: {exc}")
        return
    fingerprint = _fingerprint(path.resolve(), closure)
    if fingerprint in _XMLSCHEMA_ACCEPTED:
        return
    try:
        xmlschema.XMLSchema(root, base_url=str(path.parent), allow="local", defuse="always")
        _XMLSCHEMA_ACCEPTED.add(fingerprint)
    except xmlschema.XMLSchemaException as exc:
        url = getattr(getattr(getattr(exc, "validator", None), "schema", None), "url", None)
        where = Path(urlsplit(url).path) if url and Path(urlsplit(url).path).is_file() else path
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        s.add("xsd-compiles", where, getattr(exc, "sourceline", None) or 0, f"xmlschema: {message}")
