"""The operator port: /status, /ready, /resetcache, /metrics (127.0.0.1 unless told otherwise).

Kept off the consumers' listener, so only the operator side can reset the cache or read state.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from routing.vp.pipeline import Context


def ops_app(ctx: Context, started: float) -> web.Application:
    routes = web.RouteTableDef()

    def state() -> dict:
        loaded = ctx.store.loaded
        snap = loaded.snapshot if loaded else None
        return {
            "instance": ctx.instance,
            "uptime_s": round(time.time() - started, 1),
            "catalogue": ctx.store.source,
            "loaded": snap is not None,
            "snapshot_id": snap.snapshot_id if snap else None,
            "published_at": snap.published_at.isoformat() if snap else None,
            "loaded_at": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loaded.loaded_at))
                          if loaded else None),
            "origin": loaded.origin if loaded else None,
            "routes": len(snap.routes) if snap else 0,
            "permissions": len(snap.permissions) if snap else 0,
            "last_error": ctx.store.last_error,
        }

    @routes.get("/status")
    async def status(_: web.Request) -> web.Response:
        return web.json_response(state())

    @routes.get("/ready")
    async def ready(_: web.Request) -> web.Response:
        loaded = ctx.store.current is not None
        return web.json_response({"ready": loaded}, status=200 if loaded else 503)

    @routes.post("/resetcache")
    async def resetcache(_: web.Request) -> web.Response:
        try:
            loaded = await ctx.store.reload()
        except Exception as exc:  # the old snapshot stays; say why the reload failed
            return web.json_response({"reloaded": False, "error": f"{type(exc).__name__}: "
                                      f"{exc}", **state()}, status=502)
        return web.json_response({"reloaded": True, "loaded_at_epoch": loaded.loaded_at,
                                  **state()})

    @routes.get("/metrics")
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(ctx.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes(routes)
    return app
