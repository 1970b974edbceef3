"""Serve RIV-TA BP 2.1 contracts with spyne, using the compiled models of interactions.models.

A producer is a spyne ``ServiceBase`` whose methods are decorated with ``riv_operation``; the
request and response are exactly the contract's root elements (no spyne wrapper elements), and
requests are dispatched on the body element's QName (spyne would dispatch on
``{Application.tns}<method name>``, which a RIV-TA request never matches)::

    from spyne import ServiceBase
    from interactions.models import message_class
    from interactions.spyne_glue import logical_address, riv_operation, riv_wsgi_application

    class GetListingCountyService(ServiceBase):
        @riv_operation("GetListingCounty")
        def GetListingCounty(ctx, request):            # request: message_class("GetListingCounty")
            county = logical_address(ctx)              # the LogicalAddress header
            return message_class("GetListingCountyResponse")(resultCode="OK")

    wsgi = riv_wsgi_application([GetListingCountyService])   # a WSGI callable

What ``RivSoap11`` (the in and out protocol ``riv_application`` sets) adds to spyne's Soap11:

- the request bytes are parsed by interactions.xmlload (size cap, no DOCTYPE/entities): a bad
  document is a ``Client`` SOAP fault, not spyne's HTML error page;
- the body element is validated against the release's own XSDs (interactions.validation), which
  spyne's generated schema cannot express (``xs:any ##other``): ``Client.SchemaValidationError``;
- a request without the ``LogicalAddress`` header is a ``Client`` fault (RIV-TA BP 2.1);
- models are read and written QName-exactly by the handlers of ``RivXmlMixin``;
- an operation that wrote and checked its response (``write_response`` + ``keep_written``)
  has it sent as written, not written again.

``riv_wsgi_application`` serves it with ``RivWsgiApplication``: spyne's WSGI server without
the per-request work a RIV-TA producer never uses (see there); the answers are the same.

Serve the contract's own WSDL, not spyne's (python-soap-notes.md). No business logic here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from inspect import isgenerator
from itertools import chain
from time import time
from typing import Any

import spyne.server.wsgi
from lxml import etree
from spyne import Application, EventManager, ServiceBase, rpc
from spyne.application import get_fault_string_from_exception
from spyne.auxproc import process_contexts
from spyne.const.http import HTTP_200
from spyne.context import EventContext, ProtocolContext
from spyne.error import Fault, RequestTooLongError
from spyne.protocol.http import HttpRpc
from spyne.protocol.soap import Soap11
from spyne.server.http import HttpTransportContext
from spyne.server.wsgi import (
    WsgiApplication,
    WsgiMethodContext,
    WsgiTransportContext,
    _get_http_headers,
)

from interactions.contracts import REGISTRY_NS
from interactions.models import RivComplexModel, RivXmlMixin, message_class, to_element
from interactions.validation import validate_element
from interactions.xmlload import DEFAULT_MAX_BYTES, XmlInputError, parse_bytes

__all__ = ["RivSoap11", "RivWsgiApplication", "keep_written", "logical_address",
           "riv_application", "riv_operation", "riv_wsgi_application", "write_response"]

LOGICAL_ADDRESS = f"{{{REGISTRY_NS}}}LogicalAddress"
APP_TNS = "urn:listning:spyne"  # spyne needs one; RIV-TA dispatch never uses it


class RivSoap11(RivXmlMixin, Soap11):
    """spyne's SOAP 1.1 protocol for RIV-TA BP 2.1 producers (see the module docstring)."""

    def __init__(self, *args: Any, validate: bool = True, require_logical_address: bool = True,
                 max_bytes: int = DEFAULT_MAX_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.riv_validate = validate
        self.require_logical_address = require_logical_address
        self.max_bytes = max_bytes
        self._dispatch: dict[str, list[Any]] | None = None
        self._envelope_template: etree._Element | None = None
        env_ns = self.ns_soap_env
        self._envelope_tag, self._header_tag, self._body_tag, self._fault_tag = (
            f"{{{env_ns}}}{local}" for local in ("Envelope", "Header", "Body", "Fault"))

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        # As spyne's Soap11: SOAP over HTTP is a POST with a content type.
        if isinstance(ctx.transport, HttpTransportContext) and (
                ctx.transport.get_request_content_type() is None
                or ctx.transport.get_request_method() != "POST"):
            ctx.transport.resp_code = "405 Method Not Allowed"
            raise Fault("Client.RequestNotAllowed",
                        "You must issue a POST request with the Content-Type header set.")
        chunks = list(ctx.in_string)  # RivWsgiApplication: one chunk
        data = chunks[0] if len(chunks) == 1 and isinstance(chunks[0], bytes) else \
            b"".join(s if isinstance(s, bytes) else s.encode("utf-8") for s in chunks)
        try:
            root = parse_bytes(data, max_bytes=self.max_bytes)
        except XmlInputError as exc:
            raise Fault(f"Client.XmlInputError.{exc.kind}", str(exc)) from None
        ctx.in_document = (root, {})  # (envelope, xml ids) as spyne's own parser gives it

    def decompose_incoming_envelope(self, ctx: Any, message: Any = Soap11.REQUEST) -> None:
        # spyne's Soap11 version, with its faults, but without its two XPath evaluations per
        # request (a tenth of the stack's time; python-soap-notes.md), and a request Body whose
        # first node is a comment, a PI or nothing is a Client fault (spyne: an HTTP 500).
        envelope = ctx.in_document[0]
        if envelope.tag != self._envelope_tag:
            raise Fault("Client.SoapError", f"No {self._envelope_tag} element was found!")
        header = body = None
        for child in envelope:
            tag = child.tag
            if tag == self._header_tag:
                header = child if header is None else header
            elif tag == self._body_tag:
                body = child if body is None else body
        for node in [] if body is None else [n for n in body if not isinstance(n.tag, str)]:
            body.remove(node)
        if body is None or len(body) == 0:
            raise Fault("Client.SoapError", "soap:Body has no request element")
        ctx.in_document = envelope
        payload = body[0]
        if payload.tag == self._fault_tag:
            ctx.in_body_doc = payload
        else:
            ctx.in_header_doc = None if header is None else list(header)
            ctx.in_body_doc = payload
            ctx.method_request_string = payload.tag
            self.validate_body(ctx, message)
        if message is self.REQUEST and self.require_logical_address and \
                logical_address(ctx) is None:
            raise Fault("Client.LogicalAddressMissing",
                        "the request has no LogicalAddress header "
                        f"({LOGICAL_ADDRESS}); RIV-TA BP 2.1 requires one")

    def validate_document(self, payload: Any) -> None:
        if not self.riv_validate:
            return
        problems = validate_element(payload)
        if problems:
            raise Fault("Client.SchemaValidationError", "; ".join(map(str, problems[:3])))

    def serialize(self, ctx: Any, message: Any) -> None:
        """A response the operation already wrote and checked (``keep_written``) goes out as
        that element, in an envelope declaring only the SOAP prefix. spyne's own way builds the
        envelope with its interface's 15 namespace declarations, writes the response a second
        time and then removes the unused declarations: together about half of the stack's
        time. The bytes sent are the same. Faults and anything else: spyne's way."""
        written = getattr(getattr(ctx, "outprot_ctx", None), "riv_written", None)
        if (message is not self.RESPONSE or written is None or ctx.out_error is not None
                or ctx.out_header is not None or not ctx.out_object
                or written[0] is not ctx.out_object[0]):
            super().serialize(ctx, message)
            return
        self.event_manager.fire_event("before_serialize", ctx)
        element = written[1]
        body = element.getparent()
        if body is None or body.tag != self._body_tag or len(body) != 1:
            body = self.new_response_body()
            body.append(element)
        ctx.out_document = body.getparent()
        ctx.out_body_doc = body
        self.event_manager.fire_event("after_serialize", ctx)

    def new_response_body(self) -> etree._Element:
        """The soap:Body of a new response envelope (declaring only the SOAP prefix)."""
        template = self._envelope_template
        if template is None:
            env_ns = self.ns_soap_env
            prefix = next((p for p, u in self.app.interface.nsmap.items() if u == env_ns),
                          "soap11env")
            template = etree.Element(f"{{{env_ns}}}Envelope", nsmap={prefix: env_ns})
            etree.SubElement(template, self._body_tag)
            self._envelope_template = template
        # lxml's __copy__ copies the whole tree into a new document (as deepcopy, without
        # copy.deepcopy's Python layers): half the cost of building the envelope anew
        return template.__copy__()[0]

    def get_context(self, parent: Any, transport: Any) -> ProtocolContext:
        return _RivProtocolContext(parent, transport)

    def generate_method_contexts(self, ctx: Any) -> list[Any]:
        """As spyne's, but a method without auxiliary methods runs in ``ctx`` itself: spyne
        copies the context for every handle (``copy.copy`` and five re-parentings a request)
        and drops the original."""
        call_handles = self.get_call_handles(ctx)
        if len(call_handles) != 1:
            return super().generate_method_contexts(ctx)  # none (its fault) or a fan-out
        ctx.descriptor = call_handles[0]
        return [ctx]

    def get_call_handles(self, ctx: Any) -> list[Any]:
        """Dispatch on the body element's QName: the contract's request element."""
        if self._dispatch is None:
            table: dict[str, list[Any]] = {}
            for descriptor in self.app.interface.method_id_map.values():
                in_cls = descriptor.in_message.__orig__ or descriptor.in_message
                qname = getattr(in_cls, "_riv_qname", None)
                if qname is not None:
                    table.setdefault(qname, []).append(descriptor)
            self._dispatch = table
        found = self._dispatch.get(ctx.method_request_string)
        if found is None:  # a method not made with riv_operation: spyne's own rule
            return super().get_call_handles(ctx)
        return found


class _RivProtocolContext(ProtocolContext):
    """spyne's ProtocolContext with its table of sub-contexts made on first use. spyne makes it
    for every context, as a defaultdict whose factory refers back to the context: a reference
    cycle per protocol per request, left for the cyclic garbage collector (nothing on the
    RIV-TA path asks for a sub-context)."""

    def __init__(self, parent: Any, transport: Any, type_: Any = None) -> None:
        self.parent = parent
        self.itself = transport
        self.type = type_

    def __getitem__(self, item: Any) -> Any:
        subctx = self.__dict__.get("_subctx")
        if subctx is None:
            parent, transport, type_ = self.parent, self.itself, self.type
            subctx = self._subctx = defaultdict(
                lambda: self.__class__(parent, transport, type_))
        return subctx[item]


class _EventManager(EventManager):
    """spyne's EventManager, without building an empty ordered set for every event fired with
    no listener (17 events a request, none of them listened to here)."""

    def fire_event(self, event_name: str, ctx: Any, *args: Any, **kwargs: Any) -> None:
        handlers = self.handlers.get(event_name)
        if handlers is not None:
            for handler in handlers:
                handler(ctx, *args, **kwargs)


def _cheap_events(*owners: Any) -> None:
    """Make the event managers of ``owners`` ``_EventManager``s (same handlers, same order;
    the objects stay the same, so listeners added later are seen)."""
    for owner in owners:
        manager = getattr(owner, "event_manager", None)
        if type(manager) is EventManager:
            manager.__class__ = _EventManager


class RivWsgiTransportContext(WsgiTransportContext):
    """spyne's WSGI transport context, with ``headers`` (the ``HTTP_*`` environ entries, each
    logged at DEBUG) worked out when first read instead of on every request: nothing on the
    RIV-TA request path reads them."""

    def __init__(self, parent: Any, transport: Any, req_env: dict[str, Any],
                 content_type: str) -> None:
        HttpTransportContext.__init__(self, parent, transport, req_env, content_type)
        self.req_env = self.req
        self.req_method = req_env.get("REQUEST_METHOD")

    @property
    def headers(self) -> dict[str, list[str]]:
        headers = self.__dict__.get("_riv_headers")
        if headers is None:
            headers = self.__dict__["_riv_headers"] = _get_http_headers(self.req_env)
        return headers

    @headers.setter
    def headers(self, value: dict[str, list[str]]) -> None:
        self.__dict__["_riv_headers"] = value


class RivWsgiMethodContext(WsgiMethodContext):
    """spyne's WSGI method context, built without its ~40 guarded attribute writes.

    ``MethodContext.__init__`` assigns each attribute through its ``__setattr__`` guard (a
    Python call each); here the same attributes, with the same values, go into ``__dict__`` in
    one update, and the same event fires at the same point (before the transport is set, as
    in ``HttpMethodContext``). tests/contract/test_spyne_glue_fast_paths.py checks that the
    attributes are spyne's own."""

    HttpTransportContext = RivWsgiTransportContext

    def __init__(self, transport: Any, req_env: dict[str, Any], content_type: str) -> None:
        app = transport.app
        d = self.__dict__
        d.update(_CONTEXT_DEFAULTS)
        d["call_start"] = time()
        d["app"] = app
        d["transport"] = None
        d["files"] = []
        d["pusher_stack"] = []
        d["_in_protocol"] = app.in_protocol
        d["_out_protocol"] = app.out_protocol
        d["outprot_ctx"] = None if app.out_protocol is None else \
            app.out_protocol.get_context(self, transport)
        d["inprot_ctx"] = None if app.in_protocol is None else \
            app.in_protocol.get_context(self, transport)
        d["protocol"] = d["inprot_ctx"]  # a server context reads first
        d["event"] = EventContext(self)
        d["riv_alone"] = False  # the only context of its request (RivWsgiApplication)
        self.fire_event("method_context_created")
        d["transport"] = self.HttpTransportContext(self, transport, req_env, content_type)

    def fire_event(self, event: str, *args: Any, **kwargs: Any) -> None:
        # MethodContext.fire_event, reading the descriptor without its property and not
        # calling managers that have no listener at all
        manager = self.app.event_manager
        if manager.handlers:
            manager.fire_event(event, self, *args, **kwargs)
        desc = self._MethodContext__descriptor
        if desc is not None:
            for manager in desc.event_managers:
                if manager.handlers:
                    manager.fire_event(event, self, *args, **kwargs)


# MethodContext.__init__'s constant initial values (the per-request ones are set above).
_CONTEXT_DEFAULTS: dict[str, Any] = {
    "call_end": None, "is_closed": False, "udc": None, "aux": None,
    "method_request_string": None, "active": False, "_MethodContext__descriptor": None,
    "in_string": None, "in_document": None, "in_header_doc": None, "in_body_doc": None,
    "in_error": None, "in_header": None, "in_object": None, "out_object": None,
    "out_header": None, "out_error": None, "out_body_doc": None, "out_header_doc": None,
    "out_document": None, "out_string": None, "out_stream": None, "function": None,
    "locale": None, "frozen": True,
}

_wsgi_log = logging.getLogger(spyne.server.wsgi.__name__)  # spyne's handle_rpc logs there


class RivWsgiApplication(WsgiApplication):
    """spyne's WsgiApplication, minus per-request work a RIV-TA producer never uses.

    - ``__call__``: spyne rebuilds the request URL on every call (``_reconstruct_url``: four
      ``quote`` calls) but uses it only for WSDL requests, which are GETs;
    - ``handle_rpc``: spyne's own, step for step, with ``RivWsgiMethodContext`` and, for a
      ``RivSoap11`` application, the body read in one piece without parsing the content type
      for a charset (``RivSoap11`` hands lxml the bytes; the XML declaration names the
      encoding);
    - the event managers of the server, the application, its protocols and its services fire
      without building an empty set per event (``_EventManager``);
    - a request's context is not copied (``RivSoap11.generate_method_contexts``) and, once
      answered, no longer refers to itself, so it is freed at once (no cyclic garbage).

    tests/contract/test_spyne_glue_fast_paths.py holds it to spyne's own WsgiApplication:
    the same statuses, headers, bytes and events.
    """

    def __init__(self, app: Application, *args: Any, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        services = {d.service_class for d in app.interface.method_id_map.values()}
        _cheap_events(self, app, app.in_protocol, app.out_protocol, *services)

    def __call__(self, req_env: dict[str, Any], start_response: Callable[..., Any],
                 wsgi_url: str | None = None) -> Iterable[bytes]:
        if req_env.get("REQUEST_METHOD") == "POST":  # never a WSDL request (is_wsdl_request)
            return self.handle_rpc(req_env, start_response)
        return super().__call__(req_env, start_response, wsgi_url)

    def handle_rpc(self, req_env: dict[str, Any],
                   start_response: Callable[..., Any]) -> Iterable[bytes]:
        initial_ctx = RivWsgiMethodContext(self, req_env, self.app.out_protocol.mime_type)
        result = self._riv_handle_rpc(initial_ctx, req_env, start_response)
        if initial_ctx.riv_alone and isinstance(initial_ctx.out_string, (list, tuple)):
            # Answered (the bytes are made) and closed, no auxiliary context runs on: its parts
            # (transport, protocol and event contexts) no longer point back to it, so the
            # request (its documents and models with it) is freed now by reference counting
            # rather than by the cyclic garbage collector (about 60 objects a request).
            for part in (initial_ctx.transport, initial_ctx.inprot_ctx, initial_ctx.outprot_ctx,
                         initial_ctx.event):
                if part is not None:
                    part.parent = None
        return result

    def _riv_handle_rpc(self, initial_ctx: RivWsgiMethodContext, req_env: dict[str, Any],
                        start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.event_manager.fire_event("wsgi_call", initial_ctx)
        charset = None
        if isinstance(self.app.in_protocol, RivSoap11):
            initial_ctx.in_string = self._riv_body(req_env)
        else:  # another protocol may want the charset: spyne's own reader
            initial_ctx.in_string, charset = \
                self._WsgiApplication__reconstruct_wsgi_request(req_env)

        contexts = self.generate_contexts(initial_ctx, charset)
        p_ctx, others = contexts[0], contexts[1:]
        initial_ctx.riv_alone = p_ctx is initial_ctx and not others
        p_ctx.active = True
        if p_ctx.in_error:
            return self.handle_error(p_ctx, others, p_ctx.in_error, start_response)

        self.get_in_object(p_ctx)
        if p_ctx.in_error:
            _wsgi_log.error(p_ctx.in_error)
            return self.handle_error(p_ctx, others, p_ctx.in_error, start_response)

        self.get_out_object(p_ctx)
        if p_ctx.out_error:
            return self.handle_error(p_ctx, others, p_ctx.out_error, start_response)

        assert p_ctx.out_object is not None
        g = next(iter(p_ctx.out_object))
        if len(p_ctx.out_object) == 1 and isgenerator(g):  # as spyne: run to the first yield
            p_ctx.out_object = (chain((next(g),), g),)

        transport = p_ctx.transport
        if transport.resp_code is None:
            transport.resp_code = HTTP_200
        try:
            self.get_out_string(p_ctx)
        except Exception as e:
            _wsgi_log.exception(e)
            p_ctx.out_error = Fault("Server", get_fault_string_from_exception(e))
            return self.handle_error(p_ctx, others, p_ctx.out_error, start_response)

        if isinstance(p_ctx.out_protocol, HttpRpc) and p_ctx.out_header_doc is not None:
            transport.resp_headers.update(p_ctx.out_header_doc)
        if p_ctx.descriptor and p_ctx.descriptor.mtom:
            out_type_info = p_ctx.descriptor.out_message._type_info
            if len(out_type_info) == 1:
                p_ctx.out_object = [p_ctx.out_object]
            transport.resp_headers, p_ctx.out_string = spyne.server.wsgi.apply_mtom(
                transport.resp_headers, p_ctx.out_string, out_type_info.values(),
                p_ctx.out_object)

        self.event_manager.fire_event("wsgi_return", p_ctx)
        if self.chunked:
            transport.resp_headers.pop("Content-Length", None)
        else:
            p_ctx.out_string = ["".join(p_ctx.out_string)]
        try:  # noqa: SIM105 (no context manager on the hot path)
            transport.resp_headers["Content-Length"] = \
                str(sum([len(a) for a in p_ctx.out_string]))
        except TypeError:
            pass  # a generator: no length

        start_response(transport.resp_code,
                       spyne.server.wsgi._gen_http_headers(transport.resp_headers))
        retval = chain(p_ctx.out_string, self._WsgiApplication__finalize(p_ctx))
        try:
            process_contexts(self, others, p_ctx, error=None)
        except Exception as e:
            _wsgi_log.exception(e)  # as spyne: auxiliary methods' errors are only reported
        return retval

    def _riv_body(self, req_env: dict[str, Any]) -> Iterator[bytes]:
        """The body as spyne reads it (at most CONTENT_LENGTH bytes; ``RequestTooLongError``,
        a Client fault, over ``max_content_length``), in one read rather than 8 KiB blocks. A
        generator, so that the fault is raised where spyne's is: while the protocol reads."""
        istream = req_env.get("wsgi.input")
        length_text = str(req_env.get("CONTENT_LENGTH", self.max_content_length))
        length = int(length_text) if length_text else 0
        if length > self.max_content_length:
            raise RequestTooLongError()
        done = 0
        while done < length:
            data = istream.read(length - done)  # type: ignore[union-attr]
            if not data:
                break
            done += len(data)
            yield data


def logical_address(ctx: Any) -> str | None:
    """The text of the request's LogicalAddress header, or None if there is none."""
    for el in ctx.in_header_doc or ():
        if el.tag == LOGICAL_ADDRESS:
            return (el.text or "").strip()
    return None


def write_response(ctx: Any, response: RivComplexModel) -> etree._Element:
    """``to_element(response)``, written straight into the body of a new response envelope
    when ``ctx``'s out protocol is a ``RivSoap11`` (what ``RivSoap11.serialize`` sends after
    ``keep_written``: no second document, no move)."""
    protocol = getattr(ctx, "out_protocol", None)
    if isinstance(protocol, RivSoap11):
        return to_element(response, protocol.new_response_body())
    return to_element(response)


def keep_written(ctx: Any, response: RivComplexModel, element: Any) -> None:
    """Have the response sent as ``element`` (``to_element(response)`` or
    ``write_response(ctx, response)``, which the operation wrote to check it) instead of
    written again by spyne. The element must not change after this; ``RivSoap11.serialize``
    sends it in its envelope (moved into a new one if it is not in one)."""
    if getattr(ctx, "outprot_ctx", None) is not None:
        ctx.outprot_ctx.riv_written = (response, element)


def riv_operation(contract: str) -> Callable[[Callable[..., Any]], Any]:
    """Decorate ``def <Contract>(ctx, request) -> response`` as the contract's operation.

    The request is the contract's root element (``message_class(contract)``) and the method
    must return a ``message_class(contract + "Response")`` instance; anything else becomes a
    ``Server`` fault instead of a malformed response.
    """
    request_cls = message_class(contract)
    response_cls = message_class(f"{contract}Response")

    def decorate(func: Callable[..., Any]) -> Any:
        def checked(ctx: Any, request: RivComplexModel) -> RivComplexModel:
            response = func(ctx, request)
            if not isinstance(response, response_cls):
                raise TypeError(f"{func.__name__} returned {type(response).__name__}, "
                                f"not a {response_cls.get_type_name()}")
            return response

        checked.__name__ = func.__name__
        checked.__qualname__ = func.__qualname__
        checked.__doc__ = func.__doc__
        return rpc(request_cls, _returns=response_cls, _body_style="bare",
                   _args=("request",),
                   _in_message_name=request_cls._riv_qname,
                   _out_message_name=response_cls._riv_qname)(checked)

    return decorate


def riv_application(services: Iterable[type[ServiceBase]], *, name: str = "Listning",
                    validate: bool = True, require_logical_address: bool = True,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Application:
    """A spyne Application speaking RIV-TA BP 2.1 SOAP 1.1 for ``riv_operation`` methods."""

    def protocol() -> RivSoap11:
        return RivSoap11(validate=validate, require_logical_address=require_logical_address,
                         max_bytes=max_bytes)

    return Application(list(services), tns=APP_TNS, name=name,
                       in_protocol=protocol(), out_protocol=protocol())


def riv_wsgi_application(services: Iterable[type[ServiceBase]], *,
                         max_bytes: int = DEFAULT_MAX_BYTES,
                         **options: Any) -> RivWsgiApplication:
    """``riv_application`` behind spyne's WSGI server, with one body cap for both.

    (spyne's WsgiApplication would otherwise refuse bodies over 2 MiB itself, below the
    platform's 15 MiB.) ``options`` are riv_application's keywords.
    """
    app = riv_application(services, max_bytes=max_bytes, **options)
    return RivWsgiApplication(app, max_content_length=max_bytes)
