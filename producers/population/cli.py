"""``listning population ...``: generate, serve and change the simulated population register.

Wired in by ``producers/cli.py`` through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from producers.population.register import PopulationRegister

DEFAULT_DB = "sqlite:///population.db"


def register(subparsers: argparse._SubParsersAction) -> None:
    pop = subparsers.add_parser("population", help="the simulated population register (Navet)")
    sub = pop.add_subparsers(dest="population_command", metavar="SUBCOMMAND", required=True)

    def db(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=DEFAULT_DB,
                       help=f"SQLAlchemy URL of the register (default {DEFAULT_DB})")

    p = sub.add_parser("generate", help="fill an empty register with a synthetic population")
    db(p)
    p.add_argument("-n", type=int, required=True, help="number of synthetic persons "
                   "(the test persons are added on top)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same people")
    p.add_argument("--counties", help="comma-separated county codes (default: all 21)")
    p.add_argument("--as-of", type=date.fromisoformat, help="reference date for ages "
                   "(YYYY-MM-DD; default today)")
    p.add_argument("--replace", action="store_true", help="drop an existing population first")
    p.set_defaults(handler=_generate)

    p = sub.add_parser("serve", help="serve the read API (GET /persons/ID, GET /changes)")
    db(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--cert", type=Path, help="server certificate (with --key and --ca: mTLS)")
    p.add_argument("--key", type=Path)
    p.add_argument("--ca", type=Path, help="CA that signs the clients' certificates")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("show", help="print a person as the API returns it")
    db(p)
    p.add_argument("pid", metavar="PID")
    p.set_defaults(handler=_show)

    p = sub.add_parser("move", help="move a resident to another county (appends to the feed)")
    db(p)
    p.add_argument("pid", metavar="PID")
    p.add_argument("--to", required=True, metavar="COUNTY", help="two-digit county code")
    p.add_argument("--municipality", metavar="CODE", help="four-digit municipality code")
    p.set_defaults(handler=_move)

    for name, helptext in (("death", "record a death"), ("emigrate", "record an emigration")):
        p = sub.add_parser(name, help=f"{helptext} (appends to the feed)")
        db(p)
        p.add_argument("pid", metavar="PID")
        p.set_defaults(handler=_leave, kind=name)

    p = sub.add_parser("birth", help="record a birth to one or two guardians")
    db(p)
    p.add_argument("--guardian", action="append", required=True, metavar="PID")
    p.set_defaults(handler=_birth)

    p = sub.add_parser("changes", help="print the change feed")
    db(p)
    p.add_argument("--since", type=int, default=0)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler=_changes)


def _open(args: argparse.Namespace) -> PopulationRegister:
    # imported here, not at the top: `listning --help` need not load SQLAlchemy
    from producers.population.register import PopulationRegister

    return PopulationRegister(args.db)


def _generate(args: argparse.Namespace) -> int:
    from producers.population.register import RegisterError

    reg = _open(args)
    if args.replace:
        reg.drop_all()
    counties = args.counties.split(",") if args.counties else None

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} persons", end="", file=sys.stderr, flush=True)

    try:
        written = reg.generate(args.n, args.seed, counties, progress, as_of=args.as_of)
    except (RegisterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\n{written} persons written to {args.db} (seed {args.seed})", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from producers.population.api import serve

    try:
        serve(args.db, args.host, args.port, cert=args.cert, key=args.key, ca=args.ca)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _show(args: argparse.Namespace) -> int:
    from producers.population.api import person_document

    doc = person_document(_open(args), args.pid)
    if doc is None:
        print("error: no person with that number in the register", file=sys.stderr)
        return 1
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


def _run_change(func: Callable[..., object], *a: object, **kw: object) -> int:
    from producers.population.register import RegisterError

    try:
        result = func(*a, **kw)
    except RegisterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0


def _move(args: argparse.Namespace) -> int:
    return _run_change(_open(args).record_move, args.pid, args.to, args.municipality)


def _leave(args: argparse.Namespace) -> int:
    reg = _open(args)
    return _run_change(reg.record_death if args.kind == "death" else reg.record_emigration,
                       args.pid)


def _birth(args: argparse.Namespace) -> int:
    return _run_change(_open(args).record_birth, args.guardian)


def _changes(args: argparse.Namespace) -> int:
    for c in _open(args).changes_since(args.since, args.limit):
        print(json.dumps(c.to_json(), ensure_ascii=False))
    return 0
