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
- models are read and written QName-exactly by the handlers of ``RivXmlMixin``.

Serve the contract's own WSDL, not spyne's (python-soap-notes.md). No business logic here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree
from spyne import Application, ServiceBase, rpc
from spyne.error import Fault
from spyne.protocol.soap import Soap11
from spyne.server.http import HttpTransportContext
from spyne.server.wsgi import WsgiApplication

from interactions.contracts import REGISTRY_NS
from interactions.models import RivComplexModel, RivXmlMixin, message_class
from interactions.validation import validate_element
from interactions.xmlload import DEFAULT_MAX_BYTES, XmlInputError, parse_bytes

__all__ = ["RivSoap11", "keep_written", "logical_address", "riv_application", "riv_operation",
           "riv_wsgi_application"]

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
        self._env_prefix: str | None = None

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        # As spyne's Soap11: SOAP over HTTP is a POST with a content type.
        if isinstance(ctx.transport, HttpTransportContext) and (
                ctx.transport.get_request_content_type() is None
                or ctx.transport.get_request_method() != "POST"):
            ctx.transport.resp_code = "405 Method Not Allowed"
            raise Fault("Client.RequestNotAllowed",
                        "You must issue a POST request with the Content-Type header set.")
        data = b"".join(s if isinstance(s, bytes) else s.encode("utf-8") for s in ctx.in_string)
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
        env_ns = self.ns_soap_env
        if envelope.tag != f"{{{env_ns}}}Envelope":
            raise Fault("Client.SoapError", f"No {{{env_ns}}}Envelope element was found!")
        header = body = None
        for child in envelope:
            if child.tag == f"{{{env_ns}}}Header":
                header = child if header is None else header
            elif child.tag == f"{{{env_ns}}}Body":
                body = child if body is None else body
        for node in [] if body is None else [n for n in body if not isinstance(n.tag, str)]:
            body.remove(node)
        if body is None or len(body) == 0:
            raise Fault("Client.SoapError", "soap:Body has no request element")
        ctx.in_document = envelope
        payload = body[0]
        if payload.tag == f"{{{env_ns}}}Fault":
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
        env_ns = self.ns_soap_env
        if self._env_prefix is None:
            self._env_prefix = next((p for p, u in self.app.interface.nsmap.items()
                                     if u == env_ns), "soap11env")
        ctx.out_document = etree.Element(f"{{{env_ns}}}Envelope",
                                         nsmap={self._env_prefix: env_ns})
        ctx.out_body_doc = etree.SubElement(ctx.out_document, f"{{{env_ns}}}Body")
        ctx.out_body_doc.append(written[1])
        self.event_manager.fire_event("after_serialize", ctx)

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


def logical_address(ctx: Any) -> str | None:
    """The text of the request's LogicalAddress header, or None if there is none."""
    for el in ctx.in_header_doc or ():
        if el.tag == LOGICAL_ADDRESS:
            return (el.text or "").strip()
    return None


def keep_written(ctx: Any, response: RivComplexModel, element: Any) -> None:
    """Have the response sent as ``element`` (``to_element(response)``, which the operation
    wrote to check it) instead of written again by spyne. The element must not change after
    this; ``RivSoap11.serialize`` moves it into the response envelope."""
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
                         max_bytes: int = DEFAULT_MAX_BYTES, **options: Any) -> WsgiApplication:
    """``riv_application`` behind spyne's WSGI server, with one body cap for both.

    (spyne's WsgiApplication would otherwise refuse bodies over 2 MiB itself, below the
    platform's 15 MiB.) ``options`` are riv_application's keywords.
    """
    app = riv_application(services, max_bytes=max_bytes, **options)
    return WsgiApplication(app, max_content_length=max_bytes)
