"""``listning contract zip``: the release zip, in the RIV-TA layout.

    schemas/core_components/*.xsd
    schemas/interactions/<Contract>Interaction/*.wsdl, *.xsd
    README.txt

The files go in unchanged except for one thing: each ``schemaLocation`` of this repository's
layout (``../../schemas/X.xsd``) becomes the release layout's (``../../core_components/X.xsd``).
The zip is deterministic (sorted entries, fixed timestamps and permissions), so two runs give
identical bytes and a release can be checked by its hash.
"""

from __future__ import annotations

import argparse
import io
import os
import posixpath
import re
import sys
import tempfile
import zipfile
from pathlib import Path

from interactions.contracts import (
    DOMAIN_PREFIX,
    SCHEMAS_DIR,
    Contract,
    producer_contracts,
)

DOMAIN = DOMAIN_PREFIX.removeprefix("urn:riv:").rstrip(":")  # supportprocess:logistics:carelisting
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: no build time leaks in
CORE = "schemas/core_components"
INTERACTIONS = "schemas/interactions"

_REPO_LOCATION = re.compile(
    rb"""(schemaLocation\s*=\s*["'])\.\./\.\./schemas/([^"'/]+\.xsd)(["'])"""
)
_ANY_LOCATION = re.compile(rb"""schemaLocation\s*=\s*["']([^"']*)["']""")


class PackageError(RuntimeError):
    """The contract files cannot be packed into a consistent release."""


def release_version() -> str:
    """The release's version: that of the newest domain schema (<domain>_<m.n>.xsd)."""
    stem = DOMAIN.replace(":", "_")
    found = [m["v"] for p in SCHEMAS_DIR.glob(f"{stem}_*.xsd")
             if (m := re.fullmatch(rf"{stem}_(?P<v>\d+\.\d+)\.xsd", p.name))]
    if not found:
        raise PackageError(f"no domain schema {stem}_<m.n>.xsd in {SCHEMAS_DIR}")
    return max(found, key=lambda v: tuple(int(n) for n in v.split(".")))


def zip_name() -> str:
    return f"ServiceContracts_{DOMAIN.replace(':', '_')}_{release_version()}.zip"


def _readme(contracts: list[Contract]) -> bytes:
    rows = [f"  {c.name} {c.version}\n      {c.namespace}\n      producer path {c.path}"
            for c in contracts]
    text = f"""\
Service contracts {DOMAIN} {release_version()}, RIV-TA Basic Profile 2.1

Layout
  schemas/core_components/                     domain schema, its minor-version extension,
                                               itintegration registry and monitoring schemas
  schemas/interactions/<Contract>Interaction/  each contract's WSDL and Responder schema

Contracts (name, version, Responder namespace = service contract, producer URL path)
{chr(10).join(rows)}

Every producer of this domain (each region's listing system) must also serve
PingForConfiguration 1.0 (service domain itintegration:monitoring), which is included here.

Every request carries the LogicalAddress header: for the domain's contracts it is the
two-digit county code of the region whose listing system must answer; PingForConfiguration
ignores it.

Errors: the contracts define no SOAP faults of their own. Logical errors travel in the
response as resultCode + resultText; a SOAP fault means a technical error.
"""
    return text.encode("utf-8")


def release_files() -> list[tuple[str, bytes]]:
    """(name in the zip, content) for every file of the release, sorted by name."""
    files: dict[str, bytes] = {}
    for xsd in sorted(SCHEMAS_DIR.glob("*.xsd")):
        files[f"{CORE}/{xsd.name}"] = xsd.read_bytes()
    contracts = producer_contracts()  # the domain's contracts and ping, not the platform's own
    for c in contracts:
        for path in sorted([*c.folder.glob("*.wsdl"), *c.folder.glob("*.xsd")]):
            data = _REPO_LOCATION.sub(rb"\1../../core_components/\2\3", path.read_bytes())
            files[f"{INTERACTIONS}/{c.folder.name}/{path.name}"] = data
    files["README.txt"] = _readme(sorted(contracts, key=lambda c: c.name))
    _check_locations(files)
    return sorted(files.items())


def _check_locations(files: dict[str, bytes]) -> None:
    """Every schemaLocation must name a file of the release, or the zip is useless to a reader."""
    for name, data in files.items():
        for m in _ANY_LOCATION.finditer(data):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m[1].decode()))
            if target not in files:
                raise PackageError(f"{name}: schemaLocation {m[1].decode()!r} names no file of "
                                   "the release (only ../../schemas/X.xsd is rewritten)")


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in release_files():
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the building machine
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            zf.writestr(info, data, compresslevel=9)
    return buf.getvalue()


def write_zip(out_dir: Path) -> Path:
    """Write the release zip into out_dir (created if missing), atomically; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / zip_name()
    data = zip_bytes()
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".", suffix=".zip.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)  # readers never see a half-written zip
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write ServiceContracts_<domain>_<version>.zip in the RIV-TA release layout "
        "(schemas/core_components/, schemas/interactions/<Contract>Interaction/): the domain's "
        "contracts and PingForConfiguration. Two runs give identical bytes."
    )
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="folder to write the zip into (default: the current folder)")


def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.out.is_dir():
        print(f"listning contract zip: --out {args.out} is not a folder", file=sys.stderr)
        return 2
    try:
        target = write_zip(args.out)
    except PackageError as exc:
        print(f"listning contract zip: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"listning contract zip: cannot write to {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print(f"wrote {target.resolve()} ({count} files, {target.stat().st_size} bytes)")
    return 0
