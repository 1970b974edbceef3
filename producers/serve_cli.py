"""``listning region serve``: run one region's listing system as a producer over HTTPS.

    listning region serve --config producers/regions/08.toml [--data-dir DIR] \\
        --host 127.0.0.1 --port 8443 --cert C --key K --ca CA \\
        --platform-url https://vp:8443 --platform-hsa-id SE5565594230-NTJP \\
        [--population-url URL] [--db URL]

(also ``python -m producers.serve_cli ...`` with the same options.)

Runs, in one process: the producer (producers.server: aiohttp + spyne, mutual TLS, only the
platform may call), the outbox worker (a thread delivering UpdateListing through the platform
with the region's own certificate, producers.sender) and, with ``--population-url``, a thread
that reads the population register's change feed. When every part runs it prints
``region <county> listening on <URL>``. SIGINT/SIGTERM: stop listening, let running requests
finish their transaction, let each worker finish its current pass, then exit 0.
``--processes N`` (PostgreSQL only): N such processes share the port, to use N cores; the
workers run in one of them (producers.prefork).
The database: ``--db URL``, else the configuration's ``database_url``, else the SQLite file
``region-NN.sqlite`` in ``--data-dir``, else in the configuration's ``data_dir``
(``producers.config.resolve_database_url``); PostgreSQL by URL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from listning.runtime import return_large_blocks_to_the_os, stop_event
from producers.config import ConfigError, load_config, resolve_database_url

if TYPE_CHECKING:
    from producers.population.api import PopulationClient
    from producers.population_feed import ChangeFeed
    from producers.prefork import PreforkChild
    from producers.region import Region

# The serving stack (spyne, the compiled models, SQLAlchemy) is imported in ``serve``: every
# `listning` command registers this one, and the models take seconds to compile.
log = logging.getLogger("producers.serve")


def register_serve(region_subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to ``listning region``'s subcommands."""
    p = region_subparsers.add_parser("serve", help="run the region's listing system as the "
                                     "producer for its county (HTTPS, mutual TLS)",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(handler=run_serve)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="the region's TOML file")
    p.add_argument("--data-dir", type=Path,
                   help="where the region keeps its SQLite database when neither --db nor the "
                   "configuration's database_url names one (default: the configuration's "
                   "data_dir)")
    p.add_argument("--db", metavar="URL", help="database URL (default: the configuration's "
                   "database_url, else SQLite in the data directory)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443, help="0 picks a free port (printed)")
    p.add_argument("--cert", required=True, type=Path,
                   help="the region's certificate (PEM): served, and presented to the platform")
    p.add_argument("--key", required=True, type=Path, help="its private key (PEM)")
    p.add_argument("--ca", required=True, type=Path,
                   help="CA of the platform's certificates (server and client)")
    p.add_argument("--platform-url", required=True,
                   help="the service platform's base URL (UpdateListing goes there)")
    p.add_argument("--platform-hsa-id", required=True, action="append", metavar="HSAID",
                   help="HSA-id in the platform's client certificate; only it may call "
                   "(repeatable)")
    p.add_argument("--public-url", help="this producer's URL as the platform reaches it "
                   "(for ?wsdl; default https://HOST:PORT)")
    p.add_argument("--population-url", help="the population register's API: read its change "
                   "feed and look persons up")
    p.add_argument("--threads", type=int, default=8,
                   help="requests handled at once (each holds one database transaction)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="serve from N processes sharing the port, to use N cores (PostgreSQL "
                   "only; the outbox and feed workers run in one of them; producers.prefork)")
    p.add_argument("--max-body", type=int, default=15 * 1024 * 1024, metavar="BYTES")
    p.add_argument("--send-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long an UpdateListing through the platform may take")
    p.add_argument("--outbox-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often the outbox worker looks for due messages")
    p.add_argument("--feed-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often the population feed is read")


class PopulationOverHttp:
    """The population register's HTTP API as ``Region`` and the feed consumer want it."""

    def __init__(self, client: PopulationClient) -> None:
        self.client = client

    def person(self, pid: str) -> Any:
        return self.client.person(pid)

    def home_county(self, pid: str) -> str | None:
        return self.client.home_county(pid)

    def guardians_of(self, pid: str) -> list[str]:
        found = self.client.person(pid)
        return [g.person_id for g in found.guardians] if found else []

    def changes_since(self, seq: int, limit: int = 1000) -> list[Any]:
        return self.client.changes_since(seq, limit)


class Worker:
    """Runs ``step`` every ``interval`` seconds in a thread until stopped; a stop waits for
    the pass in progress (each of its transactions completes or rolls back whole)."""

    def __init__(self, name: str, interval: float, step: Callable[[], None]) -> None:
        self.name, self.interval, self.step = name, interval, step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a failed pass is logged and tried again next time
                log.exception("%s pass failed", self.name)
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


OUTBOX_PASS_SIZE = 20
OUTBOX_PASSES_PER_STEP = 10


def outbox_step(region: Region) -> Callable[[], None]:
    from producers import outbox

    def step() -> None:
        # A backlog (a unit closure, a region back after an outage) is worked off pass after
        # pass without the interval's pause; a bounded number of passes keeps a stop prompt.
        for _ in range(OUTBOX_PASSES_PER_STEP):
            counts = outbox.run_due(region, limit=OUTBOX_PASS_SIZE)
            if counts:
                log.info("outbox: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            if sum(counts.values()) < OUTBOX_PASS_SIZE:
                break
    return step


def feed_step(region: Region, feed: ChangeFeed) -> Callable[[], None]:
    from producers import population_feed

    def step() -> None:
        applied = population_feed.consume(region, feed)
        if applied:
            log.info("population feed: %d change(s) applied", applied)
    return step


class StartupError(Exception):
    """The region cannot start: a bad option, file, certificate or a busy port."""


async def serve(args: argparse.Namespace, prefork: PreforkChild | None = None) -> int:
    """Serve until SIGINT/SIGTERM. ``prefork``: this is one of ``--processes`` N processes
    (producers.prefork), serving on the socket the parent bound."""
    from producers import outbox
    from producers.population.api import PopulationClient
    from producers.region import Region
    from producers.sender import PlatformSender
    from producers.server import ProducerApp, ProducerServer, tls_context
    from producers.spyne_services import wsgi_application
    from producers.storage import open_database

    for option in ("cert", "key", "ca"):
        path = getattr(args, option)
        if not path.is_file():
            raise StartupError(f"--{option} {path}: no such file")
    try:
        config = load_config(args.config)
        url = resolve_database_url(config, args.db, args.data_dir)
        if args.data_dir is not None:
            args.data_dir.mkdir(parents=True, exist_ok=True)
        tls = tls_context(args.cert, args.key, args.ca)
        sender = PlatformSender(args.platform_url, cert=args.cert, key=args.key, ca=args.ca,
                                timeout=args.send_timeout)
    except (ConfigError, OSError, ssl.SSLError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    population = None
    if args.population_url:
        https = args.population_url.startswith("https:")
        population = PopulationOverHttp(PopulationClient(
            args.population_url, cert=args.cert if https else None,
            key=args.key if https else None, ca=args.ca if https else None))
    # (several processes: the parent has migrated the database; the workers run in one)
    region = Region(config, open_database(url, upgrade=prefork is None), sender=sender,
                    population=population)
    with_workers = prefork is None or prefork.runs_workers
    if with_workers:
        outbox.release_orphaned_leases(region)  # deliveries a killed predecessor left half done
    app = ProducerApp(wsgi_application(region, max_bytes=args.max_body),
                      platform_hsa_ids=args.platform_hsa_id, public_url=args.public_url or "",
                      max_body=args.max_body, threads=args.threads)
    server = ProducerServer(app, host=args.host, port=args.port, ssl_context=tls,
                            sock=prefork.sock if prefork is not None else None)
    workers = [Worker("outbox", args.outbox_interval, outbox_step(region))] if with_workers \
        else []
    if population is not None and with_workers:
        workers.append(Worker("population-feed", args.feed_interval,
                              feed_step(region, population)))
    # Everything loaded so far lives as long as the process: keep the collector off it
    # (the compiled models and SQLAlchemy make full collections slow).
    # The release's schema, built here in the main thread before any request thread runs
    # (interactions.validation.driver_schema says why).
    from interactions.validation import driver_schema

    driver_schema()
    gc.freeze()

    stopping = stop_event()
    try:
        await server.start_async()
    except OSError as exc:  # the port is taken, the address is not ours
        raise StartupError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    try:
        for w in workers:
            w.start()
        log.info("%s (county %s) serving %s; database %s", config.name, config.county,
                 server.url, "SQLite" if region.db.is_sqlite else "PostgreSQL")
        if prefork is None:
            print(f"region {config.county} listening on {server.url}", flush=True)
        else:
            prefork.ready()  # the parent says "listening" once every process serves
        await stopping.wait()
        log.info("stopping: finishing running requests and worker passes")
    finally:
        await server.stop_async()
        await asyncio.to_thread(lambda: [w.stop() for w in workers])
        sender.close()
        region.db.dispose()
    log.info("stopped")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    return_large_blocks_to_the_os()  # before any thread (and before prefork's children)
    if args.processes != 1:
        from producers.prefork import serve_processes
        return serve_processes(args)
    try:
        return asyncio.run(serve(args))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)
    parser = argparse.ArgumentParser(prog="python -m producers.serve_cli",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
