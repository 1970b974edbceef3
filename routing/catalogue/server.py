"""``listning tak serve``: the catalogue service.

- ``GET /snapshot`` — the current published snapshot as JSON, for the platform to load
  (503 with a plain explanation while nothing is published; ``ETag`` = snapshot id, and
  ``If-None-Match`` gives 304 when the platform already has it);
- ``GET /status`` — published or not, which snapshot, when, how many routes and permissions;
- ``POST /GetLogicalAddresseesByServiceContract/2/rivtabp21`` — the SOAP contract.

The database may be changed and published by other processes (the CLI): every request checks
the newest published snapshot's sequence number and reloads only when it changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from routing.catalogue import GLABSC_NAMESPACE, GLABSC_PATH, glabsc
from routing.catalogue.service import Catalogue
from routing.snapshot import Snapshot

log = logging.getLogger(__name__)

SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass
class _Published:
    seq: int | None = None
    snapshot: Snapshot | None = None
    content: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)


class CatalogueService:
    """The HTTP handlers over one ``Catalogue``."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._published = _Published()
        self._lock = asyncio.Lock()

    async def current(self) -> _Published:
        seq = await asyncio.to_thread(self.catalogue.published_seq)
        if seq == self._published.seq:
            return self._published
        async with self._lock:
            if seq != self._published.seq:
                row = await asyncio.to_thread(self.catalogue.published_row)
                if row is None:
                    self._published = _Published()
                else:
                    self._published = _Published(
                        row.seq, Snapshot.from_json(row.content), row.content,
                        json.loads(row.address_descriptions or "{}"))
                    log.info("loaded published catalogue snapshot %s",
                             self._published.snapshot.snapshot_id)
        return self._published

    async def snapshot(self, request: web.Request) -> web.Response:
        pub = await self.current()
        if pub.snapshot is None:
            return web.Response(status=503, text="No catalogue snapshot has been published yet "
                                "(run `listning tak publish`).\n")
        etag = f'"{pub.snapshot.snapshot_id}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=pub.content, content_type="application/json",
                            headers={"ETag": etag})

    async def status(self, _request: web.Request) -> web.Response:
        pub = await self.current()
        s = pub.snapshot
        return web.json_response({
            "published": s is not None,
            "snapshot_id": s.snapshot_id if s else None,
            "published_at": s.published_at.isoformat() if s else None,
            "routes": len(s.routes) if s else 0,
            "permissions": len(s.permissions) if s else 0,
            "contracts_served": [GLABSC_NAMESPACE],
        }, status=200)

    async def glabsc(self, request: web.Request) -> web.Response:
        data = await request.read()
        try:
            pub = await self.current()
            result = glabsc.answer(data, pub.snapshot, pub.descriptions)
        except Exception:  # a bug or a lost database must still reach the caller as a fault
            log.exception("GetLogicalAddresseesByServiceContract failed")
            result = glabsc.fault("Server", "The service catalogue could not answer")
        return web.Response(status=result.status, body=result.body,
                            headers={"Content-Type": SOAP_CONTENT_TYPE})


def make_app(catalogue: Catalogue) -> web.Application:
    service = CatalogueService(catalogue)
    # aiohttp's own size cap answers 413 before we read a byte of an oversized request
    app = web.Application(client_max_size=glabsc.MAX_REQUEST_BYTES)
    app.router.add_get("/snapshot", service.snapshot)
    app.router.add_get("/status", service.status)
    app.router.add_post(GLABSC_PATH, service.glabsc)
    return app


def tls_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """Server TLS that requires a client certificate issued by ``ca`` (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def start(catalogue: Catalogue, host: str = "127.0.0.1", port: int = 0,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Start serving on the running loop; returns the runner (``await runner.cleanup()`` to
    stop) and the bound port (useful with ``port=0``)."""
    runner = web.AppRunner(make_app(catalogue), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound
