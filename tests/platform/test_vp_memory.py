"""Memory held after calls: an idle keep-alive connection must not keep its last answer.

aiohttp's server keeps the last response of each keep-alive connection (a local of the
connection's request loop) until the next request on that connection or its close. The platform
answers with the producer's body, up to ``max_body``: with hundreds of consumer connections open
that was one large answer held per connection (measured with benchmarks/platform_memory.py:
300 connections × a 142 KB GetAvailableHealthcareFacilitiesResponse = 41.5 MB). The platform's
response lets go of its body once it is sent.
"""

from __future__ import annotations

import asyncio
import gc
from urllib.parse import quote

import aiohttp
from aiohttp import web
from vp_support import SOAP_NS, envelope, permit, route, snapshot

from routing.vp.config import PlatformConfig
from routing.vp.server import Platform

CONNECTIONS = 24
# a large answer: many units, as a big region's GetAvailableHealthcareFacilities
BIG = (f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body><answer xmlns="urn:test">'
       + "<unit>SE2321000131-E000001 Vårdcentralen</unit>" * 4000
       + "</answer></soap:Body></soap:Envelope>").encode()


def _answers_held() -> int:
    """Platform responses still holding a body the size of BIG (not the producer's own)."""
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if isinstance(o, web.StreamResponse) and getattr(o, "body", None) is not None
               and o.body is not BIG and len(o.body) == len(BIG))


def test_idle_keep_alive_connections_hold_no_answers(certs, tmp_path):
    cert = quote(certs.consumer.cert.read_text())

    async def scenario() -> tuple[list[int], int, int]:
        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=BIG, content_type="text/xml", charset="utf-8")

        app = web.Application()
        app.router.add_post("/{tail:.*}", answer)
        producer = web.AppRunner(app, access_log=None)
        await producer.setup()
        site = web.TCPSite(producer, "127.0.0.1", 0)
        await site.start()
        port = producer.addresses[0][1]
        snap = tmp_path / "snapshot.json"
        snapshot("mem-1", [route("08", f"http://127.0.0.1:{port}/ok")],
                 [permit("08")]).save(snap)
        platform = Platform(PlatformConfig(catalogue=str(snap), port=None, http_port=0,
                                           trusted_proxies=("127.0.0.1",)))
        urls = await platform.start()
        try:
            headers = {"Content-Type": "text/xml; charset=utf-8", "x-vp-auth-cert": cert}
            connector = aiohttp.TCPConnector(limit=CONNECTIONS)
            async with aiohttp.ClientSession(connector=connector) as client:
                async def call() -> int:
                    async with client.post(urls["http"] + "/GetListing/2/rivtabp21",
                                           data=envelope(), headers=headers) as r:
                        body = await r.read()
                        return r.status if body == BIG else -r.status

                statuses: list[int] = []
                for _ in range(3):  # the same connections, reused round after round
                    statuses += await asyncio.gather(*(call() for _ in range(CONNECTIONS)))
                await asyncio.sleep(0.05)  # every connection back in its keep-alive wait
                # the platform's consumer connections, idle in their keep-alive wait
                open_connections = sum(len(r.server.connections) for r in platform._runners
                                       if isinstance(r, web.ServerRunner))
                held = _answers_held()
            return statuses, open_connections, held
        finally:
            await platform.stop()
            await producer.cleanup()

    statuses, open_connections, held = asyncio.run(scenario())
    assert statuses == [200] * 3 * CONNECTIONS
    assert open_connections > CONNECTIONS // 2  # the connections are idle, still open
    assert held == 0, f"{held} idle connections still hold their last answer"


def test_the_answer_is_still_sent_whole(certs, tmp_path):
    """Letting go of the body after sending it changes nothing the consumer sees."""
    from routing.vp.pipeline import SentResponse

    async def scenario() -> tuple[bytes, str | None, object]:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return SentResponse(body=BIG, headers={"Content-Type": "text/xml"})

        server = web.Server(handler, access_log=None)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
                return await r.read(), r.headers.get("Content-Length"), r.status
        finally:
            await runner.cleanup()

    body, length, status = asyncio.run(scenario())
    assert status == 200 and body == BIG and length == str(len(BIG))
