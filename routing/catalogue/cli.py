"""``listning tak ...``: administer the service catalogue.

Every command takes ``--db URL`` (default $LISTNING_TAK_DB, else ``sqlite:///tak.db``) and
brings the database to the newest schema first. Changes reach the platform after
``listning tak publish``. Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from interactions.identifiers import counties
from listning.runtime import serve_until_stopped
from routing.catalogue import GLABSC_PATH, PLATFORM_HSA_ID, rules
from routing.catalogue.db import ENV_VAR, DatabaseError
from routing.catalogue.service import Catalogue, CatalogueError


def register_tak(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=None,
                        help=f"catalogue database URL (default ${ENV_VAR} or sqlite:///tak.db)")
    period = argparse.ArgumentParser(add_help=False)
    period.add_argument("--from", dest="from_date", metavar="DATE",
                        help="first valid day, YYYY-MM-DD (default today, Europe/Stockholm)")
    period.add_argument("--to", dest="to_date", metavar="DATE",
                        help="last valid day, inclusive (default 9999-12-31)")

    tak = subparsers.add_parser("tak", help="the service catalogue: routes and permissions",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = tak.add_subparsers(dest="tak_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("connect-region", parents=[common, period],
                       help="route every producer contract for a county to a region's system")
    p.add_argument("county", metavar="COUNTY", help=f"county code ({', '.join(counties())})")
    p.add_argument("--url", required=True,
                   help="base URL of the region's listing system (contract paths are appended)")
    p.add_argument("--hsa-id", required=True, help="HSA-id of the region's listing system")
    p.add_argument("--profile", default="RIVTABP21", choices=rules.PROFILES)
    p.set_defaults(handler=_handler(_connect_region))

    p = sub.add_parser("add-route", parents=[common, period],
                       help="route one contract (or 'all') at a logical address to a URL")
    p.add_argument("contract", metavar="CONTRACT", help="contract name, namespace or 'all'")
    p.add_argument("address", metavar="ADDRESS", help="logical address ('*' = catch-all)")
    p.add_argument("--url", required=True, help="the producer's full endpoint URL")
    p.add_argument("--hsa-id", required=True, help="HSA-id of the producing system")
    p.add_argument("--profile", default="RIVTABP21", choices=rules.PROFILES)
    p.set_defaults(handler=_handler(_add_route))

    p = sub.add_parser("connect-catalogue", parents=[common, period],
                       help="route GetLogicalAddresseesByServiceContract at the platform's "
                       f"HSA-id ({PLATFORM_HSA_ID}) to `tak serve`")
    p.add_argument("--url", required=True,
                   help=f"base URL of `listning tak serve` ({GLABSC_PATH} is appended)")
    p.set_defaults(handler=_handler(_connect_catalogue))

    p = sub.add_parser("permit", parents=[common, period],
                       help="permit a consumer to call a contract at a logical address")
    p.add_argument("consumer", metavar="CONSUMER", help="the consumer's HSA-id")
    p.add_argument("contract", metavar="CONTRACT", help="contract name, namespace or 'all'")
    p.add_argument("address", metavar="ADDRESS", help="logical address ('*' = any)")
    p.set_defaults(handler=_handler(_permit))

    p = sub.add_parser("revoke", parents=[common],
                       help="remove a consumer's permission (or end it from a date)")
    p.add_argument("consumer", metavar="CONSUMER")
    p.add_argument("contract", metavar="CONTRACT", help="contract name, namespace or 'all'")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--from", dest="from_date", metavar="DATE",
                   help="revoked from this day on (default: remove entirely)")
    p.set_defaults(handler=_handler(_revoke))

    p = sub.add_parser("remove-component", parents=[common],
                       help="remove a system: its permissions, endpoints and routes")
    p.add_argument("hsa_id", metavar="HSAID")
    p.set_defaults(handler=_handler(_remove_component))

    p = sub.add_parser("set-timeout", parents=[common],
                       help="the platform's producer timeout for a contract")
    p.add_argument("contract", metavar="CONTRACT", help="contract name, namespace or 'all'")
    p.add_argument("seconds", metavar="SECONDS", type=float)
    p.set_defaults(handler=_handler(_set_timeout))

    p = sub.add_parser("list", parents=[common],
                       help="routes and permissions, current versus published")
    p.set_defaults(handler=_handler(_list))

    p = sub.add_parser("publish", parents=[common],
                       help="publish the current catalogue to the platform")
    p.set_defaults(handler=_handler(_publish))

    p = sub.add_parser("import", parents=[common],
                       help="replace the catalogue with a TOML file (then publish)")
    p.add_argument("file", metavar="FILE", type=Path)
    p.set_defaults(handler=_handler(_import))

    p = sub.add_parser("export", parents=[common], help="write the catalogue as TOML")
    p.add_argument("--out", metavar="FILE", type=Path, help="write here instead of stdout")
    p.set_defaults(handler=_handler(_export))

    p = sub.add_parser("serve", parents=[common],
                       help="serve /snapshot, /status and GetLogicalAddresseesByServiceContract")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8085, help="0 picks a free port (printed)")
    p.add_argument("--cert", type=Path, help="server certificate (PEM); with --key and --ca "
                   "the service requires client certificates (mutual TLS)")
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path, help="CA that issued the clients' certificates")
    p.set_defaults(handler=_handler(_serve))


def _handler(func: Callable[[Catalogue, argparse.Namespace], int]) -> Callable[..., int]:
    """Open the catalogue, run the command, and turn every expected failure into one line."""

    def run(args: argparse.Namespace) -> int:
        try:
            with Catalogue(args.db) as cat:
                return func(cat, args)
        except (CatalogueError, DatabaseError) as exc:
            return _fail(str(exc))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            return _fail(f"database error: {reason}")
        except OSError as exc:
            return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    return run


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _dates(args: argparse.Namespace):
    f = rules.parse_date(args.from_date) if getattr(args, "from_date", None) else None
    t = rules.parse_date(args.to_date) if getattr(args, "to_date", None) else None
    return f, t


def _connect_region(cat: Catalogue, args: argparse.Namespace) -> int:
    f, t = _dates(args)
    n = cat.connect_region(args.county, args.url, args.hsa_id, from_date=f, to_date=t,
                           profile=args.profile)
    print(f"county {args.county}: {n} route(s) added for {args.hsa_id} at {args.url}"
          + ("" if n else " (already there)") + "; run `listning tak publish` to take effect")
    return 0


def _add_route(cat: Catalogue, args: argparse.Namespace) -> int:
    f, t = _dates(args)
    n = cat.add_route(args.contract, args.address, args.url, args.hsa_id, profile=args.profile,
                      from_date=f, to_date=t)
    print(f"{n} route(s) added" + ("" if n else " (already there)"))
    return 0


def _connect_catalogue(cat: Catalogue, args: argparse.Namespace) -> int:
    f, t = _dates(args)
    n = cat.route_catalogue_service(args.url, from_date=f, to_date=t)
    print(f"{n} route(s) added for GetLogicalAddresseesByServiceContract at {PLATFORM_HSA_ID}"
          + ("" if n else " (already there)"))
    return 0


def _permit(cat: Catalogue, args: argparse.Namespace) -> int:
    f, t = _dates(args)
    n = cat.permit(args.consumer, args.contract, args.address, from_date=f, to_date=t)
    print(f"{n} permission(s) added for {args.consumer}"
          + ("" if n else " (already there)") + "; run `listning tak publish` to take effect")
    return 0


def _revoke(cat: Catalogue, args: argparse.Namespace) -> int:
    f = rules.parse_date(args.from_date) if args.from_date else None
    n = cat.revoke(args.consumer, args.contract, args.address, from_date=f)
    print(f"{n} permission(s) revoked" if n else "nothing to revoke: no such permission")
    return 0


def _remove_component(cat: Catalogue, args: argparse.Namespace) -> int:
    r = cat.remove_component(args.hsa_id)
    print(f"removed {args.hsa_id}: {r.permissions} permission(s), {r.endpoints} endpoint(s), "
          f"{r.routes} route(s) revoked by removing the component from the catalogue")
    return 0


def _set_timeout(cat: Catalogue, args: argparse.Namespace) -> int:
    names = cat.set_timeout(args.contract, args.seconds)
    print(f"timeout {args.seconds:g} s for {', '.join(names)}")
    return 0


def _list(cat: Catalogue, args: argparse.Namespace) -> int:
    published = cat.published()
    if published is None:
        print("published: nothing yet (run `listning tak publish`)")
    else:
        print(f"published: {published.snapshot_id} at {published.published_at:%Y-%m-%d %H:%M} "
              f"UTC ({len(published.routes)} routes, {len(published.permissions)} permissions)")
    rows = cat.listing()
    if not rows:
        print("the catalogue is empty")
        return 0
    table = [("KIND", "CONTRACT", "ADDRESS", "PRODUCER / CONSUMER", "FROM", "TO", "STATE")]
    table += [(r.kind, r.contract, r.address, r.party, str(r.from_date), str(r.to_date), r.state)
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    pending = sum(r.state != "published" for r in rows)
    print(f"{pending} change(s) not published" if pending else "everything is published")
    return 0


def _publish(cat: Catalogue, args: argparse.Namespace) -> int:
    s = cat.publish()
    print(f"published {s.snapshot_id}: {len(s.routes)} routes, {len(s.permissions)} permissions")
    return 0


def _import(cat: Catalogue, args: argparse.Namespace) -> int:
    cat.import_toml(args.file.read_text(encoding="utf-8"))
    print(f"imported {args.file}; run `listning tak publish` to take effect")
    return 0


def _export(cat: Catalogue, args: argparse.Namespace) -> int:
    text = cat.export_toml()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _serve(cat: Catalogue, args: argparse.Namespace) -> int:
    from routing.catalogue import server

    tls = [args.cert, args.key, args.ca]
    if any(tls) and not all(tls):
        return _fail("--cert, --key and --ca go together (mutual TLS) or not at all")
    ctx = None
    if all(tls):
        try:
            ctx = server.tls_context(args.cert, args.key, args.ca)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot use the TLS files: {exc}")

    async def main() -> None:
        runner, port = await server.start(cat, args.host, args.port, ctx)
        scheme = "https" if ctx else "http"
        print(f"catalogue service listening on {scheme}://{args.host}:{port}", flush=True)
        await serve_until_stopped(runner.cleanup)

    try:
        asyncio.run(main())
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    return 0
