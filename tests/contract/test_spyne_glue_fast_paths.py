"""RivWsgiApplication's shortcuts answer exactly as spyne's own WsgiApplication does.

``interactions.spyne_glue`` skips per-request work of spyne's WSGI server (URL rebuilding,
content-type parsing, a context copy, ~40 guarded attribute writes, empty event sets) and
breaks the request's reference cycles when it is done. The same Application behind spyne's
plain ``WsgiApplication`` is the reference: same statuses, headers, bytes and events.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from spyne import ServiceBase
from spyne.server.wsgi import WsgiApplication, WsgiMethodContext

from interactions.models import message_class, type_class
from interactions.spyne_glue import (
    RivWsgiApplication,
    RivWsgiMethodContext,
    keep_written,
    logical_address,
    riv_application,
    riv_operation,
    write_response,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "interactions" / "examples"
REQUESTS = sorted(EXAMPLES.glob("GetListingCounty/valid/request-*.xml"))
COUNTY_OID = "1.2.752.129.2.2.1.18"


class CountyService(ServiceBase):
    @riv_operation("GetListingCounty")
    def GetListingCounty(ctx, request):  # spyne's rpc: no self, ctx first
        II = type_class("IIType")
        response = message_class("GetListingCountyResponse")(
            listingCounties=[II(root=COUNTY_OID, extension=logical_address(ctx))],
            resultCode="OK")
        if request.actor.actorType == "CITIZEN":  # written (and checked) once
            keep_written(ctx, response, write_response(ctx, response))
        return response


def environ(data: bytes, method: str = "POST", **extra: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
        "PATH_INFO": "/", "QUERY_STRING": "", "SCRIPT_NAME": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "HTTP_X_SKLTP_CORRELATION_ID": "c-1", "HTTP_HOST": "localhost",
    }
    env.update(extra)
    return env


def call(app: Callable[..., Any], env: dict[str, Any]) -> tuple[str, list[Any], bytes]:
    started: list[Any] = []
    chunks = app(env, lambda status, headers, exc_info=None: started.append((status, headers)))
    body = b"".join(chunks)
    (status, headers), = started
    return status, sorted(headers), body


@pytest.fixture(scope="module")
def apps() -> tuple[RivWsgiApplication, WsgiApplication]:
    application = riv_application([CountyService])
    return RivWsgiApplication(application), WsgiApplication(application)


def _requests() -> list[tuple[str, bytes]]:
    base = REQUESTS[0].read_bytes()
    other_person = base.replace(b"191212121212<", b"198503142468<")
    assert other_person != base
    return [
        *[(p.name, p.read_bytes()) for p in REQUESTS],
        ("other-person", other_person),
        ("no-logical-address", base.replace(b"LogicalAddress>", b"LogicalAddres>")),
        ("schema-invalid", base.replace(b"CITIZEN", b"KING")),
        ("doctype", b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + base.split(b"?>", 1)[-1]),
        ("malformed", base[:-20]),
        ("empty", b""),
        ("not-soap", b"<x/>"),
    ]


@pytest.mark.parametrize(("name", "data"), _requests(), ids=[n for n, _ in _requests()])
def test_same_answer_as_spyne_wsgi_application(apps, name: str, data: bytes) -> None:
    ours, spynes = apps
    assert call(ours, environ(data)) == call(spynes, environ(data))


def test_same_answer_for_a_get_and_an_oversized_body(apps) -> None:
    ours, spynes = apps
    data = REQUESTS[0].read_bytes()
    assert call(ours, environ(data, "GET")) == call(spynes, environ(data, "GET"))
    big = environ(data, CONTENT_LENGTH=str(ours.max_content_length + 1))
    big2 = environ(data, CONTENT_LENGTH=str(ours.max_content_length + 1))
    status, _headers, body = call(ours, big)
    assert (status, _headers, body) == call(spynes, big2)
    assert b"Client.RequestTooLong" in body
    assert call(ours, environ(data, CONTENT_LENGTH="")) == \
        call(spynes, environ(data, CONTENT_LENGTH=""))


def test_events_fire_as_in_spyne(apps) -> None:
    ours, spynes = apps
    events = ("method_context_created", "wsgi_call", "method_call", "method_return_object",
              "before_deserialize", "after_deserialize", "before_serialize",
              "after_serialize", "method_return_string", "method_context_closed",
              "wsgi_return", "wsgi_close", "method_exception_object")
    seen: list[str] = []
    app = ours.app
    for server in (ours, spynes):
        for manager in (app.event_manager, server.event_manager,
                        app.in_protocol.event_manager):
            for event in events:
                manager.add_listener(event, lambda ctx, *a, _e=event: seen.append(_e))
    try:
        for data in (REQUESTS[0].read_bytes(), b"<x/>"):
            seen.clear()
            call(ours, environ(data))
            by_ours = list(seen)
            seen.clear()
            call(spynes, environ(data))
            assert by_ours == seen and seen
    finally:
        for server in (ours, spynes):
            for manager in (app.event_manager, server.event_manager,
                            app.in_protocol.event_manager):
                for event in events:
                    manager.handlers.pop(event, None)


def test_the_context_has_spynes_attributes(apps) -> None:
    ours, _spynes = apps
    env = environ(b"")
    fast = vars(RivWsgiMethodContext(ours, env, "text/xml"))
    slow = vars(WsgiMethodContext(ours, env, "text/xml"))
    assert set(fast) - {"riv_alone"} == set(slow)
    for key in ("transport", "inprot_ctx", "outprot_ctx", "protocol", "event", "call_start"):
        fast.pop(key), slow.pop(key)
    fast.pop("riv_alone")
    assert fast == slow
    transport = RivWsgiMethodContext(ours, env, "text/xml").transport
    reference = WsgiMethodContext(ours, env, "text/xml").transport
    assert transport.headers == reference.headers and transport.req_env is env
    assert transport.resp_headers == reference.resp_headers


def test_a_request_leaves_no_cyclic_garbage(apps) -> None:
    ours, _spynes = apps
    data = REQUESTS[0].read_bytes()
    call(ours, environ(data))
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            call(ours, environ(data))
        assert gc.collect() == 0
    finally:
        gc.enable()
