"""Python message models of the release, compiled at runtime from the XSDs (see xsd_compile).

    from interactions.models import message_class, type_class, from_element, to_element

    req = from_element(envelope.payload)                # a message_class("GetListing") instance
    req.personId.extension, req.actor.actorType        # attributes are the XSD local names
    II = type_class("IIType")
    resp = message_class("GetListingCountyResponse")(
        listingCounties=[II(root="1.2.752.129.2.2.1.18", extension="08")], resultCode="OK")
    el = to_element(resp)                               # {…GetListingCountyResponder:2}…Response

The classes are spyne ``ComplexModel`` subclasses. They are read and written by
``RivXmlDocument`` (and its SOAP sibling ``interactions.spyne_glue.RivSoap11``), which, unlike
spyne's own XmlDocument, matches children by full QName, refuses elements the type does not
allow, keeps wildcard content (``any_``), writes the 2.1 extension fields in their namespace
and writes naive times. ``from_element``/``to_element`` use the very same code as a spyne
producer does.

``any_`` holds the original lxml elements of the input (not copies); writing copies them, so an
instance can be written any number of times. Reading checks names, counts and value syntax
(``MessageError``, a spyne Client fault); writing checks required fields, enumerations and
Python types (``ValueError``/``TypeError``). Patterns, lengths and cross-field rules are the
XSD validator's job (interactions.validation).
"""

from __future__ import annotations

import datetime as dt
from copy import deepcopy
from functools import cache
from typing import Any

from lxml import etree
from spyne.const.xml import XSI
from spyne.error import Fault, ValidationError
from spyne.model.primitive import DateTime
from spyne.protocol.xml import XmlDocument

from interactions.contracts import DOMAIN_EXT_NS, DOMAIN_NS
from interactions.xsd_compile import (
    AnyElements,
    Field,
    RivComplexModel,
    compile_release,
)

__all__ = [
    "MessageError",
    "RivComplexModel",
    "RivXmlDocument",
    "RivXmlMixin",
    "UnknownModelError",
    "from_element",
    "message_class",
    "to_element",
    "type_class",
]

MONITORING_NS = "urn:riv:itintegration:monitoring:1"
# Prefixes for the namespaces a message's children use (only the used ones are kept).
PREFIXES = {"core": DOMAIN_NS, "ext": DOMAIN_EXT_NS, "mon": MONITORING_NS}
XSI_NIL = XSI("nil")


class UnknownModelError(LookupError):
    """No compiled class has that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class MessageError(ValidationError):
    """An element that does not fit its model (a SOAP Client fault when raised in a producer)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        text = f"line {line}: {message}" if line else message
        Fault.__init__(self, "Client.ValidationError", text)

    def __str__(self) -> str:
        return self.faultstring

    __repr__ = Fault.__repr__


def _local(qname: str) -> str:
    return qname.rsplit("}", 1)[-1]


def _bool_from_text(text: str) -> bool:
    # spyne reads anything but "true"/"1" as False; XSD allows exactly these four.
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError("not an xs:boolean (true, false, 1 or 0)")


class RivXmlMixin:
    """QName-exact reading and writing of compiled models, for any spyne XmlDocument protocol.

    Mixed in before an ``XmlDocument`` subclass (``RivXmlDocument``, ``RivSoap11``); it only
    adds handlers for ``RivComplexModel`` and ``AnyElements`` and a naive DateTime writer, so
    spyne's other types behave as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # cdict lookups are cached: register before the first lookup.
        self.serialization_handlers[RivComplexModel] = self.riv_complex_to_parent
        self.serialization_handlers[AnyElements] = self.any_elements_to_parent
        self.deserialization_handlers[RivComplexModel] = self.riv_complex_from_element
        self._to_unicode_handlers[DateTime] = self._naive_datetime_to_unicode

    # -- reading -----------------------------------------------------------------------------

    def riv_complex_from_element(self, ctx: Any, cls: type[RivComplexModel],
                                 elt: etree._Element) -> RivComplexModel:
        orig = cls.__orig__ or cls
        inst = orig()  # absent fields None, repeated ones []
        by_qname = orig._riv_by_qname
        wildcard = orig._riv_wildcard
        seen: set[str] = set()
        for child in elt:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comments, processing instructions
            f = by_qname.get(tag)
            if f is None:
                if wildcard is not None and wildcard.wildcard.is_matching(tag):
                    inst.any_.append(child)
                    continue
                raise MessageError(
                    f"{_local(elt.tag)}: element {tag} is not allowed here; "
                    f"{orig.get_type_name()} has {', '.join(f.attr for f in orig._riv_fields)}",
                    child.sourceline)
            # (no field of the release is nillable: the attribute is looked up only for one)
            if f.type.Attributes.nillable and child.get(XSI_NIL) in ("true", "1"):
                value = None
            elif f.kind == "complex":
                value = self.riv_complex_from_element(ctx, f.type, child)
            else:
                value = self._riv_simple_from_element(f, child)
            if f.repeated:
                getattr(inst, f.attr).append(value)
            elif f.attr in seen:
                raise MessageError(f"{_local(elt.tag)}: element {tag} occurs more than once",
                                   child.sourceline)
            else:
                seen.add(f.attr)
                setattr(inst, f.attr, value)
        for f in orig._riv_required:
            have = len(getattr(inst, f.attr)) if f.repeated else int(f.attr in seen)
            if have < f.min_occurs:
                raise MessageError(f"{_local(elt.tag)}: required element {f.qname} is missing",
                                   elt.sourceline)
        return inst

    def _riv_simple_from_element(self, f: Field, child: etree._Element) -> Any:
        text = child.text or ""
        kind = f.kind
        try:
            if kind == "string":
                return text  # strings keep their whitespace
            text = text.strip()  # the other builtins collapse it
            if kind == "boolean":
                return _bool_from_text(text)
            if kind == "integer":
                return int(text)
            if kind == "datetime" and len(text) == 19:  # the release's zone-less form
                return dt.datetime.fromisoformat(text)
            return self.from_unicode(f.type, text)
        except (ValueError, TypeError, ArithmeticError, Fault) as exc:
            detail = getattr(exc, "faultstring", None) or str(exc)
            raise MessageError(f"{f.attr}: {text!r} is not a valid value ({detail})",
                               child.sourceline) from None

    # -- writing -----------------------------------------------------------------------------

    def riv_complex_to_parent(self, ctx: Any, cls: type[RivComplexModel], inst: Any,
                              parent: Any, ns: str | None, name: str | None = None,
                              **_: Any) -> None:
        orig = cls.__orig__ or cls
        qname = orig._riv_qname or (f"{{{ns}}}{name or orig.get_type_name()}" if ns
                                    else name or orig.get_type_name())
        if not isinstance(parent, etree._Element):
            raise TypeError("compiled models are written into lxml elements, not streamed")
        elt = etree.SubElement(parent, qname, nsmap=_nsmap(qname))
        self.riv_write_members(orig, inst, elt)

    def riv_write_members(self, cls: type[RivComplexModel], inst: Any,
                          elt: etree._Element) -> None:
        """Write ``inst``'s fields as children of ``elt``, in schema order."""
        if not isinstance(inst, cls):
            raise TypeError(f"{_local(elt.tag)} must be a {cls.get_type_name()} instance, "
                            f"not {type(inst).__name__}")
        for f in cls._riv_fields:
            value = getattr(inst, f.attr, None)
            if f.qname is None:  # wildcard content, written back unchanged
                for extra in value or ():
                    if not isinstance(extra, etree._Element):
                        raise TypeError(f"{cls.get_type_name()}.any_ holds lxml elements, "
                                        f"not {type(extra).__name__}")
                    elt.append(deepcopy(extra))
                continue
            if value is None:
                if f.min_occurs and not f.repeated:
                    if f.type.Attributes.nillable:
                        etree.SubElement(elt, f.qname, {XSI_NIL: "true"})
                        continue
                    raise ValueError(f"{cls.get_type_name()}.{f.attr} is required "
                                     f"(element {f.qname})")
                continue
            if f.repeated:
                if not isinstance(value, (list, tuple)):
                    raise TypeError(f"{cls.get_type_name()}.{f.attr} repeats: give a list, "
                                    f"not {type(value).__name__}")
                if len(value) < f.min_occurs:
                    raise ValueError(f"{cls.get_type_name()}.{f.attr} needs at least "
                                     f"{f.min_occurs} item(s)")
                values = value
            else:
                values = (value,)
            for v in values:
                child = etree.SubElement(elt, f.qname)
                if f.kind == "complex":
                    self.riv_write_members(f.type.__orig__ or f.type, v, child)
                else:
                    child.text = self._riv_simple_text(cls, f, v)

    def _riv_simple_text(self, cls: type[RivComplexModel], f: Field, value: Any) -> str:
        kind = f.kind
        if kind == "string":
            if not isinstance(value, str):
                raise TypeError(f"{cls.get_type_name()}.{f.attr} is a string, "
                                f"not {type(value).__name__}")
            allowed = f.type.Attributes.values
            if allowed and value not in allowed:
                raise ValueError(f"{cls.get_type_name()}.{f.attr} is {value!r}; "
                                 f"allowed: {', '.join(allowed)}")
            return value
        if kind == "boolean" and isinstance(value, bool):
            return "true" if value else "false"
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if kind == "datetime" and isinstance(value, dt.datetime):
            return self._naive_datetime_to_unicode(f.type, value)
        if kind in ("boolean", "integer", "datetime"):
            raise TypeError(f"{cls.get_type_name()}.{f.attr} is xs:{kind}, "
                            f"not {type(value).__name__} ({value!r})")
        return self.to_unicode(f.type, value)

    def any_elements_to_parent(self, ctx: Any, cls: Any, inst: etree._Element, parent: Any,
                               ns: str | None, name: str | None = None, **_: Any) -> None:
        parent.append(deepcopy(inst))

    def _naive_datetime_to_unicode(self, cls: Any, value: dt.datetime, **_: Any) -> str:
        attrs = self.get_cls_attrs(cls)
        if not attrs.timezone:
            value = value.replace(tzinfo=None)
        if getattr(attrs, "whole_seconds", False):
            value = value.replace(microsecond=0)
        return value.isoformat()  # no fraction when microsecond == 0


class RivXmlDocument(RivXmlMixin, XmlDocument):
    """spyne's XmlDocument with the QName-exact handlers of ``RivXmlMixin``."""


def _nsmap(qname: str) -> dict[str | None, str]:
    ns = etree.QName(qname).namespace
    nsmap: dict[str | None, str] = {p: u for p, u in PREFIXES.items() if u != ns}
    if ns:
        nsmap[None] = ns
    return nsmap


@cache
def _protocol() -> RivXmlDocument:
    return RivXmlDocument()


@cache
def _message_names() -> dict[str, list[str]]:
    """Local name → QNames of the message elements with that name (one, unless two majors of
    a contract are ever served side by side)."""
    names: dict[str, list[str]] = {}
    for qname in compile_release().messages:
        names.setdefault(_local(qname), []).append(qname)
    return names


def message_class(name: str) -> type[RivComplexModel]:
    """The class of a root element: "CreateListing", "GetListingResponse", or "{ns}local"."""
    messages = compile_release().messages
    if name.startswith("{"):
        qname = name
    else:
        candidates = _message_names().get(name, [name])
        if len(candidates) > 1:
            raise UnknownModelError(f"{name!r} is ambiguous; give one of {candidates}")
        qname = candidates[0]
    cls = messages.get(qname)
    if cls is None:
        raise UnknownModelError(f"no message element {name!r} in the contracts; known: "
                                f"{', '.join(sorted(_message_names()))}")
    return cls


def type_class(name: str, namespace: str = DOMAIN_NS) -> type[RivComplexModel]:
    """The class of a named complex type, e.g. type_class("IIType")."""
    types = compile_release().types
    cls = types.get(f"{{{namespace}}}{name}")
    if cls is None:
        known = sorted(_local(q) for q in types if etree.QName(q).namespace == namespace)
        raise UnknownModelError(f"no complex type {name!r} in {namespace}; known there: "
                                f"{', '.join(known) or '(none)'}")
    return cls


def from_element(el: etree._Element) -> RivComplexModel:
    """Read a message element (request or response body) into its model instance."""
    cls = compile_release().messages.get(el.tag) if isinstance(el.tag, str) else None
    if cls is None:
        raise MessageError(f"no message model for element {el.tag}: not a root element of "
                           "any contract in interactions/", el.sourceline)
    return _protocol().riv_complex_from_element(None, cls, el)


def to_element(obj: RivComplexModel) -> etree._Element:
    """Write a message instance as its root element (right QName, tidy namespace prefixes)."""
    qname = getattr(type(obj), "_riv_qname", None)
    if not isinstance(obj, RivComplexModel) or qname is None:
        raise TypeError(f"to_element needs a message instance (message_class(...)), "
                        f"not {type(obj).__name__}")
    root = etree.Element(qname, nsmap=_nsmap(qname))
    _protocol().riv_write_members(type(obj), obj, root)
    etree.cleanup_namespaces(root)
    return root
