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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listning",
        description="Listning: cross-region primary-care listing over RIV-TA (carelisting 2.1).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that folder has no commands yet; any other import error is a bug
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
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
