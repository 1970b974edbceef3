"""``listning region ...``: the region listing system's commands.

    listning region check-config FILE      validate a region TOML file (exit 2 on problems)
    listning region init-db --config FILE  create or upgrade the region's database
    listning region serve ...              the HTTPS producer (producers/serve_cli.py)
"""

from __future__ import annotations

import argparse
import sys

from producers.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    region = subparsers.add_parser("region", help="a region's listing system")
    sub = region.add_subparsers(dest="region_command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate a region configuration file")
    p.add_argument("file", help="the region's TOML file, e.g. producers/regions/01.toml")
    p.set_defaults(handler=check_config)

    p = sub.add_parser("init-db", help="create or upgrade the region's database")
    p.add_argument("--config", required=True, help="the region's TOML file")
    p.add_argument("--database-url", help="instead of the configuration's database_url")
    p.set_defaults(handler=init_db)

    __import__("producers.serve_cli").serve_cli.register_serve(sub)  # the HTTPS producer

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
    url = args.database_url or cfg.database_url
    db = open_database(url)
    db.dispose()
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    print(f"{cfg.name}: database {shown} is at the newest schema")
    return 0
