"""Starting the platform: the in-process Python API and the ``listning platform serve`` command."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys

import aiohttp
from vp_support import OK_RESPONSE, REPO, envelope, main_snapshot

from routing.vp.config import PlatformConfig
from routing.vp.server import Platform


def test_in_process_platform_routes_a_call(certs, producers, tmp_path):
    snap = tmp_path / "snapshot.json"
    main_snapshot(producers).save(snap)

    async def scenario() -> tuple[int, bytes, dict]:
        platform = Platform(PlatformConfig(catalogue=str(snap), cert=certs.platform.cert,
                                           key=certs.platform.key, ca=certs.ca,
                                           state_dir=tmp_path / "state"))
        urls = await platform.start()
        try:
            tls = ssl.create_default_context(cafile=str(certs.ca))
            tls.load_cert_chain(certs.consumer.cert, certs.consumer.key)
            async with aiohttp.ClientSession() as s:
                async with s.post(urls["https"] + "/GetListing/2/rivtabp21", data=envelope(),
                                  ssl=tls) as r:
                    body = await r.read()
                async with s.get(urls["ops"] + "/status") as st:
                    status = await st.json()
            return r.status, body, status
        finally:
            await platform.stop()

    status, body, state = asyncio.run(scenario())
    assert (status, body) == (200, OK_RESPONSE)
    assert state["snapshot_id"] == "main-1" and state["origin"] == "catalogue"


def test_listning_platform_serve_prints_urls_and_stops_on_sigint(certs, producers, tmp_path):
    snap = tmp_path / "snapshot.json"
    main_snapshot(producers).save(snap)
    cmd = [sys.executable, "-m", "listning.cli", "platform", "serve", "--catalogue", str(snap),
           "--cert", str(certs.platform.cert), "--key", str(certs.platform.key),
           "--ca", str(certs.ca), "--http-port", "0", "--state-dir", str(tmp_path / "st")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        lines = []
        while (line := proc.stdout.readline().strip()) != "ready":
            assert line, "exited before ready"
            lines.append(line)
        names = [x.split(" ")[0] for x in lines]
        assert names == ["https", "http", "ops"]
        assert all("127.0.0.1:" in x for x in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
