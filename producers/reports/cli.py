"""``listning report ...``: a region's reports, read from the region's own database.

    listning report listed --region 08 [--at DATE] [--format csv|html|xlsx] [--out FILE]
    listning report out-of-county --region 01 [--at DATE] [--with-persons]
    listning report settlement --region 01 --month 2026-10

Which database: ``--config FILE`` (and ``--db URL`` to override its ``database_url``), the
pilot's ``--data-dir DIR --region NN``, or a shipped region's ``--region NN`` alone. Problems
the user can fix are one line on stderr and exit status 2. A report that lists persons
(personal identity numbers) is recorded in the region's access log with the operator's name.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO

from producers.reports import build
from producers.reports.progress import Progress
from producers.reports.source import ReportError, Source, open_source


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="a region's reports: listed, out-of-county, settlement",
        description="Reports read from a region's database (csv, self-contained html, xlsx).")
    sub = report.add_subparsers(dest="report_command", metavar="REPORT", required=True)

    p = sub.add_parser("listed", help="every resident listed at the region's units at a date")
    _common(p)
    p.add_argument("--at", metavar="DATE", help="the day (YYYY-MM-DD; default today): listings "
                   "in force at its end")
    p.add_argument("--totals-only", action="store_true",
                   help="csv/xlsx: only the totals per unit and home county, no persons")
    p.add_argument("--with-persons", action="store_true",
                   help="html: add the person list (csv and xlsx always have it)")
    p.set_defaults(handler=run_listed)

    p = sub.add_parser("out-of-county", help="the region's residents listed in other regions")
    _common(p)
    p.add_argument("--at", metavar="DATE", help="the day (YYYY-MM-DD; default today)")
    p.add_argument("--with-persons", action="store_true",
                   help="add the list of persons (for authorised use)")
    p.set_defaults(handler=run_out_of_county)

    p = sub.add_parser("settlement", help="the month's basis for compensation between regions")
    _common(p)
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="e.g. 2026-10")
    p.add_argument("--with-persons", action="store_true",
                   help="add the persons behind the figures (for authorised use)")
    p.set_defaults(handler=run_settlement)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", metavar="NN", help="county code of the region (01, 08 ...)")
    p.add_argument("--config", metavar="FILE", help="the region's TOML file")
    p.add_argument("--db", metavar="URL", help="database URL, instead of the configuration's")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the pilot's data directory (with --region NN)")
    p.add_argument("--format", choices=build.FORMATS, default=None,
                   help="csv (default), html or xlsx; by default from --out's suffix")
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--operator", default=None,
                   help="who runs the report, for the access log (default: the login name)")


# --- running ------------------------------------------------------------------------------------

def _date(text: str | None) -> date:
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"bad date {text!r}: expected YYYY-MM-DD, e.g. 2026-10-31") from None


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    return suffix if suffix in build.FORMATS else "csv"


def _open(args: argparse.Namespace) -> Source:
    return open_source(region=args.region, config=args.config, db=args.db,
                       data_dir=args.data_dir)


def _log_person_list(source: Source, report: str, operator: str | None) -> None:
    """Record in the region's access log that a person list is produced, and by whom — before
    it is: no record, no list."""
    from producers.context import local_now
    from producers.storage import open_database
    from producers.storage.models import AccessLog

    try:
        db = open_database(source.url, upgrade=False)
        try:
            with db.transaction() as s:
                s.add(AccessLog(at=local_now(), person_id=None, contract=f"Report:{report}",
                                action="read", caller_hsa_id=None, original_consumer=None,
                                actor_type="OPERATOR", actor_id=(operator or _login())[:64],
                                correlation_id=str(uuid.uuid4()), result_code="OK"))
        finally:
            db.dispose()
    except Exception as exc:
        raise ReportError(f"cannot record the person list in the region's access log "
                          f"({type(exc).__name__}); a person list needs that record") from None


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _run(args: argparse.Namespace, name: str, persons: bool,
         write: Callable[[Source, str, IO[bytes]], build.Outcome]) -> int:
    fmt = _format(args)
    if fmt == "xlsx" and not args.out and sys.stdout.isatty():
        raise ReportError("xlsx is a binary file: give --out FILE.xlsx")
    source = _open(args)
    try:
        if persons:
            _log_person_list(source, name, args.operator)
        if args.out:
            target = Path(args.out)
            if not target.parent.is_dir():
                raise ReportError(f"cannot write {target}: no directory {target.parent}")
            part = target.with_name(target.name + ".part")
            try:
                with part.open("wb") as out:
                    outcome = write(source, fmt, out)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
            where = f" -> {target}"
        else:
            outcome = write(source, fmt, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            where = ""
    finally:
        source.close()
    rows = f" ({outcome.rows} person rows)" if persons else ""
    print(outcome.summary + rows + where, file=sys.stdout if args.out else sys.stderr)
    return 0


def _readable(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Problems the user can fix: one line on stderr, exit status 2 (no traceback)."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ReportError as exc:
            print(f"listning report: error: {exc}", file=sys.stderr)
            return 2

    wrapped.__name__ = run.__name__
    wrapped.__doc__ = run.__doc__
    return wrapped


def _bar(label: str) -> Callable[[int], Progress]:
    return lambda total: Progress(label, total)


@_readable
def run_listed(args: argparse.Namespace) -> int:
    at = _date(args.at)
    fmt = _format(args)
    persons = (fmt != "html" and not args.totals_only) or (fmt == "html" and args.with_persons)
    return _run(args, "listed", persons, lambda src, f, out: build.write_listed(
        src, at, f, out, with_persons=args.with_persons, totals_only=args.totals_only,
        progress=_bar("listed")))


@_readable
def run_out_of_county(args: argparse.Namespace) -> int:
    at = _date(args.at)
    return _run(args, "out-of-county", args.with_persons,
                lambda src, f, out: build.write_out_of_county(
                    src, at, f, out, with_persons=args.with_persons,
                    progress=_bar("out-of-county")))


@_readable
def run_settlement(args: argparse.Namespace) -> int:
    from producers.reports.data import month_bounds

    try:
        month_bounds(args.month)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    return _run(args, "settlement", args.with_persons,
                lambda src, f, out: build.write_settlement(src, args.month, f, out,
                                                           with_persons=args.with_persons))


def main(argv: list[str] | None = None) -> int:
    """``listning report ...`` on its own (tests, and until the command is wired)."""
    parser = argparse.ArgumentParser(prog="listning")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
