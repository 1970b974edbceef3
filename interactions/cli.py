"""Commands on the contract itself: ``listning validate`` and ``listning contract lint|zip``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from interactions import lint, package, validator

    p = subparsers.add_parser(
        "validate",
        help="validate SOAP envelopes or bare payloads against the contract",
        description="Validate SOAP 1.1 envelopes or bare payloads of the carelisting release. "
        "Exit status: 0 valid, 1 invalid, 2 unusable input.",
    )
    validator.add_arguments(p)
    p.set_defaults(handler=validator.run)

    contract = subparsers.add_parser("contract", help="lint or package the contract files")
    sub = contract.add_subparsers(dest="contract_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("lint", help="check a service-domain folder against RIV-TA BP 2.1 rules")
    lint.add_arguments(p)
    p.set_defaults(handler=lint.run)
    p = sub.add_parser("zip", help="write the release zip in the RIV-TA layout")
    package.add_arguments(p)
    p.set_defaults(handler=package.run)
