"""The region's producer over HTTPS with mutual TLS: an aiohttp front for the spyne WSGI app.

Why this shape: spyne is WSGI only; the front is aiohttp, already the project's server
(platform, catalogue, population API), because it gives direct access to the TLS peer
certificate, caps the body before reading it, and serves the WSDL/XSD GETs without touching
spyne. POSTs go to the spyne ``WsgiApplication`` in a bounded thread pool: the business logic is
blocking SQLAlchemy, so the event loop never waits on a database and the pool size bounds the
concurrent transactions. (No gunicorn/granian/uvicorn in the environment; wsgiref is
single-threaded and cannot see the client certificate.)

Measured on the shared 2-core box (load average ~8, Python client threads with keep-alive
and mutual TLS): the front alone, with a canned WSGI app, ~540 requests/s with one client
(p50 1.7 ms); PingForConfiguration of a real region through it ~85/s, p50 10 ms — the same as
calling the spyne app in-process (11 ms): the region's own work (a SQLite commit per call)
dominates, not the front. spyne's once-a-second ``gc.collect()`` had cost 200–500 ms per hit
(p95 303 ms → 25 ms once turned off, see producers.spyne_services).

What a caller meets, in order:

1. TLS: a client certificate issued by the configured CA is required (handshake fails
   otherwise).
2. ``POST <Contract path>``: only the platform may call (its HSA-id(s) matched
   case-insensitively against the certificate's subject SERIALNUMBER); any other certificate
   gets HTTP 403 with a SOAP ``Client`` fault. A body over the cap gets 413 with a SOAP fault.
   Then the spyne app (producers.spyne_services) answers.
3. ``GET <Contract path>?wsdl`` / ``?xsd=NAME``: the contract's own files (producers.wsdl), for
   any CA-issued certificate — the release is public and integrators need it.
4. Anything else: 404 (POST: a SOAP fault; a SOAP caller never gets an HTML page).

``ProducerServer`` runs the whole thing on an event loop in a background thread (tests, the
pilot); ``listning region serve`` (producers.serve_cli) runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from spyne.server.wsgi import WsgiApplication

from interactions.contracts import Contract, producer_contracts
from interactions.xmlload import DEFAULT_MAX_BYTES
from producers import wsdl
from producers.spyne_services import ENV_PEER_HSA_ID

log = logging.getLogger(__name__)

CORRELATION_HEADER = "x-skltp-correlation-id"
XML = "text/xml; charset=utf-8"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "date", "server"})


def tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Server TLS that demands a client certificate issued by ``ca`` (TLS 1.2 or newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_hsa_id(request: web.Request) -> str | None:
    """The subject SERIALNUMBER (the HSA-id) of the verified client certificate."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for attr, value in rdn:
            if attr == "serialNumber":
                return str(value).strip()
    return None


def soap_fault(status: int, code: str, message: str) -> web.Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f"<soap:Fault><faultcode>soap:{escape(code)}</faultcode>"
            f"<faultstring>{escape(message)}</faultstring></soap:Fault>"
            "</soap:Body></soap:Envelope>").encode()
    return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8")


class ProducerApp:
    """The aiohttp application: routing, the platform check, the body cap, the WSGI bridge."""

    def __init__(self, wsgi_app: WsgiApplication, *, platform_hsa_ids: Iterable[str],
                 public_url: str = "", max_body: int = DEFAULT_MAX_BYTES, threads: int = 8,
                 contracts: Iterable[Contract] | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.platform_ids = frozenset(h.strip().casefold() for h in platform_hsa_ids)
        if not self.platform_ids:
            raise ValueError("give the platform's HSA-id: only the platform may call")
        self.public_url = public_url.rstrip("/")  # "" → ProducerServer sets it once bound
        self.max_body = max_body
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="soap")
        # CreateListing holds its thread while the home region answers its UpdateListing; if
        # both pools were one, two regions listing each other's residents at once could take
        # every thread with calls waiting for the other side, whose UpdateListing then waits
        # behind them (measured: benchmarks/cross_region.py, both directions at c = 100).
        self.waiting_executor = ThreadPoolExecutor(threads, thread_name_prefix="soap-create")
        self.contracts = {c.path: c for c in (contracts or producer_contracts())}

    def executor_for(self, path: str) -> ThreadPoolExecutor:
        """The pool for a contract's calls: CreateListing (which waits for other regions)
        apart from everything else (which never does)."""
        contract = self.contracts.get(path)
        return (self.waiting_executor if contract is not None
                and contract.name == "CreateListing" else self.executor)

    def application(self) -> web.Application:
        # The body cap is ours (a SOAP fault, before reading); aiohttp's must not be lower.
        app = web.Application(client_max_size=self.max_body + 1)
        for path in self.contracts:
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        # After the server's graceful shutdown (running requests finished, or 30 s passed):
        # whatever still runs in the pool finishes its transaction before we return.
        for pool in (self.waiting_executor, self.executor):
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)

    async def not_found(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            return soap_fault(404, "Client", f"no service contract is served at "
                                             f"{request.path}; the paths are "
                                             + ", ".join(sorted(self.contracts)))
        return web.Response(status=404, text="not found\n")

    async def get(self, request: web.Request) -> web.Response:
        contract = self.contracts[request.path]
        query = request.query
        if "wsdl" in {k.lower() for k in query}:
            return web.Response(body=wsdl.wsdl_document(contract, self.public_url),
                                content_type="text/xml", charset="utf-8")
        if "xsd" in query:
            try:
                doc = wsdl.xsd_document(contract, self.public_url, query["xsd"])
            except wsdl.UnknownSchema:
                return web.Response(status=404, text="no such schema in this release\n")
            return web.Response(body=doc, content_type="text/xml", charset="utf-8")
        return web.Response(text=f"{contract.name} {contract.version} (RIV-TA BP 2.1): POST "
                            f"SOAP 1.1 here; the contract is at {request.path}?wsdl\n")

    async def post(self, request: web.Request) -> web.Response:
        peer = peer_hsa_id(request)
        if peer is None or peer.casefold() not in self.platform_ids:
            log.info("refused a call from %s to %s: not the platform", peer or "(no HSA-id)",
                     request.path)
            return soap_fault(403, "Client", f"the caller {peer or '(no HSA-id)'} may not call "
                                             "this producer: only the service platform may")
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._too_large()
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self.max_body:
                return self._too_large()
        environ = self._environ(request, bytes(body), peer)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(
            self.executor_for(request.path), self._run, environ)
        log.debug("%s %s %s in %.1f ms", request.path, status,
                  request.headers.get(CORRELATION_HEADER, "-"),
                  (time.perf_counter() - started) * 1000)
        response = web.Response(status=int(status.split(" ", 1)[0]), body=payload)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                response.headers[name] = value
        correlation = request.headers.get(CORRELATION_HEADER)
        if correlation:
            response.headers[CORRELATION_HEADER] = correlation
        return response

    def _too_large(self) -> web.Response:
        response = soap_fault(413, "Client", f"the request is larger than the limit of "
                                             f"{self.max_body} bytes")
        response.force_close()  # the rest of the body stays unread
        return response

    def _environ(self, request: web.Request, body: bytes, peer: str) -> dict[str, Any]:
        host, _, port = (request.host or "localhost").partition(":")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": host,
            "SERVER_PORT": port or "443",
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            ENV_PEER_HSA_ID: peer,
        }
        for name, value in request.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        return environ

    def _run(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> None:
            started["status"], started["headers"] = status, headers

        chunks = self.wsgi_app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return started["status"], started["headers"], payload


class ProducerServer:
    """Run a ``ProducerApp`` on its own event loop in a background thread::

        server = ProducerServer(app, host="127.0.0.1", port=0, ssl_context=tls).start()
        server.url  # https://127.0.0.1:PORT
        server.stop()
    """

    def __init__(self, app: ProducerApp, *, host: str, port: int,
                 ssl_context: ssl.SSLContext, sock: socket.socket | None = None) -> None:
        """``sock``: a bound socket to serve on instead of binding ``host:port`` (several
        processes sharing one listening socket: producers.prefork)."""
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self.sock = sock
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.app.application(), access_log=None,
                                     shutdown_timeout=30)
        await self._runner.setup()
        site: web.BaseSite
        if self.sock is not None:
            site = web.SockSite(self._runner, self.sock, ssl_context=self.ssl_context,
                                backlog=256)
        else:
            site = web.TCPSite(self._runner, self.host, self.port,
                               ssl_context=self.ssl_context, backlog=256)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"https://{self.host}:{self.port}"
        if not self.app.public_url:
            self.app.public_url = self.url

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # stops listening, lets running requests finish
            self._runner = None

    def start(self) -> ProducerServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="producer-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(40)
