"""Rules for one ``<Contract>Interaction`` folder: names, the Responder schema and the WSDL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from interactions.contracts import REGISTRY_NS, RIV_PROFILE
from interactions.lint_base import (
    SOAP11_BINDING,
    SOAP12_BINDING,
    SOAP_HTTP,
    WSDL,
    XS,
    Session,
    line_of,
    qname,
)
from interactions.lint_schema import check_ascii_names, check_imports, check_schema

XSD_NAME = re.compile(r"^(?P<contract>[A-Z][A-Za-z0-9]*)Responder_(?P<version>\d+\.\d+)\.xsd$")
WSDL_NAME = re.compile(
    r"^(?P<contract>[A-Z][A-Za-z0-9]*)Interaction_(?P<version>\d+\.\d+)_RIVTABP21\.wsdl$"
)
_DOMAIN = r"(?P<domain>[a-z][a-z0-9]*(?::[a-z][a-z0-9]*)*)"
_CONTRACT = r"(?P<contract>[A-Z][A-Za-z0-9]*)"
RESPONDER_NS = re.compile(rf"^urn:riv:{_DOMAIN}:{_CONTRACT}Responder:(?P<major>\d+)$")
WSDL_NS = re.compile(rf"^urn:riv:{_DOMAIN}:{_CONTRACT}:(?P<major>\d+):{RIV_PROFILE}$")


def _w(local: str) -> str:
    return f"{{{WSDL}}}{local}"


def _soap(local: str) -> str:
    return f"{{{SOAP11_BINDING}}}{local}"


@dataclass
class _Interaction:
    folder: Path
    contract: str
    version: str
    xsd: Path | None
    wsdl: Path | None
    domain: str | None = None
    responder_ns: str | None = None  # the namespace the Responder schema actually has

    @property
    def major(self) -> str:
        return self.version.split(".")[0]


def check_interaction(s: Session, folder: Path) -> None:
    it = _identify(s, folder)
    if it is None:
        return
    xsd_root = s.load(it.xsd) if it.xsd else None
    wsdl_root = s.load(it.wsdl) if it.wsdl else None
    if xsd_root is not None and xsd_root.tag != f"{{{XS}}}schema":
        s.add("well-formed", it.xsd, line_of(xsd_root), "the root element is not xs:schema")
        xsd_root = None
    if wsdl_root is not None and wsdl_root.tag != _w("definitions"):
        s.add("well-formed", it.wsdl, line_of(wsdl_root),
              "the root element is not wsdl:definitions")
        wsdl_root = None
    it.domain = _domain(xsd_root, wsdl_root)
    if xsd_root is not None:
        check_schema(s, it.xsd, xsd_root)
        _responder(s, it, xsd_root)
    if wsdl_root is not None:
        check_ascii_names(s, it.wsdl, wsdl_root)
        check_imports(s, it.wsdl, wsdl_root)
        _wsdl(s, it, wsdl_root)


def _identify(s: Session, folder: Path) -> _Interaction | None:
    """Contract and version from the file names, and the file-name and folder-name rules."""
    xsds = sorted(folder.glob("*.xsd"))
    wsdls = sorted(folder.glob("*.wsdl"))
    named = [(p, XSD_NAME.match(p.name)) for p in xsds]
    named += [(p, WSDL_NAME.match(p.name)) for p in wsdls]
    good = [(p, m) for p, m in named if m]
    if good:
        contract, version = good[0][1]["contract"], good[0][1]["version"]
    elif folder.name.endswith("Interaction") and len(folder.name) > len("Interaction"):
        contract, version = folder.name.removesuffix("Interaction"), None
    else:
        s.add("folder-name", folder, 0, "an interaction folder is named <Contract>Interaction and "
              "holds <Contract>Responder_<m.n>.xsd and <Contract>Interaction_<m.n>_RIVTABP21.wsdl")
        return None
    want_xsd = f"{contract}Responder_{version or '<m.n>'}.xsd"
    want_wsdl = f"{contract}Interaction_{version or '<m.n>'}_{RIV_PROFILE.upper()}.wsdl"
    for path, m in named:
        if m is None:
            want = want_xsd if path.suffix == ".xsd" else want_wsdl
            s.add("file-name", path, 0, f"the file should be named {want}")
        elif (m["contract"], m["version"]) != (contract, version):
            s.add("file-name", path, 0, f"the file names disagree: this one says contract "
                  f"{m['contract']} {m['version']}, {good[0][0].name} says {contract} {version}")
    for kind, found, want in (("schema", xsds, want_xsd), ("WSDL", wsdls, want_wsdl)):
        if len(found) != 1:
            s.add("file-name", folder, 0,
                  f"expected exactly one {kind} ({want}); found {len(found)}")
    if folder.name != f"{contract}Interaction":
        s.add("folder-name", folder, 0,
              f"the folder of contract {contract} should be named {contract}Interaction")
    if version is None:
        return None
    # The file of the right name when there are several, so the rest of the rules still run.
    xsd = next((p for p, m in named if m and p.suffix == ".xsd"), xsds[0] if xsds else None)
    wsdl = next((p for p, m in named if m and p.suffix == ".wsdl"), wsdls[0] if wsdls else None)
    return _Interaction(folder, contract, version, xsd, wsdl)


def _domain(xsd_root: etree._Element | None, wsdl_root: etree._Element | None) -> str | None:
    """The service domain, from whichever namespace is well formed (Responder schema first)."""
    for root, pattern in ((xsd_root, RESPONDER_NS), (wsdl_root, WSDL_NS)):
        m = pattern.match(root.get("targetNamespace") or "") if root is not None else None
        if m:
            return m["domain"]
    return None


def _responder(s: Session, it: _Interaction, root: etree._Element) -> None:
    path, c = it.xsd, it.contract
    tns = root.get("targetNamespace")
    it.responder_ns = tns
    if it.domain is None:
        s.add("responder-namespace", path, line_of(root),
              f"targetNamespace {tns!r} is not of the form "
              f"urn:riv:<domain>:{c}Responder:{it.major}")
    elif tns != (want := f"urn:riv:{it.domain}:{c}Responder:{it.major}"):
        s.add("responder-namespace", path, line_of(root),
              f"targetNamespace is {tns!r}; expected {want!r} (major version {it.major} "
              "from the file name)")
    globals_ = {el.get("name"): el for el in root.iterchildren(f"{{{XS}}}element")}
    for name in (c, f"{c}Response"):
        el = globals_.get(name)
        if el is None:
            s.add("root-elements", path, line_of(root),
                  f"the schema does not declare the root element {name}")
            continue
        want_type = f"{{{tns}}}{name}Type"
        got = qname(el, el.get("type"))
        if got != want_type:
            shown = el.get("type") or "an anonymous type"
            s.add("root-types", path, line_of(el),
                  f"root element {name} is of {shown}; it must be of the named type {name}Type")
    for el in root.iterchildren(f"{{{XS}}}element", f"{{{XS}}}attribute"):
        if el.get("name") not in (c, f"{c}Response"):
            s.add("venetian-blind", path, line_of(el),
                  f"global {etree.QName(el).localname} {el.get('name')}: only the root elements "
                  f"{c} and {c}Response may be global (Venetian blind); declare it inside a type")


def _wsdl(s: Session, it: _Interaction, root: etree._Element) -> None:
    path, c = it.wsdl, it.contract
    tns = root.get("targetNamespace")
    if it.domain is None:
        s.add("wsdl-namespace", path, line_of(root), f"targetNamespace {tns!r} is not of the form "
              f"urn:riv:<domain>:{c}:{it.major}:{RIV_PROFILE}")
    elif tns != (want := f"urn:riv:{it.domain}:{c}:{it.major}:{RIV_PROFILE}"):
        s.add("wsdl-namespace", path, line_of(root),
              f"targetNamespace is {tns!r}; expected {want!r}")
    responder_ns = it.responder_ns or (
        f"urn:riv:{it.domain}:{c}Responder:{it.major}" if it.domain else None)
    _types(s, path, root, tns, responder_ns)
    request, response = _messages(s, path, root, tns, c)
    _port_type(s, path, root, tns, c)
    header_part = _request_parts(s, path, request, responder_ns, c)
    _response_parts(s, path, response, responder_ns, c)
    header = (f"{{{tns}}}{request.get('name')}", header_part) if request is not None else None
    _binding(s, path, root, tns, c, responder_ns, header)
    _service(s, path, root, tns, c)
    for el in root.iter(f"{{{SOAP12_BINDING}}}*"):
        s.add("soap-binding", path, line_of(el),
              f"soap12:{etree.QName(el).localname}: RIV-TA BP 2.1 is SOAP 1.1 only")


def _types(s: Session, path: Path, root: etree._Element, tns: str | None,
           responder_ns: str | None) -> None:
    schemas = root.findall(f"{_w('types')}/{{{XS}}}schema")
    if not schemas:
        s.add("types-namespace", path, line_of(root),
              "wsdl:types holds no xs:schema importing the Responder and registry schemas")
        return
    imported = set()
    for schema in schemas:
        if schema.get("targetNamespace") != tns:
            got = schema.get("targetNamespace")
            has = f"targetNamespace {got!r}" if got else "no targetNamespace"
            s.add("types-namespace", path, line_of(schema),
                  f"the xs:schema in wsdl:types has {has}; it must carry the WSDL's, {tns!r}")
        imported |= {i.get("namespace") for i in schema.iterchildren(f"{{{XS}}}import")}
    if REGISTRY_NS not in imported:
        s.add("logical-address-header", path, line_of(schemas[0]),
              f"wsdl:types does not import {REGISTRY_NS}: the LogicalAddress header is undefined")
    if responder_ns and responder_ns not in imported:
        s.add("body-part", path, line_of(schemas[0]),
              f"wsdl:types does not import the Responder schema ({responder_ns})")


def _messages(s: Session, path: Path, root: etree._Element, tns: str | None,
              c: str) -> tuple[etree._Element | None, etree._Element | None]:
    messages = {m.get("name"): m for m in root.iterchildren(_w("message"))}
    wanted = (f"{c}Request", f"{c}Response")
    for name, m in messages.items():
        if name not in wanted:
            s.add("message-names", path, line_of(m),
                  f"message {name}: the messages are named {wanted[0]} and {wanted[1]}")
    for name in wanted:
        if name not in messages:
            s.add("message-names", path, line_of(root), f"there is no message {name}")
    # Follow the operation's references, so a misnamed message is still checked for its parts.
    op = root.find(f"{_w('portType')}/{_w('operation')}")
    found: list[etree._Element | None] = []
    for io, name in (("input", wanted[0]), ("output", wanted[1])):
        ref = op.find(_w(io)) if op is not None else None
        target = qname(ref, ref.get("message")) if ref is not None else None
        if ref is not None and target != f"{{{tns}}}{name}":
            s.add("message-names", path, line_of(ref),
                  f"the operation's {io} is message {ref.get('message')}; expected tns:{name}")
        local = target.rpartition("}")[2] if target else name
        found.append(messages.get(local))
    return found[0], found[1]


def _port_type(s: Session, path: Path, root: etree._Element, tns: str | None, c: str) -> None:
    port_types = root.findall(_w("portType"))
    if len(port_types) != 1:
        s.add("one-operation", path, line_of(root),
              f"expected one portType with one operation; found {len(port_types)} portTypes")
    for pt in port_types:
        if pt.get("name") != f"{c}ResponderInterface":
            s.add("wsdl-names", path, line_of(pt),
                  f"portType is named {pt.get('name')}; expected {c}ResponderInterface")
        ops = pt.findall(_w("operation"))
        if len(ops) != 1:
            s.add("one-operation", path, line_of(pt),
                  f"portType {pt.get('name')} has {len(ops)} operations; RIV-TA allows exactly one")
        for op in ops:
            if op.get("name") != c:
                s.add("wsdl-names", path, line_of(op),
                      f"operation is named {op.get('name')}; expected {c}")


def _request_parts(s: Session, path: Path, message: etree._Element | None,
                   responder_ns: str | None, c: str) -> str | None:
    """Check the request's parts; the name of its LogicalAddress header part, if it has one."""
    if message is None:
        return None
    logical_address = f"{{{REGISTRY_NS}}}LogicalAddress"
    parts = message.findall(_w("part"))
    headers = [p for p in parts if qname(p, p.get("element")) == logical_address]
    if not parts or parts[0] not in headers:
        where = headers[0] if headers else message
        s.add("logical-address-header", path, line_of(where),
              f"the first part of message {message.get('name')} must be the element "
              f"{logical_address}")
    body = [p for p in parts if p not in headers]
    _body_part(s, path, message, body, responder_ns, c)
    return headers[0].get("name") if headers else None


def _response_parts(s: Session, path: Path, message: etree._Element | None,
                    responder_ns: str | None, c: str) -> None:
    if message is not None:
        _body_part(s, path, message, message.findall(_w("part")), responder_ns, f"{c}Response")


def _body_part(s: Session, path: Path, message: etree._Element, parts: list[etree._Element],
               responder_ns: str | None, element: str) -> None:
    name = message.get("name")
    if len(parts) != 1:
        s.add("body-part", path, line_of(message),
              f"message {name} must have exactly one body part, named parameters; "
              f"found {len(parts)}")
        return
    part = parts[0]
    if part.get("name") != "parameters":
        s.add("body-part", path, line_of(part),
              f"the body part of {name} is named {part.get('name')}; it must be named parameters")
    want = f"{{{responder_ns}}}{element}"
    if responder_ns and qname(part, part.get("element")) != want:
        s.add("body-part", path, line_of(part),
              f"the body part of {name} is {part.get('element') or part.get('type')}; "
              f"it must be the element {want}")


def _binding(s: Session, path: Path, root: etree._Element, tns: str | None, c: str,
             responder_ns: str | None, header: tuple[str, str | None] | None) -> None:
    bindings = root.findall(_w("binding"))
    if not bindings:
        s.add("soap-binding", path, line_of(root), "the WSDL has no binding")
    port_types = {f"{{{tns}}}{pt.get('name')}" for pt in root.findall(_w("portType"))}
    for b in bindings:
        if b.get("name") != f"{c}ResponderBinding":
            s.add("wsdl-names", path, line_of(b),
                  f"binding is named {b.get('name')}; expected {c}ResponderBinding")
        if qname(b, b.get("type")) not in port_types:
            s.add("wsdl-names", path, line_of(b),
                  f"binding type {b.get('type')} names no portType of this WSDL")
        sb = b.find(_soap("binding"))
        if sb is None:
            s.add("soap-binding", path, line_of(b), "the binding has no SOAP 1.1 soap:binding")
        else:
            if sb.get("style", "document") != "document":
                s.add("soap-binding", path, line_of(sb),
                      f'soap:binding style="{sb.get("style")}"; RIV-TA requires document')
            if sb.get("transport") != SOAP_HTTP:
                s.add("soap-binding", path, line_of(sb),
                      f"soap:binding transport is {sb.get('transport')!r}; expected {SOAP_HTTP}")
        ops = b.findall(_w("operation"))
        if len(ops) != 1:
            s.add("one-operation", path, line_of(b),
                  f"binding {b.get('name')} has {len(ops)} operations; RIV-TA allows exactly one")
        for op in ops:
            _binding_operation(s, path, op, c, responder_ns, header)


def _binding_operation(s: Session, path: Path, op: etree._Element, c: str,
                       responder_ns: str | None, header: tuple[str, str | None] | None) -> None:
    so = op.find(_soap("operation"))
    want_action = f"{responder_ns}:{c}" if responder_ns else None
    if so is None or (want_action and so.get("soapAction") != want_action):
        got = "no soap:operation" if so is None else f"soapAction={so.get('soapAction')!r}"
        s.add("soap-action", path, line_of(so if so is not None else op),
              f"{got}; expected soapAction={want_action!r} (Responder namespace + ':' + {c})")
    if so is not None and so.get("style", "document") != "document":
        s.add("soap-binding", path, line_of(so),
              f'soap:operation style="{so.get("style")}"; RIV-TA requires document')
    for io in ("input", "output"):
        el = op.find(_w(io))
        body = el.find(_soap("body")) if el is not None else None
        if body is None:
            s.add("soap-binding", path, line_of(el if el is not None else op),
                  f"the binding's {io} has no SOAP 1.1 soap:body")
            continue
        if body.get("use") != "literal" or body.get("encodingStyle"):
            s.add("soap-binding", path, line_of(body),
                  f'the {io} soap:body must be use="literal" without encodingStyle '
                  "(document/literal)")
        if io == "input":
            _input_header(s, path, el, body, header)


def _input_header(s: Session, path: Path, el: etree._Element, body: etree._Element,
                  header: tuple[str, str | None] | None) -> None:
    """The input binds the request's LogicalAddress part as soap:header, the rest as body."""
    message, part = header or (None, None)
    if body.get("parts") is None and part:
        s.add("body-part", path, line_of(body), 'the input soap:body needs parts="parameters", '
              "or the LogicalAddress part would travel in the body too")
    elif body.get("parts") is not None and body.get("parts") != "parameters":
        s.add("body-part", path, line_of(body),
              f'the input soap:body has parts="{body.get("parts")}"; expected parts="parameters"')
    if not part:
        return  # no LogicalAddress part: already a finding on the message
    bound = [h for h in el.findall(_soap("header"))
             if h.get("part") == part and qname(h, h.get("message")) == message]
    if not bound:
        local = (message or "").rpartition("}")[2]
        s.add("logical-address-header", path, line_of(el),
              f'the input binds no soap:header message="tns:{local}" part="{part}"; '
              "the LogicalAddress travels in the SOAP header")
    for h in bound:
        if h.get("use") != "literal":
            s.add("soap-binding", path, line_of(h), 'the soap:header must be use="literal"')


def _service(s: Session, path: Path, root: etree._Element, tns: str | None, c: str) -> None:
    bindings = {f"{{{tns}}}{b.get('name')}" for b in root.findall(_w("binding"))}
    for svc in root.findall(_w("service")):
        if svc.get("name") != f"{c}ResponderService":
            s.add("wsdl-names", path, line_of(svc),
                  f"service is named {svc.get('name')}; expected {c}ResponderService")
        if svc.find(_w("port")) is None:
            s.add("wsdl-names", path, line_of(svc), f"service has no port {c}ResponderPort")
        for port in svc.findall(_w("port")):
            if port.get("name") != f"{c}ResponderPort":
                s.add("wsdl-names", path, line_of(port),
                      f"port is named {port.get('name')}; expected {c}ResponderPort")
            if qname(port, port.get("binding")) not in bindings:
                s.add("wsdl-names", path, line_of(port),
                      f"port binding {port.get('binding')} names no binding of this WSDL")
            if port.find(_soap("address")) is None:
                s.add("soap-binding", path, line_of(port), "the port has no SOAP 1.1 soap:address")
    if root.find(_w("service")) is None:
        s.add("wsdl-names", path, line_of(root), f"the WSDL has no service {c}ResponderService")
