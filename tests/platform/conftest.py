"""Fixtures for the platform (VP) tests: a test PKI, real producers, real platform processes.

Everything is real: the platform runs as a subprocess (``python -m routing.vp serve``) on free
loopback ports, producers are aiohttp apps with mutual TLS in a background thread, clients
present certificates issued by the test CA. Helpers live in ``vp_support.py``.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

# importlib mode puts no test folder on sys.path: make vp_support importable
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vp_support import (
    CONSUMER,
    OTHER,
    PLATFORM,
    PRODUCER,
    TRUSTED_ORIGINATOR,
    Pki,
    PlatformProcess,
    Producers,
    _producer_app,
    free_port,
    main_snapshot,
    start_platform,
)

from routing import pki


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(d)
    foreign_dir = tmp_path_factory.mktemp("foreign-pki")
    pki.create_ca(foreign_dir, common_name="Some Other CA")
    return Pki(
        ca=ca.cert,
        platform=pki.issue(d, "platform", PLATFORM, ca=ca),
        consumer=pki.issue(d, "consumer", CONSUMER, ca=ca),
        other=pki.issue(d, "other", OTHER, ca=ca),
        originator=pki.issue(d, "originator", TRUSTED_ORIGINATOR, ca=ca),
        producer=pki.issue(d, "producer", PRODUCER, ca=ca),
        no_serial=pki.issue(d, "noserial", None, ca=ca),
        foreign=pki.issue(foreign_dir, "foreign", CONSUMER),
    )


@pytest.fixture(scope="session")
def producers(certs: Pki) -> Iterator[Producers]:
    state = Producers()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runners: list[web.AppRunner] = []

    async def start() -> None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certs.producer.cert, certs.producer.key)
        tls.load_verify_locations(cafile=str(certs.ca))
        tls.verify_mode = ssl.CERT_REQUIRED  # only the platform (a CA-issued client) gets in
        # an impostor: a server certificate from another CA, which the platform must refuse
        impostor = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        impostor.load_cert_chain(certs.foreign.cert, certs.foreign.key)
        for name, ctx in (("https", tls), ("http", None), ("catalogue", None),
                          ("impostor", impostor)):
            runner = web.AppRunner(_producer_app(state), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
            runners.append(runner)
            port = runner.addresses[0][1]
            setattr(state, name, f"{'https' if ctx else 'http'}://127.0.0.1:{port}")
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield state

    async def stop() -> None:
        for r in runners:
            await r.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator:
    """Start platforms for one test; all are stopped afterwards, also when the test fails."""
    started: list[PlatformProcess] = []

    def factory(name: str, catalogue: str, *args: str,
                certs: Pki | None = None) -> PlatformProcess:
        """Platforms with the same ``name`` share a state dir (the last-good snapshot)."""
        p = start_platform(tmp_path / name, catalogue, *args, certs=certs)
        started.append(p)
        return p

    yield factory
    for p in started:
        p.stop()


@pytest.fixture(scope="session")
def main_platform(tmp_path_factory: pytest.TempPathFactory, certs: Pki,
                  producers: Producers) -> Iterator[PlatformProcess]:
    """The mutual-TLS platform most tests call (64 KiB body cap, to test it cheaply)."""
    work = tmp_path_factory.mktemp("main-platform")
    snap_file = work / "snapshot.json"
    main_snapshot(producers).save(snap_file)
    p = start_platform(work, str(snap_file), "--max-body", "65536", "--original-consumer-allowed",
                       TRUSTED_ORIGINATOR.lower(), certs=certs)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def proxy_platform(tmp_path_factory: pytest.TempPathFactory, certs: Pki,
                   producers: Producers) -> Iterator[PlatformProcess]:
    """A plain-HTTP platform behind a 'TLS-terminating proxy' at 127.0.0.1 (exactly), with no
    certificate of its own; its 'loop' route points back at itself."""
    work = tmp_path_factory.mktemp("proxy-platform")
    http_port = free_port()
    snap_file = work / "snapshot.json"
    main_snapshot(producers, own_http=f"http://127.0.0.1:{http_port}").save(snap_file)
    p = start_platform(work, str(snap_file), "--port", "-1", "--http-port", str(http_port),
                       "--trusted-proxy", "127.0.0.1", "--trusted-proxy", "::1/128")
    yield p
    p.stop()
