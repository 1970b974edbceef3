"""``listning pilot``: run the whole exchange on this machine (see listning/pilot.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pilot", help="run the whole exchange on this machine (platform, regions, e-service)",
        description="Run the pilot: catalogue, platform, population register, the regions' "
        "listing systems and the 1177 e-service, with real SOAP over mutual TLS and SQLite "
        "under the data directory. The first start prepares everything; later starts reuse it.")
    p.add_argument("--data-dir", type=Path, default=Path("pilot-data"),
                   help="where everything is kept (default ./pilot-data)")
    p.add_argument("--regions", default="01,08",
                   help="comma-separated county codes, or 'all' (default 01,08)")
    p.add_argument("--population", type=int, default=2000,
                   help="synthetic residents to generate on first start (default 2000)")
    p.add_argument("--free-ports", action="store_true",
                   help="pick free ports on first start instead of the fixed defaults")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from listning import pilot

    try:
        regions = pilot.parse_regions(args.regions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.population < 10:
        print("error: --population must be at least 10", file=sys.stderr)
        return 2
    plan = pilot.PilotPlan(args.data_dir, regions, args.population, args.free_ports)
    return pilot.run(plan)
