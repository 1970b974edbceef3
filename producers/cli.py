"""``listning region ...``: the region listing system's commands.

    listning region check-config FILE      validate a region TOML file (exit 2 on problems)
    listning region init-db --config FILE  create or upgrade the region's database
    listning region serve ...              the HTTPS producer (producers/serve_cli.py)
    listning region close-unit HSAID ...   close a unit: end its listings, relist, notify
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producers.config import ConfigError, load_config, resolve_database_url


def register(subparsers: argparse._SubParsersAction) -> None:
    region = subparsers.add_parser("region", help="a region's listing system")
    sub = region.add_subparsers(dest="region_command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate a region configuration file")
    p.add_argument("file", help="the region's TOML file, e.g. producers/regions/01.toml")
    p.set_defaults(handler=check_config)

    p = sub.add_parser("init-db", help="create or upgrade the region's database")
    p.add_argument("--config", required=True, help="the region's TOML file")
    p.add_argument("--database-url", metavar="URL",
                   help="the database (default: the configuration's database_url, else SQLite "
                   "in --data-dir)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="for the default SQLite file DIR/region-NN.sqlite (default: the "
                   "configuration's data_dir)")
    p.set_defaults(handler=init_db)

    __import__("producers.serve_cli").serve_cli.register_serve(sub)  # the HTTPS producer
    _register_close_unit(sub)

    # The simulated population register and the regional reports have commands of their own.
    from producers.population import cli as population_cli

    population_cli.register(subparsers)
    try:
        from producers.reports import cli as reports_cli
    except ModuleNotFoundError as exc:
        if exc.name != "producers.reports.cli":
            raise
    else:
        reports_cli.register(subparsers)


def check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    staffed = sum(1 for u in cfg.units if u.staff)
    print(f"{args.file}: {cfg.name} (county {cfg.county}), {len(cfg.units)} units "
          f"({staffed} with fixed doctor contact), listing types "
          f"{', '.join(t.code for t in cfg.listing_types)}: OK")
    return 0


def init_db(args: argparse.Namespace) -> int:
    from producers.storage import open_database

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    url = resolve_database_url(cfg, args.database_url, args.data_dir)
    db = open_database(url)
    db.dispose()
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    print(f"{cfg.name}: database {shown} is at the newest schema")
    return 0


# --- close-unit -----------------------------------------------------------------------------------

if TYPE_CHECKING:
    from producers.config import RegionConfig
    from producers.storage import Database


def _register_close_unit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "close-unit", help="close a unit: end its listings, relist passively, notify home regions",
        description="Close one of the region's units: every listing and queue place there ends; "
        "residents of other regions are handed back to their home region (an UpdateListing in "
        "the outbox, delivered by the running region's outbox worker); the region's own "
        "residents are listed at the nearest open unit when its rules list passively. The work "
        "is done --batch listings per transaction: an interrupted closure is finished by "
        "running the command again; for a unit closed completely it does nothing (exit 0).")
    p.add_argument("unit", metavar="UNIT_HSA_ID", help="the unit's HSA-id")
    p.add_argument("--config", metavar="FILE", help="the region's TOML file")
    p.add_argument("--db", metavar="URL", help="database URL, instead of the configuration's")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the pilot's data directory (with --region NN)")
    p.add_argument("--region", metavar="NN", help="county code of the region (with --data-dir)")
    p.add_argument("--population-url", metavar="URL",
                   help="the population register, for residents whose municipality the "
                   "region's database does not know (default with --data-dir: the running "
                   "pilot's)")
    p.add_argument("--cert", metavar="PEM", help="client certificate for an https register")
    p.add_argument("--key", metavar="PEM", help="its private key")
    p.add_argument("--ca", metavar="PEM", help="CA of the register's certificate")
    p.add_argument("--batch", type=int, default=500, metavar="N",
                   help="listings ended per transaction (default 500)")
    p.add_argument("--operator", default=None,
                   help="who closes the unit, for the access log (default: the login name)")
    p.set_defaults(handler=close_unit)


class _Problem(Exception):
    """Something the operator can fix: one line on stderr, exit status 2."""


def _region_database(args: argparse.Namespace) -> tuple[RegionConfig, str]:
    """The region's configuration and database URL, found as the reports find them — but never
    from ``--region`` alone (a shipped region's default database): this command changes data."""
    from producers.reports.source import ReportError, resolve

    if not args.config and not args.data_dir:
        raise _Problem("say which region database: --config FILE [--db URL], or "
                       "--data-dir DIR --region NN for the pilot")
    try:
        return resolve(region=args.region, config=args.config, db=args.db,
                       data_dir=args.data_dir)
    except ReportError as exc:
        raise _Problem(str(exc)) from None


def _open_existing(url: str) -> Database:
    """Open (and migrate, as ``serve`` does) a region database that exists: a mistyped path
    or URL must not make a new, empty one."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from listning.runtime import engine_url
    from producers.reports.source import shown_url
    from producers.storage import open_database

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = u.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise _Problem(f"no region database at {path or url} (has the region run? "
                           f"give --db URL)")
    engine = create_engine(engine_url(url))
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:
        raise _Problem(f"cannot open the region database {shown_url(url)}: "
                       f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    if not {"listings", "unit_closures"} <= tables:
        raise _Problem(f"{shown_url(url)} is not a region database (run `listning region "
                       f"init-db`)")
    return open_database(url)


def _population(args: argparse.Namespace) -> Any:
    """The population register to ask, or None: ``--population-url``, else the running
    pilot's (``endpoints.json`` in ``--data-dir``)."""
    import json

    url = args.population_url
    if not url and args.data_dir:
        endpoints = Path(args.data_dir) / "endpoints.json"
        try:
            url = json.loads(endpoints.read_text(encoding="utf-8")).get("population_url")
        except (OSError, ValueError, AttributeError):
            url = None
    if not url:
        return None
    from producers.population.api import PopulationClient
    from producers.serve_cli import PopulationOverHttp

    https = url.startswith("https:")
    return PopulationOverHttp(PopulationClient(url, cert=args.cert if https else None,
                                               key=args.key if https else None,
                                               ca=args.ca if https else None))


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def close_unit(args: argparse.Namespace) -> int:
    try:
        return _close_unit(args)
    except _Problem as exc:
        print(f"listning region close-unit: error: {exc}", file=sys.stderr)
        return 2


def _operator(name: str | None) -> str:
    import getpass

    if name:
        return name[:64]
    try:
        return getpass.getuser()[:64]
    except Exception:
        return "unknown"


def _close_unit(args: argparse.Namespace) -> int:
    import uuid

    from producers import flows
    from producers.context import local_now
    from producers.region import Region
    from producers.storage.models import AccessLog

    if args.batch < 1:
        raise _Problem("--batch must be at least 1")
    cfg, url = _region_database(args)
    unit = cfg.unit(args.unit)
    if unit is None:
        raise _Problem(f"{args.unit} is not a unit of {cfg.name} ({cfg.source}; "
                       f"`listning region check-config` checks the file)")
    region = Region(cfg, _open_existing(url), population=_population(args))
    try:
        now = local_now()
        with region.db.transaction() as s:  # who closes it: in the access log, first
            s.add(AccessLog(at=now, person_id=None, contract="Operator:close-unit",
                            action="change", caller_hsa_id=None, original_consumer=None,
                            actor_type="OPERATOR", actor_id=_operator(args.operator),
                            correlation_id=str(uuid.uuid4()), result_code="OK"))
        done = flows.Closure(unit.hsa_id, now)

        def progress(part: flows.Closure) -> None:
            done.merge(part)
            if done.batches % 20 == 0:
                print(f"  ... {done.ended} listings ended", file=sys.stderr, flush=True)

        try:
            result = flows.closure(region, unit.hsa_id, now, batch=args.batch,
                                   on_batch=progress)
        except KeyboardInterrupt:
            print(f"interrupted: {done.ended} listings ended so far; the unit is closed — run "
                  f"the same command again to finish", file=sys.stderr)
            return 130
    finally:
        region.db.dispose()
    when = result.closed_at.isoformat(sep=" ", timespec="minutes")
    name = f"{unit.name} ({unit.hsa_id})"
    if result.already_closed and not result.ended and not result.queue_places:
        print(f"{cfg.name}: {name} was closed on {when}; nothing left to do")
        return 0
    if result.already_closed:
        print(f"{cfg.name}: {name} was closed on {when}; its closure is finished now")
    else:
        print(f"{cfg.name}: closed {name} at {when}")
    relisted = sum(result.relisted.values())
    print(f"  listings ended: {result.ended}; queue places ended: {result.queue_places}")
    print(f"  own residents relisted here (passive listing): {relisted}"
          + (f" ({_counts(result.relisted)})" if relisted else ""))
    print(f"  own residents listed nowhere until they choose: {result.listed_nowhere}")
    notified = sum(result.notified.values())
    print(f"  UpdateListing queued for their home regions: {notified}"
          + (f" ({_counts(result.notified)})" if notified else ""))
    if notified:
        print(f"  region {cfg.county}'s outbox worker (`listning region serve`) delivers them")
    return 0
