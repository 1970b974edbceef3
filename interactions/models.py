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
import threading
from collections.abc import Callable
from copy import deepcopy
from functools import cache
from typing import Any, TypeVar

from lxml import etree
from spyne.const.xml import XSI
from spyne.error import Fault, ValidationError
from spyne.model.primitive import DateTime
from spyne.protocol.xml import XmlDocument

from interactions.contracts import DOMAIN_EXT_NS, DOMAIN_NS
from interactions.xsd_compile import (
    ANY_FIELD,
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
XSI_TYPE = XSI("type")


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


class RivXmlMixin:
    """QName-exact reading and writing of compiled models, for any spyne XmlDocument protocol.

    Mixed in before an ``XmlDocument`` subclass (``RivXmlDocument``, ``RivSoap11``); it only
    adds handlers for ``RivComplexModel`` and ``AnyElements`` and a naive DateTime writer, so
    spyne's other types behave as before. The work is done by each class's compiled reader
    and writer (``_reader``/``_writer`` below), the same whichever protocol asks.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # cdict lookups are cached: register before the first lookup.
        self.serialization_handlers[RivComplexModel] = self.riv_complex_to_parent
        self.serialization_handlers[AnyElements] = self.any_elements_to_parent
        self.deserialization_handlers[RivComplexModel] = self.riv_complex_from_element
        self._to_unicode_handlers[DateTime] = self._naive_datetime_to_unicode

    # -- reading -----------------------------------------------------------------------------

    def from_element(self, ctx: Any, cls: Any, element: etree._Element) -> Any:
        # A compiled class goes straight to its reader: spyne's from_element would look up its
        # class attributes (logging at DEBUG), xsi:nil and xsi:type, and its handler. With
        # either attribute present, spyne's way, as before.
        if isinstance(cls, type) and issubclass(cls, RivComplexModel) and \
                element.get(XSI_NIL) is None and element.get(XSI_TYPE) is None:
            return _reader(cls)(element)
        return super().from_element(ctx, cls, element)  # type: ignore[misc]

    def riv_complex_from_element(self, ctx: Any, cls: type[RivComplexModel],
                                 elt: etree._Element) -> RivComplexModel:
        return _reader(cls)(elt)

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
        _writer(orig)(inst, elt)

    def riv_write_members(self, cls: type[RivComplexModel], inst: Any,
                          elt: etree._Element) -> None:
        """Write ``inst``'s fields as children of ``elt``, in schema order."""
        _writer(cls.__orig__ or cls)(inst, elt)

    def any_elements_to_parent(self, ctx: Any, cls: Any, inst: etree._Element, parent: Any,
                               ns: str | None, name: str | None = None, **_: Any) -> None:
        parent.append(deepcopy(inst))

    def _naive_datetime_to_unicode(self, cls: Any, value: dt.datetime, **_: Any) -> str:
        attrs = self.get_cls_attrs(cls)
        return _naive_isoformat(value, attrs.timezone, getattr(attrs, "whole_seconds", False))


def _naive_isoformat(value: dt.datetime, timezone: bool, whole_seconds: bool) -> str:
    if not timezone:
        value = value.replace(tzinfo=None)
    if whole_seconds:
        value = value.replace(microsecond=0)
    return value.isoformat()  # no fraction when microsecond == 0


# -- compiled readers and writers --------------------------------------------------------------
#
# Reading and writing a message walks the same class tree every time; working out per element
# which field a child is, what kind of value it holds and how often it may occur was most of
# the producer stack's mapping cost. Each class gets one reader (a function generated from its
# ``_riv_fields``) and one writer (a table of closures, kinds decided once), built on first use
# and kept for the process. Classes are immutable once compiled, so neither goes stale.

_Reader = Callable[[etree._Element], Any]
_Writer = Callable[[Any, etree._Element], None]

_READERS: dict[type, _Reader] = {}
_WRITERS: dict[type, _Writer] = {}
_BUILD_LOCK = threading.RLock()  # a half-built table must never be visible to another thread
# A scalar field that was present but read as None (xs:nil, or a converter that gave None):
# it counts as present for the duplicate and required checks, and becomes None at the end.
_PRESENT_NONE = object()


_F = TypeVar("_F")


def _compiled(cls: type[RivComplexModel], table: dict[type, _F],
              build: Callable[[type, dict[type, _F]], _F]) -> _F:
    """``cls``'s reader or writer from ``table``, built (with those of its member classes)
    on first use and published all at once."""
    orig = cls.__orig__ or cls
    done = table.get(orig)
    if done is None:
        with _BUILD_LOCK:
            building: dict[type, _F] = {}
            done = build(orig, building)
            table.update(building)
    return done


def _reader(cls: type[RivComplexModel]) -> _Reader:
    return _compiled(cls, _READERS, _build_reader)


def _writer(cls: type[RivComplexModel]) -> _Writer:
    return _compiled(cls, _WRITERS, _build_writer)


def _invalid(attr: str, text: str, detail: str, child: etree._Element) -> MessageError:
    return MessageError(f"{attr}: {text!r} is not a valid value ({detail})", child.sourceline)


def _leaf_reader(f: Field) -> _Reader:
    """Text of a non-string simple-typed element → its Python value (MessageError if it is
    not one). Strings are read inline by the generated readers, whitespace and all."""
    attr, kind, model = f.attr, f.kind, f.type

    if kind == "boolean":
        def read(child: etree._Element) -> Any:
            text = (child.text or "").strip()  # the other builtins collapse whitespace
            if text in ("true", "1"):  # spyne reads anything else as False; XSD: these four
                return True
            if text in ("false", "0"):
                return False
            raise _invalid(attr, text, "not an xs:boolean (true, false, 1 or 0)", child)
        return read

    if kind == "integer":
        def read(child: etree._Element) -> Any:
            text = (child.text or "").strip()
            try:
                return int(text)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _invalid(attr, text, str(exc), child) from None
        return read

    def read(child: etree._Element) -> Any:
        text = (child.text or "").strip()
        try:
            if kind == "datetime" and len(text) == 19:  # the release's zone-less form
                return dt.datetime.fromisoformat(text)
            return _protocol().from_unicode(model, text)
        except (ValueError, TypeError, ArithmeticError, Fault) as exc:
            detail = getattr(exc, "faultstring", None) or str(exc)
            raise _invalid(attr, text, detail, child) from None
    return read


def _build_reader(orig: type[RivComplexModel], building: dict[type, _Reader]) -> _Reader:
    """Generate the reader of ``orig``: one function with the class's fields unrolled.

    The function's text is made from ``_riv_fields`` (each field a local variable and a branch
    comparing the child's tag with the field's QName), so reading a child costs one or a few
    string comparisons and an assignment, with none of a generic reader's lookups and
    unpacking. Converters, nested readers and the error texts are the helpers below; the
    checks are the ones a generic reader makes, in the same order: unknown elements (the
    wildcard's or an error) and duplicates as they come, then required fields, in schema
    order."""
    done = _READERS.get(orig) or building.get(orig)
    if done is not None:
        return done
    fields = [f for f in orig._riv_fields if f.qname is not None]
    wildcard = orig._riv_wildcard.wildcard if orig._riv_wildcard is not None else None
    env: dict[str, Any] = {"new": object.__new__, "orig": orig, "wildcard": wildcard,
                           "_PRESENT_NONE": _PRESENT_NONE, "_duplicate": _duplicate,
                           "_not_allowed": _not_allowed, "_missing": _missing}
    # As RivComplexModel.__init__ with no arguments: absent scalars None, repeated fields []
    # (the instance's attributes in the same order: scalars, then lists).
    names = {f.attr: f"v{i}" for i, f in enumerate(fields)}
    if orig._riv_wildcard is not None:
        names[ANY_FIELD] = "any_"
    lines = ["def read(elt):"]
    lines += [f"    {names[a]} = None" for a in orig._riv_scalars]
    lines += [f"    {names[a]} = []" for a in orig._riv_lists]
    lines += ["    for child in elt:", "        tag = child.tag"]
    for i, f in enumerate(fields):
        var = names[f.attr]
        env[f"q{i}"] = f.qname
        lines.append(f"        {'if' if i == 0 else 'elif'} tag == q{i}:")
        if f.kind == "string" and not f.type.Attributes.nillable:
            value = "(child.text or '')"
        else:
            value = f"r{i}(child)"  # filled in below (a nested type may be this one)
        if f.repeated:
            lines.append(f"            {var}.append({value})")
        else:
            lines += [f"            if {var} is not None:",
                      "                raise _duplicate(elt, tag, child)",
                      f"            {var} = {value}"]
    lines.append(f"        {'elif' if fields else 'if'} isinstance(tag, str):"
                 "  # (comments and processing instructions are skipped)")
    if wildcard is not None:
        lines += ["            if wildcard.is_matching(tag):",
                  "                any_.append(child)",
                  "            else:",
                  "                raise _not_allowed(elt, tag, child, orig)"]
    else:
        lines.append("            raise _not_allowed(elt, tag, child, orig)")
    for f in orig._riv_required:
        var = names[f.attr]
        test = f"len({var}) < {f.min_occurs}" if f.repeated else f"{var} is None"
        lines += [f"    if {test}:", f"        raise _missing(elt, {f.qname!r})"]
    may_be_none = [f for f in fields if not f.repeated
                   and (f.type.Attributes.nillable or f.kind == "other")]
    for f in may_be_none:  # present but None: see _PRESENT_NONE
        var = names[f.attr]
        lines += [f"    if {var} is _PRESENT_NONE:", f"        {var} = None"]
    lines += ["    inst = new(orig)", "    d = inst.__dict__"]
    lines += [f"    d[{a!r}] = {names[a]}" for a in (*orig._riv_scalars, *orig._riv_lists)]
    lines.append("    return inst")
    # Generated from our own compiled schema (names, QNames, counts), never from input.
    exec(compile("\n".join(lines), f"<reader of {orig.get_type_name()}>", "exec"), env)  # noqa: S102
    read: _Reader = env["read"]
    building[orig] = read
    for i, f in enumerate(fields):
        if f.kind == "string" and not f.type.Attributes.nillable:
            continue  # inlined
        value_reader: _Reader | None
        if f.kind == "complex":
            value_reader = _build_reader(f.type.__orig__ or f.type, building)
        elif f.kind == "string":
            value_reader = None
        else:
            value_reader = _leaf_reader(f)
        if f.type.Attributes.nillable:  # (no field of the release is nillable)
            value_reader = _nillable(value_reader, f.repeated)
        if f in may_be_none:
            value_reader = _none_as_present(value_reader)
        env[f"r{i}"] = value_reader
    return read


def _duplicate(elt: etree._Element, tag: str, child: etree._Element) -> MessageError:
    return MessageError(f"{_local(elt.tag)}: element {tag} occurs more than once",
                        child.sourceline)


def _not_allowed(elt: etree._Element, tag: str, child: etree._Element,
                 cls: type[RivComplexModel]) -> MessageError:
    return MessageError(f"{_local(elt.tag)}: element {tag} is not allowed here; "
                        f"{cls.get_type_name()} has "
                        f"{', '.join(f.attr for f in cls._riv_fields)}", child.sourceline)


def _missing(elt: etree._Element, qname: str) -> MessageError:
    return MessageError(f"{_local(elt.tag)}: required element {qname} is missing",
                        elt.sourceline)


def _nillable(value_reader: _Reader | None, repeated: bool) -> _Reader:
    def read(child: etree._Element) -> Any:
        if child.get(XSI_NIL) in ("true", "1"):
            return None
        return (child.text or "") if value_reader is None else value_reader(child)
    return read


def _none_as_present(value_reader: _Reader | None) -> _Reader:
    def read(child: etree._Element) -> Any:
        value = (child.text or "") if value_reader is None else value_reader(child)
        return _PRESENT_NONE if value is None else value
    return read


def _leaf_writer(cls: type[RivComplexModel], f: Field) -> Callable[[Any], str]:
    """Python value of a simple-typed field → its text (TypeError/ValueError if unfit)."""
    where, kind, model = f"{cls.get_type_name()}.{f.attr}", f.kind, f.type

    if kind == "string":
        allowed = model.Attributes.values
        allowed_set = frozenset(allowed or ())

        def text(value: Any) -> str:
            if not isinstance(value, str):
                raise TypeError(f"{where} is a string, not {type(value).__name__}")
            if allowed_set and value not in allowed_set:
                raise ValueError(f"{where} is {value!r}; allowed: {', '.join(allowed)}")
            return value
        return text

    if kind in ("boolean", "integer", "datetime"):
        protocol = _protocol()
        attrs = protocol.get_cls_attrs(model)
        timezone, whole_seconds = attrs.timezone, getattr(attrs, "whole_seconds", False)

        def text(value: Any) -> str:
            if kind == "boolean" and isinstance(value, bool):
                return "true" if value else "false"
            if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if kind == "datetime" and isinstance(value, dt.datetime):
                return _naive_isoformat(value, timezone, whole_seconds)
            raise TypeError(f"{where} is xs:{kind}, not {type(value).__name__} ({value!r})")
        return text

    def text(value: Any) -> str:
        return _protocol().to_unicode(model, value)
    return text


def _build_writer(orig: type[RivComplexModel], building: dict[type, _Writer]) -> _Writer:
    done = _WRITERS.get(orig) or building.get(orig)
    if done is not None:
        return done
    type_name = orig.get_type_name()
    # (attr, qname, child writer | None, leaf text | None, min_occurs, repeated, nillable);
    # filled after registration (recursive types).
    plan: list[tuple[str, str | None, _Writer | None, Callable[[Any], str] | None,
                     int, bool, bool]] = []
    sub_element = etree.SubElement

    def write(inst: Any, elt: etree._Element) -> None:
        if not isinstance(inst, orig):
            raise TypeError(f"{_local(elt.tag)} must be a {type_name} instance, "
                            f"not {type(inst).__name__}")
        for attr, qname, child_writer, leaf_text, min_occurs, repeated, nillable in plan:
            value = getattr(inst, attr, None)
            if qname is None:  # wildcard content, written back unchanged
                for extra in value or ():
                    if not isinstance(extra, etree._Element):
                        raise TypeError(f"{type_name}.any_ holds lxml elements, "
                                        f"not {type(extra).__name__}")
                    elt.append(deepcopy(extra))
                continue
            if value is None:
                if min_occurs and not repeated:
                    if nillable:
                        sub_element(elt, qname, {XSI_NIL: "true"})
                        continue
                    raise ValueError(f"{type_name}.{attr} is required (element {qname})")
                continue
            if repeated:
                if not isinstance(value, (list, tuple)):
                    raise TypeError(f"{type_name}.{attr} repeats: give a list, "
                                    f"not {type(value).__name__}")
                if len(value) < min_occurs:
                    raise ValueError(f"{type_name}.{attr} needs at least "
                                     f"{min_occurs} item(s)")
                for v in value:
                    child = sub_element(elt, qname)
                    if child_writer is not None:
                        child_writer(v, child)
                    else:
                        child.text = leaf_text(v)  # type: ignore[misc]
            else:
                child = sub_element(elt, qname)
                if child_writer is not None:
                    child_writer(value, child)
                else:
                    child.text = leaf_text(value)  # type: ignore[misc]

    building[orig] = write
    for f in orig._riv_fields:
        nillable = bool(f.type.Attributes.nillable)
        if f.qname is None:
            plan.append((f.attr, None, None, None, 0, True, nillable))
        elif f.kind == "complex":
            plan.append((f.attr, f.qname, _build_writer(f.type.__orig__ or f.type, building),
                         None, f.min_occurs, f.repeated, nillable))
        else:
            plan.append((f.attr, f.qname, None, _leaf_writer(orig, f), f.min_occurs,
                         f.repeated, nillable))
    return write


class RivXmlDocument(RivXmlMixin, XmlDocument):
    """spyne's XmlDocument with the QName-exact handlers of ``RivXmlMixin``."""


@cache
def _nsmap(qname: str) -> dict[str | None, str]:
    """Namespace declarations for a written root element (shared: do not modify)."""
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
    return _reader(cls)(el)


def to_element(obj: RivComplexModel, parent: etree._Element | None = None) -> etree._Element:
    """Write a message instance as its root element (right QName, tidy namespace prefixes).

    With ``parent`` (a soap:Body, say) the element is written as its last child, with the same
    declarations: cheaper than writing a document of its own and moving it there."""
    qname = getattr(type(obj), "_riv_qname", None)
    if not isinstance(obj, RivComplexModel) or qname is None:
        raise TypeError(f"to_element needs a message instance (message_class(...)), "
                        f"not {type(obj).__name__}")
    root = etree.Element(qname, nsmap=_nsmap(qname)) if parent is None else \
        etree.SubElement(parent, qname, nsmap=_nsmap(qname))
    try:
        _writer(type(obj))(obj, root)
    except BaseException:
        if parent is not None:
            parent.remove(root)  # no half-written message left in the parent
        raise
    etree.cleanup_namespaces(root)
    return root
