"""Starting and stopping a platform instance: listeners, TLS contexts, the upstream pool.

Python API (in-process, e.g. for the pilot)::

    platform = Platform(PlatformConfig(catalogue=..., cert=..., key=..., ca=...))
    await platform.start()      # platform.urls: {"https": ..., "http": ..., "ops": ...}
    ...
    await platform.stop()

``serve(config)`` runs one until SIGINT/SIGTERM (what ``listning platform serve`` does).

With ``config.message_log`` the platform also keeps the tamper-evident message log
(``routing.msglog``): opened at ``start()`` with the platform's key, signed periodically by a
task on the event loop, closed with a closing signature at ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import sys
import time
from collections.abc import Callable

from aiohttp import web

from listning.runtime import stop_event
from routing.msglog import MessageLog
from routing.vp.calllog import CallLog
from routing.vp.config import PlatformConfig
from routing.vp.metrics import Metrics
from routing.vp.ops import ops_app
from routing.vp.pipeline import Context, handle
from routing.vp.producer import Upstream
from routing.vp.snapshots import SnapshotStore

log = logging.getLogger("routing.vp")


def server_tls(config: PlatformConfig) -> ssl.SSLContext:
    """Mutual TLS: the caller must present a certificate that chains to our CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.cert, config.key)
    ctx.load_verify_locations(cafile=str(config.ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_tls(config: PlatformConfig) -> ssl.SSLContext | None:
    """Towards HTTPS producers (and the catalogue): our certificate, producers checked on the CA."""
    if not (config.cert and config.key and config.ca):
        return None
    ctx = ssl.create_default_context(cafile=str(config.ca))
    ctx.load_cert_chain(config.cert, config.key)
    return ctx


class Platform:
    def __init__(self, config: PlatformConfig, call_log: CallLog | None = None) -> None:
        """``call_log``: where the per-leg JSON lines go (default: none)."""
        if config.port is not None and not (config.cert and config.key and config.ca):
            raise ValueError("the HTTPS listener needs --cert, --key and --ca")
        if config.message_log is not None and config.key is None:
            raise ValueError("the message log is signed with the platform's key: give --key")
        self.config = config
        tls = client_tls(config)
        self.store = SnapshotStore(config.catalogue, config.state_dir, tls)
        self.ctx = Context(config, self.store, Upstream(tls, config.connect_timeout,
                                                        config.max_body), Metrics(),
                           call_log or CallLog(None))
        self.urls: dict[str, str] = {}
        self._runners: list[web.BaseRunner] = []
        self._retry: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self._signer: asyncio.Task | None = None

    def _consumer_server(self, over_tls: bool) -> web.ServerRunner:
        """A bare aiohttp server (no router, no middleware): every POST goes down the pipeline."""
        ctx = self.ctx

        async def on_request(request: web.BaseRequest) -> web.StreamResponse:
            if request.method != "POST":
                raise web.HTTPMethodNotAllowed(request.method, ["POST"])
            return await handle(ctx, request, over_tls)

        server = web.Server(on_request, access_log=None)
        # on stop, calls in flight get a few seconds to finish, then their connections close
        return web.ServerRunner(server, handle_signals=False, shutdown_timeout=5.0)

    async def _listen(self, name: str, runner: web.BaseRunner, host: str, port: int,
                      tls: ssl.SSLContext | None) -> None:
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port, ssl_context=tls, backlog=1024).start()
        bound_host, bound_port = runner.addresses[0][:2]
        scheme = "https" if tls else "http"
        self.urls[name] = f"{scheme}://{_url_host(bound_host)}:{bound_port}"

    async def start(self) -> dict[str, str]:
        if self.config.state_dir:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        if cfg.message_log is not None and cfg.key is not None:
            # before any listener: no call may pass before the log can record it
            message_log = MessageLog.open(cfg.message_log, cfg.key,
                                          sign_every=cfg.message_log_sign_every,
                                          sign_interval=cfg.message_log_sign_interval)
            self.ctx.log.message_log = message_log
            self._signer = asyncio.create_task(message_log.sign_periodically())
        await self.ctx.upstream.start()
        store = self.store
        self.ctx.metrics.snapshot_age.set_function(
            lambda: store.loaded.loaded_at if store.loaded else 0.0)
        await store.start()
        if self.store.loaded is None or self.store.loaded.origin != "catalogue":
            self._retry = asyncio.create_task(
                self.store.retry_until_loaded(self.config.catalogue_retry))
        if self.config.catalogue_poll > 0:
            self._watch = asyncio.create_task(self.store.watch(self.config.catalogue_poll))
        if cfg.port is not None:
            await self._listen("https", self._consumer_server(True), cfg.host, cfg.port,
                               server_tls(cfg))
        if cfg.http_port is not None:
            await self._listen("http", self._consumer_server(False), cfg.host, cfg.http_port,
                               None)
        ops = web.AppRunner(ops_app(self.ctx, time.time()), access_log=None,
                            handle_signals=False)
        await self._listen("ops", ops, cfg.ops_host, cfg.ops_port, None)
        return self.urls

    async def stop(self) -> None:
        for task in (self._retry, self._watch, self._signer):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.ctx.upstream.close()
        self.ctx.log.close()  # after the listeners: the last legs, then the closing signature


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(config: PlatformConfig, on_ready: Callable[[dict[str, str]], None],
                 call_log: CallLog | None) -> None:
    platform = Platform(config, call_log)
    stop = stop_event()
    try:
        on_ready(await platform.start())
        await stop.wait()
    finally:
        log.info("platform %s stopping", config.instance_name)
        await platform.stop()


def serve(config: PlatformConfig, on_ready: Callable[[dict[str, str]], None] | None = None,
          call_log: CallLog | None = None) -> None:
    """Run until SIGINT/SIGTERM; ``on_ready`` gets the listening URLs once they accept calls."""
    def announce(urls: dict[str, str]) -> None:
        for name, url in urls.items():
            print(f"{name} {url}", flush=True)
        print("ready", flush=True)

    runner = _event_loop_runner()
    runner(_serve(config, on_ready or announce, call_log))
    sys.stdout.flush()


def _event_loop_runner() -> Callable:
    """uvloop when installed (measurably faster here, see docs/performance.md), else asyncio."""
    if os.environ.get("LISTNING_VP_LOOP") == "asyncio":  # to compare the two
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
