"""The request path, as the national platform runs it: a list of small processors.

Each processor does one thing to a ``Call`` and raises ``VpError`` to end it with a platform
fault. Read ``PIPELINE`` top to bottom:

    refuse_loops → identify_sender → read_envelope → find_route → check_permission
    → build_producer_request → call_producer
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

from aiohttp import web
from multidict import CIMultiDict

from routing.snapshot import Route, Snapshot, today_in_sweden
from routing.vp import envelope, identity
from routing.vp.calllog import CallLog
from routing.vp.config import PlatformConfig
from routing.vp.faults import VpError, fault_body, too_large
from routing.vp.metrics import Metrics, contract_label
from routing.vp.producer import ProducerAnswer, Upstream
from routing.vp.snapshots import SnapshotStore

log = logging.getLogger("routing.vp")

ORIGINAL_CONSUMER = "x-rivta-original-serviceconsumer-hsaid"
CORRELATION_ID = "x-skltp-correlation-id"
SENDER_ID, INSTANCE_ID, PRT = "x-vp-sender-id", "x-vp-instance-id", "x-skltp-prt"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
                        "upgrade", "host", "content-length"})
# never forwarded from the caller: the platform sets these itself (or they would be spoofable)
PLATFORM_HEADERS = frozenset({SENDER_ID, INSTANCE_ID, PRT, CORRELATION_ID, ORIGINAL_CONSUMER})
RESPONSE_DROP = HOP_BY_HOP | {"date", "server", PRT, CORRELATION_ID}
_PATH_PROFILE = re.compile(r"/rivtabp(\d+)/*$", re.IGNORECASE)
SUPPORTED = (envelope.BP20, envelope.BP21)


class Context:
    """What the processors share: settings, the snapshot store, the upstream pool, metrics."""

    def __init__(self, config: PlatformConfig, store: SnapshotStore, upstream: Upstream,
                 metrics: Metrics, call_log: CallLog) -> None:
        self.config = config
        self.log = call_log
        self.instance = config.instance_name
        self.store = store
        self.upstream = upstream
        self.metrics = metrics
        self.trusted_proxies = identity.parse_networks(config.trusted_proxies)
        self.cert_header = config.cert_header.lower()
        self.original_allowed = {h.casefold() for h in config.original_consumer_allowed}
        self.forward_drop = HOP_BY_HOP | PLATFORM_HEADERS | {self.cert_header}


@dataclass(slots=True)
class Call:
    request: web.BaseRequest
    over_tls: bool
    correlation_id: str
    started: float = field(default_factory=time.perf_counter)
    sender: str | None = None
    body: bytes = b""
    info: envelope.EnvelopeInfo | None = None
    day: date | None = None
    snapshot: Snapshot | None = None
    route: Route | None = None
    producer_headers: CIMultiDict[str] | None = None
    answer: ProducerAnswer | None = None


Processor = Callable[[Context, Call], Awaitable[None]]


async def refuse_loops(ctx: Context, call: Call) -> None:
    """A request carrying our own instance id has been through us already: a routing loop."""
    if call.request.headers.get(INSTANCE_ID) == ctx.instance:
        raise VpError("VP014", "the request has already passed this platform instance")


async def identify_sender(ctx: Context, call: Call) -> None:
    """Sender = HSA-id in the client certificate (TLS), or in one forwarded by a trusted proxy."""
    request = call.request
    if call.over_tls:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        call.sender = identity.sender_from_peercert(ssl_object.getpeercert() if ssl_object
                                                    else None)
    else:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not identity.is_allowed(peer[0] if peer else None, ctx.trusted_proxies):
            raise VpError("VP011", "this address may not forward client certificates")
        forwarded = request.headers.get(ctx.cert_header)
        if not forwarded:
            raise VpError("VP002", f"no client certificate in the {ctx.cert_header} header")
        call.sender = identity.sender_from_forwarded(forwarded)
    if (ORIGINAL_CONSUMER in request.headers
            and call.sender.casefold() not in ctx.original_allowed):
        raise VpError("VP013", f"sender {call.sender} may not set {ORIGINAL_CONSUMER}")


async def read_envelope(ctx: Context, call: Call) -> None:
    """Body (capped, never buffering past the cap), then contract, address and RIV version."""
    request, limit = call.request, ctx.config.max_body
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    if length is not None:
        try:
            call.body = await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise VpError("VP015", "the request body ended before its Content-Length") from None
    else:
        chunks, total = [], 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            chunks.append(chunk)
        call.body = b"".join(chunks)
    path_profile = _PATH_PROFILE.search(request.path)
    if path_profile and f"RIVTABP{path_profile[1]}" not in SUPPORTED:
        raise VpError("VP001", f"RIV-TA profile rivtabp{path_profile[1]} is not supported")
    call.info = envelope.read_envelope(call.body, limit)
    if not call.info.logical_address:
        raise VpError("VP003", "no LogicalAddress (or wsa:To) in the SOAP header")


async def find_route(ctx: Context, call: Call) -> None:
    """Exact logical address, then '*', valid today (Europe/Stockholm): exactly one route."""
    call.snapshot = ctx.store.current
    if call.snapshot is None:
        raise VpError("VP008", "no catalogue snapshot is loaded")
    info = call.info
    call.day = today_in_sweden()
    routes = call.snapshot.routes_for(info.contract_namespace, info.logical_address, call.day)
    if not routes:
        raise VpError("VP004", f"no route for logical address {info.logical_address} and "
                               f"contract {info.contract_namespace}")
    if len(routes) > 1:
        raise VpError("VP006", f"{len(routes)} routes for logical address "
                               f"{info.logical_address} and contract {info.contract_namespace}")
    route = routes[0]
    if not route.url.strip():
        raise VpError("VP010", f"the route for {info.logical_address} has no producer address")
    if route.riv_profile.upper() not in SUPPORTED:
        raise VpError("VP005", f"the producer's RIV-TA profile {route.riv_profile} is not "
                               "supported")
    call.route = route


async def check_permission(ctx: Context, call: Call) -> None:
    info = call.info
    if not call.snapshot.is_permitted(call.sender, info.contract_namespace,
                                      info.logical_address, call.day):
        raise VpError("VP007", f"{call.sender} may not call {info.contract_namespace} at "
                               f"logical address {info.logical_address}")


async def build_producer_request(ctx: Context, call: Call) -> None:
    """Forwardable headers plus the platform's own; the address header in the route's profile."""
    incoming = call.request.headers
    drop = ctx.forward_drop
    if "connection" in incoming:  # headers named in Connection are hop-by-hop too (RFC 9110)
        drop = drop | {name.strip().lower() for value in incoming.getall("connection")
                       for name in value.split(",")}
    headers = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in drop)
    headers[ORIGINAL_CONSUMER] = incoming.get(ORIGINAL_CONSUMER) or call.sender
    headers[CORRELATION_ID] = call.correlation_id
    if call.route.url[:5].lower() == "http:":  # plain HTTP: the producer cannot see our cert
        headers[SENDER_ID] = call.sender
        headers[INSTANCE_ID] = ctx.instance
    call.producer_headers = headers
    target = call.route.riv_profile.upper()
    if call.info.riv_version != target:
        call.body = envelope.convert_address_header(call.body, target, ctx.config.max_body)


async def call_producer(ctx: Context, call: Call) -> None:
    route = call.route
    ctx.log.leg("req-out", call.correlation_id, sender=call.sender,
                receiver=route.logical_address, contract=contract_label(route.contract_namespace),
                producer=route.component_hsa_id)
    timeout = call.snapshot.timeout_for(route.contract_namespace, ctx.config.default_timeout)
    call.answer = await ctx.upstream.call(route.url, call.body, call.producer_headers, timeout)
    ctx.log.leg("resp-in", call.correlation_id, status=call.answer.status,
                prt_ms=round(call.answer.round_trip_ms, 2))


PIPELINE: tuple[Processor, ...] = (
    refuse_loops,
    identify_sender,
    read_envelope,
    find_route,
    check_permission,
    build_producer_request,
    call_producer,
)


async def handle(ctx: Context, request: web.BaseRequest, over_tls: bool) -> web.StreamResponse:
    """Run the pipeline for one request and answer: the producer's answer, or a platform fault."""
    incoming_id = request.headers.get(CORRELATION_ID, "")
    call = Call(request, over_tls, incoming_id if 0 < len(incoming_id) <= 128
                else new_correlation_id())
    code = None
    try:
        # inside the try: a message log that cannot record req-in refuses the call (VP012)
        ctx.log.leg("req-in", call.correlation_id, path=request.path, tls=over_tls)
        for processor in PIPELINE:
            await processor(ctx, call)
        response = _producer_response(call)
        outcome = "ok" if call.answer.status < 400 else "producer-fault"
    except Exception as exc:
        response, code = _fault(ctx, call, exc)
        outcome = code
    elapsed = time.perf_counter() - call.started
    contract = contract_label(call.info.contract_namespace if call.info else None)
    ctx.metrics.record(contract, outcome, elapsed,
                       call.answer.round_trip_ms / 1000 if call.answer else None)
    try:
        ctx.log.leg("resp-out", call.correlation_id, sender=call.sender,
                    receiver=call.info.logical_address if call.info else None,
                    contract=contract, status=response.status, vp_code=code,
                    duration_ms=round(elapsed * 1000, 2))
    except VpError as exc:  # the message log failed: no answer leaves unrecorded
        if code is None:
            response, _ = _fault(ctx, call, exc)
    return response


def _fault(ctx: Context, call: Call, exc: Exception) -> tuple[web.Response, str]:
    """The platform fault for ``exc`` (an unexpected one becomes VP012), with its error leg."""
    if not isinstance(exc, VpError):
        # A bug in the platform itself: log it with the correlation id and answer with a
        # Server fault the consumer can quote, instead of aiohttp's HTML error page.
        log.exception("unexpected error in the request path (correlation id %s)",
                      call.correlation_id)
        exc = VpError("VP012", "internal platform error; quote correlation id "
                               f"{call.correlation_id}")
    response = web.Response(status=exc.http_status, body=fault_body(exc, ctx.instance),
                            content_type="text/xml", charset="utf-8")
    response.headers[CORRELATION_ID] = call.correlation_id
    if exc.http_status == 413:
        response.force_close()  # the unread body stays unread
    # already answering with a fault: a message log that fails here changes nothing
    with contextlib.suppress(VpError):
        ctx.log.leg("error", call.correlation_id, sender=call.sender, vp_code=exc.code,
                    message=exc.message)
    return response, exc.code


def new_correlation_id() -> str:
    """A random (version 4) UUID: uuid.uuid4() costs several times more, and a correlation id
    needs uniqueness, not secrecy."""
    n = random.getrandbits(128)
    n = (n & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SentResponse(web.Response):
    """A response that lets go of its body once the body is sent.

    aiohttp's server keeps the last response of a keep-alive connection (a local of the
    connection's request loop) until the next request on it or its close, up to the keep-alive
    timeout. For the producer's answer (up to ``max_body``) that was one answer held per idle
    consumer connection: 41.5 MB for 300 connections after GetAvailableHealthcareFacilities
    answers of 142 KB (benchmarks/platform_memory.py; tests/platform/test_vp_memory.py).
    """

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            await super().write_eof(data)
        finally:  # sent, or the connection is gone: either way the body is not needed again
            self.body = None  # also drops a compressed copy, if there was one


def _producer_response(call: Call) -> web.Response:
    answer = call.answer
    headers = CIMultiDict((k, v) for k, v in answer.headers.items()
                          if k.lower() not in RESPONSE_DROP)
    headers[PRT] = str(round(answer.round_trip_ms))
    headers[CORRELATION_ID] = call.correlation_id
    return SentResponse(status=answer.status, body=answer.body, headers=headers)
