"""``listning mock-producer``: canned responses for every contract, for consumers' tests.

Each contract of the domain and PingForConfiguration is served at its RIV-TA path
(``/<Contract>/<major>/rivtabp21``). A POST is read like a real producer reads it (hardened
parse, SOAP 1.1 envelope, the contract's body element, the XSDs, the LogicalAddress header) and
refused with a SOAP fault when it is broken; otherwise the answer is the one the
``x-mock-response`` header asks for (default ``ok``). Canned answers come from
``interactions/examples/<Contract>/valid/`` or are built with the compiled models, so every
non-broken answer is schema-valid. ``GET <path>?wsdl`` gives the contract's own WSDL.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from functools import cache
from xml.sax.saxutils import escape

from aiohttp import web

from consumers.conformance.modes import MODE_HEADER, MODES, TEXTS
from interactions.contracts import HERE as INTERACTIONS_DIR
from interactions.contracts import REGISTRY_NS, SOAP11_ENV, Contract, producer_contracts
from interactions.models import message_class, to_element
from interactions.validation import EnvelopeError, read_envelope, validate_element
from interactions.xmlload import XmlInputError, parse_bytes
from listning.runtime import serve_until_stopped

EXAMPLES = INTERACTIONS_DIR / "examples"
# Example file tried first for each resultCode (fallback: built with the models).
_EXAMPLE_PREFIX = {"OK": "response-ok", "INFO": "response-info", "ERROR": "response-error.xml"}


def _soap(body: bytes) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="'
            + SOAP11_ENV.encode() + b'"><soap:Body>' + body + b"</soap:Body></soap:Envelope>")


def fault(code: str, message: str, status: int = 500) -> web.Response:
    body = _soap(f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>"
                 f"{escape(message)}</faultstring></soap:Fault>".encode())
    return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8")


def _example(contract: Contract, code: str) -> bytes | None:
    folder = EXAMPLES / contract.name / "valid"
    prefix = _EXAMPLE_PREFIX.get(code)
    if contract.name == "PingForConfiguration":
        path = folder / "response-with-configuration.xml"
        return path.read_bytes() if path.exists() else None
    if prefix is None:
        wanted = f"response-{code.lower().replace('_', '-')}.xml"
        path = folder / wanted
        return path.read_bytes() if path.exists() else None
    for path in sorted(folder.glob("response-*.xml"), key=lambda p: (len(p.name), p.name)):
        if path.name.startswith(prefix) and "empty" not in path.name and "none" not in path.name:
            return path.read_bytes()
    return None


def _built(contract: Contract, code: str) -> bytes:
    from lxml import etree

    cls = message_class(f"{contract.name}Response")
    el = to_element(cls(resultCode=code, resultText=TEXTS.get(code)))
    return _soap(etree.tostring(el, encoding="UTF-8"))


@cache
def canned(contract: Contract, mode: str) -> bytes:
    """The answer body for a contract and a result mode (schema-valid)."""
    code = MODES[mode][1] or "OK"
    if contract.name == "PingForConfiguration":
        return _example(contract, "OK") or b""
    if mode != "empty":
        found = _example(contract, code)
        if found is not None:
            return found
    return _built(contract, code)


class MockProducer:
    def __init__(self, county: str, slow_seconds: float = 3.0, public_url: str = "") -> None:
        self.county = county
        self.slow_seconds = slow_seconds
        self.public_url = public_url
        self.contracts = {c.path: c for c in producer_contracts()}

    def application(self) -> web.Application:
        app = web.Application(client_max_size=15 * 1024 * 1024)
        for path in self.contracts:
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def not_found(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            return fault("Client", f"no contract at {request.path}; the paths are "
                                   + ", ".join(sorted(self.contracts)), 404)
        return web.Response(status=404, text="not found\n")

    async def get(self, request: web.Request) -> web.Response:
        from producers import wsdl

        contract = self.contracts[request.path]
        base = self.public_url or f"{request.scheme}://{request.host}"
        if "wsdl" in {k.lower() for k in request.query}:
            return web.Response(body=wsdl.wsdl_document(contract, base),
                                content_type="text/xml", charset="utf-8")
        if "xsd" in request.query:
            try:
                doc = wsdl.xsd_document(contract, base, request.query["xsd"])
            except wsdl.UnknownSchema:
                return web.Response(status=404, text="no such schema in this release\n")
            return web.Response(body=doc, content_type="text/xml", charset="utf-8")
        return web.Response(text=f"mock {contract.name}: POST SOAP 1.1 here; "
                                 f"{request.path}?wsdl\n")

    async def post(self, request: web.Request) -> web.Response:
        contract = self.contracts[request.path]
        mode = request.headers.get(MODE_HEADER, "ok").strip().lower()
        if mode not in MODES:
            return fault("Client", f"unknown {MODE_HEADER} {mode!r}; the modes are "
                                   + ", ".join(MODES))
        problem = self.check(contract, await request.read())
        if problem:
            return fault("Client", problem)
        if mode == "fault":
            return fault("Server", "mock producer: a technical error, as asked")
        if mode == "html":
            return web.Response(status=500, content_type="text/html",
                                text="<html><body><h1>500 Internal Server Error</h1></body></html>")
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if mode == "invalid":
            body = canned(contract, "error")
            body = body.replace(b"<resultCode>ERROR</resultCode>",
                                b"<resultCode>MAYBE</resultCode>")
            if contract.name == "PingForConfiguration":
                body = body.replace(b"<version>", b"<unexpected/><version>")
        else:
            body = canned(contract, "ok" if mode == "slow" else mode)
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    def check(self, contract: Contract, data: bytes) -> str | None:
        """Why the request is not acceptable, or None."""
        try:
            env = read_envelope(parse_bytes(data))
        except XmlInputError as exc:
            return f"the request cannot be read: {exc}"
        except EnvelopeError as exc:
            return f"not a SOAP 1.1 request: {exc.message}"
        if env.payload.tag != contract.request_qname:
            return (f"the body element {env.payload.tag} is not {contract.request_qname}, the "
                    f"request of {contract.name} served at {contract.path}")
        problems = validate_element(env.payload)
        if problems:
            return f"the request breaks the XSDs: {problems[0]}"
        address = env.logical_address
        if contract.in_domain:
            if address is None:
                return f"no {{{REGISTRY_NS}}}LogicalAddress header"
            if address != self.county:
                return f"logical address {address!r}: this mock answers for county {self.county}"
        return None


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.cert is None and args.key is None:
        if args.ca is not None:
            raise ValueError("--ca needs --cert and --key (HTTPS)")
        return None
    if args.cert is None or args.key is None:
        raise ValueError("give both --cert and --key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                     cafile=str(args.ca) if args.ca else None)
    ctx.load_cert_chain(str(args.cert), str(args.key))
    if args.ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def _serve(args: argparse.Namespace) -> int:
    tls = _tls(args)
    mock = MockProducer(args.county, args.slow_seconds)
    runner = web.AppRunner(mock.application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    url = f"{'https' if tls else 'http'}://{args.host}:{port}"
    mock.public_url = url
    print(f"mock producer for county {args.county} listening on {url}", flush=True)
    await serve_until_stopped(runner.cleanup)
    return 0


def run(args: argparse.Namespace) -> int:
    from interactions import identifiers as ids

    if not ids.is_county_code(args.county):
        print(f"error: --county {args.county!r} is not a two-digit county code", file=sys.stderr)
        return 2
    for name in ("cert", "key", "ca"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            print(f"error: --{name} {path}: no such file", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_serve(args))
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
