"""The reports on the region's operator port: an aiohttp sub-app.

    app.add_subapp("/reports/", reports_app(db, config))

    GET /reports/                         index
    GET /reports/listed?at=YYYY-MM-DD     totals per unit and home county, with charts
    GET /reports/out-of-county?at=...     our residents listed in other regions
    GET /reports/settlement?month=YYYY-MM the month's settlement per counterpart region

``format=csv`` gives the same figures as CSV (``format=xlsx`` as a workbook). The web pages
carry figures only: person lists (personal identity numbers) come from the command line, which
records who produced them in the access log. Reports run in a worker thread, so the port keeps
answering while a report is read.
"""

from __future__ import annotations

import asyncio
import io
from datetime import date, timedelta
from html import escape
from typing import Any

from aiohttp import web

from producers.config import RegionConfig
from producers.reports import build
from producers.reports.data import month_bounds
from producers.reports.source import Source, source_for

SOURCE_KEY = web.AppKey("reports_source", Source)
TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n", content_type="text/plain")


def _fmt(request: web.Request) -> str:
    fmt = request.query.get("format", "html")
    if fmt not in build.FORMATS:
        raise _bad(f"format must be one of {', '.join(build.FORMATS)}, not {fmt!r}")
    return fmt


def _at(request: web.Request) -> date:
    text = request.query.get("at")
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(f"bad date {text!r}: expected YYYY-MM-DD, e.g. 2026-10-31") from None


async def _respond(request: web.Request, fmt: str, name: str, write: Any) -> web.Response:
    source = request.app[SOURCE_KEY]

    def produce() -> bytes:
        buf = io.BytesIO()
        write(source, fmt, buf)
        return buf.getvalue()

    body = await asyncio.get_running_loop().run_in_executor(None, produce)
    headers = {}
    if fmt != "html":
        headers["Content-Disposition"] = (f'attachment; filename="{name}-{source.county}.{fmt}"')
    return web.Response(body=body, headers=headers, content_type=TYPES[fmt].split(";")[0],
                        charset="utf-8" if fmt != "xlsx" else None)


async def index(request: web.Request) -> web.Response:
    cfg = request.app[SOURCE_KEY].config
    today = date.today()
    last_month = today.replace(day=1) - timedelta(days=1)
    links = [("listed", f"listed?at={today}", "Listed at our units today"),
             ("out", f"out-of-county?at={today}", "Our residents listed in other regions"),
             ("settlement", f"settlement?month={last_month:%Y-%m}",
              f"Settlement for {last_month:%Y-%m}")]
    items = "".join(f'<li><a href="{escape(href)}">{escape(text)}</a> '
                    f'(<a href="{escape(href)}&amp;format=csv">csv</a>)</li>'
                    for _, href, text in links)
    html = (f'<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>Reports, '
            f"{escape(cfg.name)}</title></head><body><h1>Reports, {escape(cfg.name)}</h1>"
            f"<ul>{items}</ul></body></html>")
    return web.Response(text=html, content_type="text/html")


async def listed(request: web.Request) -> web.Response:
    fmt, at = _fmt(request), _at(request)
    return await _respond(request, fmt, "listed", lambda src, f, out: build.write_listed(
        src, at, f, out, totals_only=True))


async def out_of_county(request: web.Request) -> web.Response:
    fmt, at = _fmt(request), _at(request)
    return await _respond(request, fmt, "out-of-county",
                          lambda src, f, out: build.write_out_of_county(src, at, f, out))


async def settlement(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    month = request.query.get("month")
    if not month:
        raise _bad("give the month: settlement?month=YYYY-MM")
    try:
        month_bounds(month)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return await _respond(request, fmt, f"settlement-{month}",
                          lambda src, f, out: build.write_settlement(src, month, f, out))


def reports_app(db: Any, config: RegionConfig) -> web.Application:
    """The sub-app for a region's operator port; ``db`` is the region's ``Database`` (or an
    SQLAlchemy ``Engine``). Mount it with ``app.add_subapp("/reports/", ...)``."""
    engine = getattr(db, "engine", db)
    app = web.Application()
    app[SOURCE_KEY] = source_for(config, engine)
    app.router.add_get("/", index)
    app.router.add_get("/listed", listed)
    app.router.add_get("/out-of-county", out_of_county)
    app.router.add_get("/settlement", settlement)

    async def _close(app: web.Application) -> None:
        app[SOURCE_KEY].close()

    app.on_cleanup.append(_close)
    return app
