"""The consumers' commands: ``listning eservice serve``, ``listning conformance``,
``listning mock-producer``.

Wired in by ``listning/cli.py`` through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("consumers.eservice")

DEFAULT_HSA_ID = "SE5565594230-1177"


def register(subparsers: argparse._SubParsersAction) -> None:
    from consumers.conformance import cli as conformance_cli

    conformance_cli.register(subparsers)  # `listning conformance` and `listning mock-producer`
    es = subparsers.add_parser("eservice", help="the 1177 e-service for residents (web)")
    sub = es.add_subparsers(dest="eservice_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("serve", help="serve the e-service's web pages until interrupted")
    p.add_argument("--platform-url", required=True,
                   help="base URL of the service platform (contract paths are appended)")
    p.add_argument("--cert", type=Path, help="the e-service's client certificate (PEM; its "
                   "HSA-id in SERIALNUMBER) for mutual TLS with the platform")
    p.add_argument("--key", type=Path, help="the client certificate's private key")
    p.add_argument("--ca", type=Path, help="CA that signed the platform's server certificate")
    p.add_argument("--hsa-id", default=DEFAULT_HSA_ID,
                   help=f"the e-service's HSA-id, asked about in the catalogue "
                        f"(default {DEFAULT_HSA_ID})")
    p.add_argument("--population-url", required=True,
                   help="base URL of the population register's API")
    p.add_argument("--population-cert", type=Path,
                   help="client certificate for the register (default: --cert for https)")
    p.add_argument("--population-key", type=Path)
    p.add_argument("--population-ca", type=Path)
    p.add_argument("--data-dir", type=Path, default=Path("eservice-data"),
                   help="where the e-service keeps its SQLite database (sessions, receipts)")
    p.add_argument("--units-dir", type=Path, action="append", default=[],
                   help="extra folder of region configuration files (*.toml) to read the "
                        "units' municipalities from (stand-in for the HSA catalogue)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="the HTTPS certificate's private key")
    p.add_argument("--secure-cookies", action="store_true",
                   help="always mark cookies Secure (behind a TLS-terminating proxy)")
    p.add_argument("--timeout", type=float, default=20.0,
                   help="seconds to wait for a region's answer (default 20)")
    p.add_argument("--pilot", action="store_true",
                   help="pilot mode: log in with the test e-ID (test persons only)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import ssl

    from aiohttp import web

    from consumers.eservice.app import EServiceConfig, make_app
    from consumers.eservice.backend import SHIPPED_REGIONS_DIR, Backend, BackendConfig

    if (args.cert is None) != (args.key is None):
        print("error: give both --cert and --key, or neither", file=sys.stderr)
        return 2
    if (args.tls_cert is None) != (args.tls_key is None):
        print("error: give both --tls-cert and --tls-key, or neither", file=sys.stderr)
        return 2
    https_register = args.population_url.startswith("https:")
    backend = Backend(BackendConfig(
        platform_url=args.platform_url, cert=args.cert, key=args.key, ca=args.ca,
        hsa_id=args.hsa_id, population_url=args.population_url,
        population_cert=args.population_cert or (args.cert if https_register else None),
        population_key=args.population_key or (args.key if https_register else None),
        population_ca=args.population_ca or (args.ca if https_register else None),
        timeout=args.timeout, unit_dirs=[SHIPPED_REGIONS_DIR, *args.units_dir]))
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(str(args.tls_cert), str(args.tls_key))
    config = EServiceConfig(data_dir=args.data_dir, pilot=bool(args.pilot),
                            secure_cookies=bool(args.secure_cookies or ssl_context))
    app = make_app(config, backend)
    scheme = "https" if ssl_context else "http"
    log.info("1177 e-service on %s://%s:%d (%s)", scheme, args.host, args.port,
             "pilot: test e-ID enabled" if args.pilot else "no test e-ID")
    web.run_app(app, host=args.host, port=args.port, ssl_context=ssl_context, print=None)
    return 0
