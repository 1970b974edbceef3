"""``listning platform serve``: run the virtualisation layer (also ``python -m routing.vp serve``).

When every listener accepts calls it prints one line per listener (``https URL``, ``http URL``,
``ops URL``) and then ``ready``, so a parent process can wait for that line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from listning.runtime import return_large_blocks_to_the_os
from routing.msglog import register_msglog
from routing.vp.calllog import CallLog
from routing.vp.config import PlatformConfig
from routing.vp.identity import DEFAULT_CERT_HEADER
from routing.vp.server import serve


def register_platform(subparsers: argparse._SubParsersAction) -> None:
    platform = subparsers.add_parser("platform", help="the service platform's virtualisation "
                                     "layer (routes calls on contract and logical address)")
    sub = platform.add_subparsers(dest="platform_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("serve", help="run the platform until SIGINT/SIGTERM")
    p.add_argument("--catalogue", required=True, metavar="URL|FILE",
                   help="catalogue URL (GET <URL>/snapshot) or a snapshot JSON file")
    p.add_argument("--host", default="127.0.0.1", help="address of the consumer listeners")
    p.add_argument("--port", type=int, default=0,
                   help="mutual-TLS port (0 = a free port; -1 = no HTTPS listener)")
    p.add_argument("--cert", type=Path, help="the platform's certificate (PEM)")
    p.add_argument("--key", type=Path, help="its private key (PEM)")
    p.add_argument("--ca", type=Path, help="CA that client and producer certificates chain to")
    p.add_argument("--ops-host", default="127.0.0.1")
    p.add_argument("--ops-port", type=int, default=0, help="operator port (status, metrics)")
    p.add_argument("--state-dir", type=Path, help="keeps the last good snapshot")
    p.add_argument("--instance-name", default="vp", help="shown in faults and logs")
    p.add_argument("--http-port", type=int, help="plain-HTTP listener behind a TLS-terminating "
                   "proxy that forwards the client certificate")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS|CIDR",
                   help="may forward client certificates on the HTTP listener (repeatable)")
    p.add_argument("--cert-header", default=DEFAULT_CERT_HEADER,
                   help="header carrying the forwarded certificate (URL-encoded PEM)")
    p.add_argument("--original-consumer-allowed", action="append", default=[], metavar="HSAID",
                   help="sender that may set x-rivta-original-serviceconsumer-hsaid "
                   "(repeatable)")
    p.add_argument("--max-body", type=int, default=PlatformConfig.max_body, metavar="BYTES")
    p.add_argument("--default-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="producer timeout for contracts the catalogue gives none for")
    p.add_argument("--catalogue-retry", type=float, default=5.0, metavar="SECONDS",
                   help="retry interval while the snapshot is not from the catalogue")
    p.add_argument("--catalogue-poll", type=float, default=0.0, metavar="SECONDS",
                   help="check the catalogue for a newly published snapshot every SECONDS "
                        "(default 0: only when /resetcache is called)")
    p.add_argument("--quiet-calls", action="store_true", help="no per-call JSON log lines")
    p.add_argument("--message-log", type=Path, metavar="FILE",
                   help="also append every leg to this tamper-evident log, hash-chained and "
                        "signed with --key (check it with `listning platform verify-log`); "
                        "a call the log cannot record is refused (VP012)")
    p.set_defaults(handler=run_serve)
    register_msglog(sub)


def config_from_args(args: argparse.Namespace) -> PlatformConfig:
    return PlatformConfig(
        catalogue=args.catalogue, cert=args.cert, key=args.key, ca=args.ca, host=args.host,
        port=None if args.port < 0 else args.port, http_port=args.http_port,
        ops_host=args.ops_host, ops_port=args.ops_port, state_dir=args.state_dir,
        instance_name=args.instance_name, trusted_proxies=tuple(args.trusted_proxy),
        cert_header=args.cert_header,
        original_consumer_allowed=tuple(args.original_consumer_allowed),
        max_body=args.max_body, default_timeout=args.default_timeout,
        catalogue_retry=args.catalogue_retry, catalogue_poll=args.catalogue_poll,
        message_log=args.message_log,
    )


def run_serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if config.port is not None and not (config.cert and config.key and config.ca):
            raise ValueError("the HTTPS listener needs --cert, --key and --ca (or --port -1)")
        if config.message_log is not None and config.key is None:
            raise ValueError("--message-log is signed with the platform's key: give --key")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return_large_blocks_to_the_os()  # before the server's threads start
    try:
        serve(config, call_log=CallLog(None if args.quiet_calls else sys.stderr))
    except (OSError, ValueError) as exc:
        # a port in use, an unreadable certificate or message log, a key the log cannot sign
        # with: say which, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.vp")
    register_platform(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["platform", *(argv if argv is not None else sys.argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s "
                        "%(message)s")
    return args.handler(args)
