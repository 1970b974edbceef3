"""`listning` command line.

Each top-level folder owns its commands in its own ``cli`` module, which exposes
``register(subparsers)``; this module only stitches them together, so a newcomer finds the
code for ``listning tak ...`` in ``routing/cli.py`` and for ``listning validate`` in
``interactions/cli.py``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

# spyne 2.14 imports the deprecated `cgi` module on Python 3.11; that one warning is expected.
warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)

COMMAND_MODULES = (
    "interactions.cli",
    "routing.cli",
    "producers.cli",
    "consumers.cli",
    "listning.pilot_cli",
)

# Which module registers which top-level command. A command line names one command, so only
# that module (and what it imports: aiohttp, SQLAlchemy, spyne ...) is loaded; `--help` and
# unknown commands load them all. This keeps `listning validate` quick to start.
COMMAND_OWNERS = {
    "validate": "interactions.cli",
    "contract": "interactions.cli",
    "pki": "routing.cli",
    "tak": "routing.cli",
    "platform": "routing.cli",
    "region": "producers.cli",
    "population": "producers.cli",
    "report": "producers.cli",
    "eservice": "consumers.cli",
    "conformance": "consumers.cli",
    "mock-producer": "consumers.cli",
    "pilot": "listning.pilot_cli",
}


def _command_of(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listning",
        description="Listning: cross-region primary-care listing over RIV-TA (carelisting 2.1).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    owner = COMMAND_OWNERS.get(_command_of(argv or []) or "")
    for name in (owner,) if owner else COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that folder has no commands yet; any other import error is a bug
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not args.verbose:  # migrations announce every plugin at INFO; only problems matter here
        logging.getLogger("alembic").setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
