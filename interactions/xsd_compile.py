"""Compile the release's XSDs into spyne ``ComplexModel`` classes, with xmlschema.

xmlschema's component model is the reader (spyne's own XSD parser drops elements with anonymous
simple types and every wildcard). The output is one class per named complex type and one per
global message element, with each field's QName, occurrence and facets taken from the schema:

- attribute names are the XSD element local names; repeated elements are lists;
- each global element of the 2.1 extension schema whose appinfo (source ``<ext ns>:extends``)
  names a domain type becomes an optional field of that type, matched and written in the
  extension namespace, after the type's own elements;
- anything else a trailing ``xs:any`` lets in is kept, as lxml elements, in the field ``any_``.

Reading and writing is done by ``interactions.models.RivXmlDocument`` (see there).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import xmlschema
from lxml import etree
from spyne.model import ComplexModel, ModelBase
from spyne.model.complex import ComplexModelMeta
from spyne.model.primitive import (
    AnyUri,
    Boolean,
    Date,
    DateTime,
    Decimal,
    Double,
    Float,
    Integer,
    Integer8,
    Integer16,
    Integer32,
    Integer64,
    Time,
    Unicode,
    UnsignedInteger,
    UnsignedInteger8,
    UnsignedInteger16,
    UnsignedInteger32,
    UnsignedInteger64,
)
from xmlschema.validators import XsdAnyElement, XsdComplexType, XsdElement, XsdGroup

from interactions.contracts import (
    DOMAIN_EXT_NS,
    DOMAIN_NS,
    SCHEMAS_DIR,
    all_contracts,
)

XSD_NS = "http://www.w3.org/2001/XMLSchema"
EXT_XSD = SCHEMAS_DIR / "supportprocess_logistics_carelisting_2.1_ext.xsd"
# The appinfo source by which an extension element names the domain type it extends.
EXTENDS_SOURCE = f"{DOMAIN_EXT_NS}:extends"
ANY_FIELD = "any_"

# Builtin XSD types → spyne types. Anything else is refused at compile time, loudly.
_BUILTINS: dict[str, type[ModelBase]] = {
    "string": Unicode,
    "normalizedString": Unicode,
    "token": Unicode,
    "language": Unicode,
    "NMTOKEN": Unicode,
    "Name": Unicode,
    "NCName": Unicode,
    "ID": Unicode,
    "anyURI": AnyUri,
    "boolean": Boolean,
    "decimal": Decimal,
    "double": Double,
    "float": Float,
    "integer": Integer,
    "nonNegativeInteger": UnsignedInteger,
    "positiveInteger": UnsignedInteger,
    "nonPositiveInteger": Integer,
    "negativeInteger": Integer,
    "long": Integer64,
    "int": Integer32,
    "short": Integer16,
    "byte": Integer8,
    "unsignedLong": UnsignedInteger64,
    "unsignedInt": UnsignedInteger32,
    "unsignedShort": UnsignedInteger16,
    "unsignedByte": UnsignedInteger8,
    "dateTime": DateTime,
    "date": Date,
    "time": Time,
}


class AnyElements(ModelBase):
    """Wildcard content kept as lxml elements, written back unchanged (see RivXmlDocument)."""

    __type_name__ = "anyType"
    __namespace__ = XSD_NS


@dataclass(frozen=True)
class Field:
    """One child of a compiled type, in document order."""

    attr: str  # Python attribute name: the element's local name, or "any_"
    qname: str | None  # "{ns}local"; None for the wildcard
    type: type[ModelBase]  # spyne type (customised with occurrence and facets)
    min_occurs: int
    max_occurs: int | None  # None: unbounded
    is_complex: bool
    wildcard: XsdAnyElement | None = None  # for the ``any_`` field: which namespaces it admits
    kind: str = "other"  # fast-path conversion: string, boolean, integer, datetime, other
    repeated: bool = field(init=False)  # a list in Python (maxOccurs > 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "repeated", self.max_occurs is None or self.max_occurs > 1)


def _kind(model: type[ModelBase]) -> str:
    for base, kind in ((Unicode, "string"), (Boolean, "boolean"), (Integer, "integer"),
                       (DateTime, "datetime")):
        if issubclass(model, base):
            return kind
    return "other"


class RivComplexModel(ComplexModel):
    """Base of every compiled class: keyword construction, lists for repeated elements.

    Unlike spyne's ComplexModel, unknown keywords are an error (a typo would otherwise vanish
    silently), absent fields are None and repeated fields start as empty lists.
    """

    _riv_fields: ClassVar[tuple[Field, ...]] = ()
    _riv_attrs: ClassVar[frozenset[str]] = frozenset()
    _riv_lists: ClassVar[tuple[str, ...]] = ()  # attributes of repeated fields
    _riv_scalars: ClassVar[tuple[str, ...]] = ()
    _riv_by_qname: ClassVar[dict[str, Field]] = {}
    _riv_required: ClassVar[tuple[Field, ...]] = ()  # element fields with minOccurs > 0
    _riv_wildcard: ClassVar[Field | None] = None
    _riv_qname: ClassVar[str | None] = None  # set on message (root element) classes only

    def __init__(self, **kwargs: Any) -> None:
        # spyne's __init__ is not called: it would ignore unknown keywords, and it costs more
        # than everything else in reading a message. Fields are plain instance attributes.
        cls = type(self)
        unknown = kwargs.keys() - cls._riv_attrs
        if unknown:
            raise TypeError(
                f"{cls.get_type_name()} has no element(s) {', '.join(sorted(unknown))}; "
                f"its fields are: {', '.join(f.attr for f in cls._riv_fields)}"
            )
        d = self.__dict__
        for attr in cls._riv_scalars:
            d[attr] = None
        for attr in cls._riv_lists:
            d[attr] = []
        d.update(kwargs)
        for attr in cls._riv_lists:
            if d[attr] is None:
                d[attr] = []


@dataclass
class CompiledRelease:
    """Every class compiled from the release, by QName."""

    types: dict[str, type[RivComplexModel]]  # named complex types
    messages: dict[str, type[RivComplexModel]]  # global complex elements of the contracts
    seconds: float  # wall time taken to load the schemas and build the classes


def _driver_source() -> str:
    # Import every contract's Responder schema and the extension schema (not every contract
    # imports it, but its elements may travel in any wildcard of the release).
    imports = [f'<xs:import namespace="{c.namespace}" schemaLocation="{c.xsd.as_uri()}"/>'
               for c in all_contracts().values()]
    imports.append(f'<xs:import namespace="{DOMAIN_EXT_NS}" schemaLocation="{EXT_XSD.as_uri()}"/>')
    return (f'<xs:schema xmlns:xs="{XSD_NS}" targetNamespace="urn:listning:models-driver">'
            + "".join(imports) + "</xs:schema>")


def load_release_schema() -> xmlschema.XMLSchema:
    """The whole release (contracts, domain, extension, monitoring) as one xmlschema object."""
    return xmlschema.XMLSchema(_driver_source(), base_url=str(SCHEMAS_DIR))


def _builtin_of(xsd_type: Any) -> Any:
    t = xsd_type
    while t is not None and not (t.name and t.name.startswith(f"{{{XSD_NS}}}")):
        if not getattr(t, "is_atomic", lambda: False)():
            break
        t = t.base_type
    return t


def _simple_model(xsd_type: Any, where: str) -> type[ModelBase]:
    builtin = _builtin_of(xsd_type)
    local = etree.QName(builtin.name).localname if builtin is not None and builtin.name else None
    base = _BUILTINS.get(local or "")
    if base is None:
        raise NotImplementedError(
            f"{where}: simple type {xsd_type.name or '(anonymous)'} (base {local}) has no model; "
            "add it to interactions/xsd_compile.py _BUILTINS")
    facets: dict[str, Any] = {}
    if issubclass(base, Unicode):
        if xsd_type.enumeration:
            facets["values"] = list(xsd_type.enumeration)
        if xsd_type.max_length is not None:
            facets["max_len"] = xsd_type.max_length
        if xsd_type.min_length:
            facets["min_len"] = xsd_type.min_length
    patterns = getattr(xsd_type, "patterns", None)
    if patterns is not None and patterns.regexps:
        regexps = list(patterns.regexps)
        facets["pattern"] = regexps[0] if len(regexps) == 1 else "|".join(f"(?:{r})"
                                                                      for r in regexps)
    if base is DateTime:
        # Naive datetimes: the contracts' times are Swedish local time without a zone.
        facets["timezone"] = False
        # A pattern without a fraction (DateTimeType) means whole seconds on the wire.
        facets["whole_seconds"] = "pattern" in facets and "." not in facets["pattern"]
    return base.customize(**facets) if facets else base


class _Compiler:
    def __init__(self, schema: xmlschema.XMLSchema) -> None:
        self.schema = schema
        self.types: dict[str, type[RivComplexModel]] = {}
        self.extensions = self._extension_elements()

    def _extension_elements(self) -> dict[str, list[XsdElement]]:
        """Domain type QName → the extension schema's global elements that extend it."""
        found: dict[str, list[XsdElement]] = {}
        for qname, el in self.schema.maps.elements.items():
            if etree.QName(qname).namespace != DOMAIN_EXT_NS or el.annotation is None:
                continue
            for info in el.annotation.appinfo:
                if info.get("source") == EXTENDS_SOURCE and (info.text or "").strip():
                    target = (info.text or "").strip()
                    if not target.startswith("{"):
                        target = f"{{{DOMAIN_NS}}}{target}"  # unprefixed names: the domain's
                    found.setdefault(target, []).append(el)
        return found

    def named_type(self, xsd_type: XsdComplexType) -> type[RivComplexModel]:
        cls = self.types.get(xsd_type.name)
        if cls is None:
            qn = etree.QName(xsd_type.name)
            cls = self.build(qn.localname, qn.namespace, xsd_type, xsd_type.name)
            self.types[xsd_type.name] = cls
        return cls

    def element_model(self, el: XsdElement, where: str) -> tuple[type[ModelBase], bool]:
        t = el.type
        if t.is_simple():
            return _simple_model(t, where), False
        if t.has_simple_content():
            raise NotImplementedError(f"{where}: complex types with simple content are not "
                                      "supported by interactions/xsd_compile.py")
        if t.name:
            return self.named_type(t), True
        # Anonymous complex type: a class named after its element.
        qn = etree.QName(el.name)
        return self.build(f"{qn.localname}_Type", qn.namespace, t, where), True

    def fields_of(self, xsd_type: XsdComplexType, type_qname: str | None,
                  where: str) -> list[Field]:
        content = xsd_type.content
        if not isinstance(content, XsdGroup):
            return []
        if xsd_type.attributes:
            # RIV-TA types carry no attributes; refuse rather than silently drop any.
            raise NotImplementedError(f"{where}: XML attributes are not supported by "
                                      "interactions/xsd_compile.py")
        fields: list[Field] = []
        for particle in content.iter_elements():
            if isinstance(particle, XsdAnyElement):
                fields.extend(self.extension_fields(type_qname, where))
                fields.append(Field(ANY_FIELD, None,
                                    AnyElements.customize(min_occurs=0, max_occurs="unbounded"),
                                    0, None, False, particle, kind="any"))
                continue
            name = etree.QName(particle.name).localname
            model, is_complex = self.element_model(particle, f"{where}/{name}")
            # The model group's nesting (nested sequences, choices) is flattened: occurrences
            # count per element; full structure checks are the XSD validator's job.
            min_occurs = particle.min_occurs if _in_plain_sequences(particle, content) else 0
            fields.append(self._field(name, particle.name, model, min_occurs,
                                      particle.max_occurs, particle.nillable, is_complex))
        names = [f.attr for f in fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise NotImplementedError(f"{where}: element name(s) {sorted(dupes)} occur twice; "
                                      "such a type cannot be a class with one field per name")
        return fields

    def extension_fields(self, type_qname: str | None, where: str) -> list[Field]:
        result = []
        for el in self.extensions.get(type_qname or "", []):
            name = etree.QName(el.name).localname
            model, is_complex = self.element_model(el, f"{where}/{name}")
            result.append(self._field(name, el.name, model, 0, 1, el.nillable, is_complex))
        return result

    @staticmethod
    def _field(attr: str, qname: str, model: type[ModelBase], min_occurs: int,
               max_occurs: int | None, nillable: bool, is_complex: bool) -> Field:
        ns = etree.QName(qname).namespace
        # spyne's defaults (minOccurs=0, nillable=True) are not XSD's: set both explicitly.
        typed = model.customize(min_occurs=min_occurs,
                                max_occurs="unbounded" if max_occurs is None else max_occurs,
                                nillable=nillable, sub_ns=ns, sub_name=attr)
        return Field(attr, qname, typed, min_occurs, max_occurs, is_complex,
                     kind="complex" if is_complex else _kind(model))

    def build(self, name: str, namespace: str | None, xsd_type: XsdComplexType, where: str,
              element_qname: str | None = None) -> type[RivComplexModel]:
        fields = self.fields_of(xsd_type, xsd_type.name, where)
        attrs: dict[str, Any] = {
            "__namespace__": namespace,
            "__type_name__": name,
            "__module__": __name__,
            "_type_info": [(f.attr, f.type) for f in fields],
            "_riv_fields": tuple(fields),
            "_riv_attrs": frozenset(f.attr for f in fields),
            "_riv_lists": tuple(f.attr for f in fields if f.repeated),
            "_riv_scalars": tuple(f.attr for f in fields if not f.repeated),
            "_riv_by_qname": {f.qname: f for f in fields if f.qname},
            "_riv_required": tuple(f for f in fields if f.qname and f.min_occurs),
            "_riv_wildcard": next((f for f in fields if f.qname is None), None),
            "_riv_qname": element_qname,
        }
        return ComplexModelMeta(name, (RivComplexModel,), attrs)


def _in_plain_sequences(el: XsdElement, group: XsdGroup) -> bool:
    """True if ``el`` sits in nested sequences only (so its own minOccurs is the whole story)."""
    for particle in group:
        if particle is el:
            return group.model == "sequence"
        if isinstance(particle, XsdGroup) and el in list(particle.iter_elements()):
            return group.model == "sequence" and particle.min_occurs > 0 and \
                _in_plain_sequences(el, particle)
    return False


def _message_namespaces() -> set[str]:
    return {c.namespace for c in all_contracts().values()}


_compile_lock = threading.Lock()


@cache
def compile_release() -> CompiledRelease:
    """Load the XSDs and build every class, once per process (classes are compared by identity,
    so two threads must not each build a set)."""
    with _compile_lock:
        return _compile_release_once()


@cache
def _compile_release_once() -> CompiledRelease:
    start = time.perf_counter()
    schema = load_release_schema()
    compiler = _Compiler(schema)
    for qname, xsd_type in schema.maps.types.items():
        if isinstance(xsd_type, XsdComplexType) and not qname.startswith(f"{{{XSD_NS}}}"):
            compiler.named_type(xsd_type)
    messages: dict[str, type[RivComplexModel]] = {}
    namespaces = _message_namespaces()
    for qname, el in schema.maps.elements.items():
        qn = etree.QName(qname)
        if qn.namespace in namespaces and not el.type.is_simple():
            # A class of its own per root element (not the shared type class), so that an
            # instance knows which element it is written as.
            messages[qname] = compiler.build(qn.localname, qn.namespace, el.type, qn.localname,
                                             element_qname=qname)
    return CompiledRelease(compiler.types, messages, time.perf_counter() - start)
