"""``listning pilot``: not built yet — says so plainly instead of pretending."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pilot", help="run the whole exchange (not built yet)")
    p.add_argument("--data-dir", default="pilot-data")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(
        "The pilot is not built yet. What exists today: the contract files (interactions/, "
        "schemas/), `listning validate`, `listning contract lint|zip`.\n"
        "See the open issues for the platform, the region listing systems and the e-service.",
        file=sys.stderr,
    )
    return 1
