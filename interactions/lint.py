"""``listning contract lint [DIR]``: check a service-domain folder against RIV-TA BP 2.1.

Works on any service domain (the domain is read from the namespaces) and on both layouts:
this repository's (``schemas/`` + ``interactions/<Contract>Interaction/``) and the RIV-TA
release's (``schemas/core_components/`` + ``schemas/interactions/<Contract>Interaction/``),
as written by ``listning contract zip``. The rule ids are in ``lint_base.RULES``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import interactions
from interactions.lint_base import RULES, XS, Finding, Session
from interactions.lint_schema import check_compiles, check_core_name, check_schema
from interactions.lint_wsdl import check_interaction

__all__ = ["RULES", "Finding", "Layout", "NotADomainFolder", "find_layout", "lint_folder"]

REPO_ROOT = Path(interactions.__file__).resolve().parent.parent


class NotADomainFolder(ValueError):
    """DIR does not hold a service domain in either layout."""


@dataclass(frozen=True)
class Layout:
    root: Path
    kind: str  # "repository" | "release"
    core_dir: Path
    interactions_dir: Path

    def interaction_folders(self) -> list[Path]:
        """Every sub-folder holding contract files: a misnamed one is a finding, not skipped."""
        return sorted(
            d for d in self.interactions_dir.iterdir()
            if d.is_dir() and (any(d.glob("*.xsd")) or any(d.glob("*.wsdl")))
        )

    def core_schemas(self) -> list[Path]:
        return sorted(self.core_dir.glob("*.xsd"))


def find_layout(path: Path) -> Layout:
    root = path.resolve()
    if not root.is_dir():
        why = "it is not a folder" if root.exists() else "it does not exist"
        raise NotADomainFolder(f"{path} is not a service-domain folder: {why}")
    candidates = (
        ("release", root / "schemas" / "core_components", root / "schemas" / "interactions"),
        # DIR may also be the release's schemas/ folder itself.
        ("release", root / "core_components", root / "interactions"),
        ("repository", root / "schemas", root / "interactions"),
    )
    for kind, core, inter in candidates:
        if core.is_dir() and inter.is_dir():
            layout = Layout(root, kind, core, inter)
            if layout.interaction_folders():
                return layout
            raise NotADomainFolder(
                f"{path} is not a service-domain folder: {inter} holds no "
                "<Contract>Interaction folder with WSDL/XSD files")
    raise NotADomainFolder(
        f"{path} is not a service-domain folder: expected schemas/ and "
        "interactions/<Contract>Interaction/ (this repository's layout) or "
        "schemas/core_components/ and schemas/interactions/<Contract>Interaction/ "
        "(the RIV-TA release layout)")


def lint_folder(path: str | Path) -> list[Finding]:
    """Every RIV-TA BP 2.1 finding in a service-domain folder, sorted by file and line.

    Raises ``NotADomainFolder`` when the folder holds no service domain in either layout.
    """
    layout = find_layout(Path(path))
    s = Session(layout.root)
    xsds: list[Path] = []
    for core in layout.core_schemas():
        root = s.load(core)
        if root is None:
            continue
        if root.tag != f"{{{XS}}}schema":
            s.add("well-formed", core, root.sourceline or 0, "the root element is not xs:schema")
            continue
        check_core_name(s, core.resolve(), root)
        check_schema(s, core.resolve(), root)
        xsds.append(core.resolve())
    for folder in layout.interaction_folders():
        check_interaction(s, folder)
        xsds += [p.resolve() for p in sorted(folder.glob("*.xsd"))]
    for xsd in xsds:
        root = s.load(xsd)
        if root is not None and root.tag == f"{{{XS}}}schema":
            check_compiles(s, xsd, root)
    return sorted(s.findings, key=lambda f: (str(f.file), f.line, f.rule, f.message))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check a service-domain folder against the RIV-TA Basic Profile 2.1 naming and structure "
        "rules. DIR holds schemas/ and interactions/ (this repository) or "
        "schemas/core_components/ and schemas/interactions/ (an unzipped release). "
        "Exit status: 0 no findings, 1 findings, 2 DIR is not a service-domain folder."
    )
    parser.add_argument("dir", nargs="?", type=Path, default=None, metavar="DIR",
                        help="the folder to check (default: this installation's contract files)")
    parser.add_argument("--rules", action="store_true", help="list the rules and exit")


def run(args: argparse.Namespace) -> int:
    if args.rules:
        for rule, text in RULES.items():
            print(f"{rule:24} {text}")
        return 0
    target = args.dir if args.dir is not None else REPO_ROOT
    try:
        layout = find_layout(target)
        findings = lint_folder(target)
    except NotADomainFolder as exc:
        print(f"listning contract lint: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        print(f.display())
    folders = len(layout.interaction_folders())
    scope = (f"{folders} interaction folders and {len(layout.core_schemas())} core components "
             f"in {target} ({layout.kind} layout)")
    if not findings:
        print(f"lint: no findings: {scope} follow RIV-TA BP 2.1")
        return 0
    files = len({f.file for f in findings})
    rules = len({f.rule for f in findings})
    print(f"lint: {len(findings)} finding{'s' * (len(findings) != 1)} in {files} "
          f"file{'s' * (files != 1)} ({rules} rule{'s' * (rules != 1)}): {scope}")
    return 1
