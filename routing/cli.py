"""The platform's commands: ``listning pki``, ``listning tak``, ``listning platform``."""

from __future__ import annotations

import argparse
import importlib


def register(subparsers: argparse._SubParsersAction) -> None:
    from routing import pki

    pki.register(subparsers)
    for module, func in (("routing.catalogue.cli", "register_tak"),
                         ("routing.vp.cli", "register_platform")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        getattr(mod, func)(subparsers)
