"""The catalogue as one readable TOML file (``listning tak export`` / ``import``).

Export writes every entry in a fixed order, with explicit dates, so that exporting what was
imported gives the same file byte for byte. Import replaces the whole current catalogue in one
transaction and goes through the same checks as the commands (overlaps, HSA-ids, URLs); an
error names the entry, e.g. ``routes[3]: ...``. Routes and permissions name their contract by
namespace (export) or by namespace or contract name (import).
"""

from __future__ import annotations

import tomllib
from datetime import date
from typing import TYPE_CHECKING, Any

import tomli_w
from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.catalogue.models import Address, Component, Contract, Endpoint, Permission, Route
from routing.catalogue.rules import CatalogueError

if TYPE_CHECKING:
    from routing.catalogue.service import Catalogue

HEADER = """\
# The Listning service catalogue (TAK).
# `listning tak import FILE` replaces the catalogue with this file's content; the platform
# sees it after `listning tak publish`. Dates are inclusive local dates (Europe/Stockholm).
# HSA-ids, logical addresses and namespaces are matched case-insensitively.

"""

_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # section: (required keys, optional keys)
    "components": ({"hsa_id"}, {"description"}),
    "contracts": ({"namespace", "name", "major", "minor"}, {"timeout_seconds"}),
    "addresses": ({"address"}, {"description"}),
    "endpoints": ({"component", "url", "profile"}, set()),
    "routes": ({"contract", "address", "url", "profile", "from", "to"}, set()),
    "permissions": ({"consumer", "contract", "address", "from", "to"}, set()),
}


def export_text(s: Session) -> str:
    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v is not None}

    doc: dict[str, list[dict[str, Any]]] = {
        "components": [
            drop_none({"hsa_id": c.hsa_id, "description": c.description})
            for c in s.scalars(select(Component).order_by(Component.hsa_key))
        ],
        "contracts": [
            drop_none({"name": c.name, "namespace": c.namespace, "major": c.major,
                       "minor": c.minor, "timeout_seconds": c.timeout_seconds})
            for c in s.scalars(select(Contract).order_by(Contract.namespace_key))
        ],
        "addresses": [
            drop_none({"address": a.address, "description": a.description})
            for a in s.scalars(select(Address).order_by(Address.address_key))
        ],
        "endpoints": [
            {"component": e.component.hsa_id, "url": e.url, "profile": e.profile}
            for e in s.scalars(select(Endpoint).order_by(Endpoint.url, Endpoint.profile))
        ],
        "routes": sorted(
            ({"contract": r.contract.namespace, "address": r.address.address,
              "url": r.endpoint.url, "profile": r.endpoint.profile,
              "from": r.from_date, "to": r.to_date} for r in s.scalars(select(Route))),
            key=lambda d: (d["contract"].casefold(), d["address"].casefold(), d["from"],
                           d["url"]),
        ),
        "permissions": sorted(
            ({"consumer": p.consumer.hsa_id, "contract": p.contract.namespace,
              "address": p.address.address, "from": p.from_date, "to": p.to_date}
             for p in s.scalars(select(Permission))),
            key=lambda d: (d["consumer"].casefold(), d["contract"].casefold(),
                           d["address"].casefold(), d["from"]),
        ),
    }
    # One [[section]] table per entry (tomli_w would fold short arrays into inline tables).
    parts = [HEADER]
    for section, entries in doc.items():
        for entry in entries:
            parts.append(f"[[{section}]]\n{tomli_w.dumps(entry)}\n")
    return "".join(parts).rstrip("\n") + "\n"


def import_text(cat: Catalogue, s: Session, text: str) -> None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"not a readable TOML file: {exc}") from None
    unknown = set(doc) - set(_FIELDS)
    if unknown:
        raise CatalogueError(f"unknown section(s) {', '.join(sorted(unknown))}; the sections "
                             f"are {', '.join(_FIELDS)}")
    entries = {name: _entries(doc, name) for name in _FIELDS}
    cat.clear(s)
    s.flush()
    for where, e in entries["components"]:
        _at(where, lambda e=e: cat._component(s, e["hsa_id"], e.get("description")))
    for where, e in entries["contracts"]:
        def add_contract(e: dict[str, Any] = e) -> None:
            row = cat._contract_row(s, e["namespace"], e["name"], _int(e["major"]),
                                    _int(e["minor"]))
            if "timeout_seconds" in e:
                row.timeout_seconds = float(e["timeout_seconds"])
        _at(where, add_contract)
    for where, e in entries["addresses"]:
        _at(where, lambda e=e: cat._address(s, e["address"], e.get("description")))
    for where, e in entries["endpoints"]:
        _at(where, lambda e=e: cat._endpoint(s, cat._component(s, e["component"]), e["url"],
                                             e["profile"]))
    for where, e in entries["routes"]:
        def add_route(e: dict[str, Any] = e) -> None:
            endpoint = s.scalar(select(Endpoint).where(Endpoint.url == e["url"].strip(),
                                                       Endpoint.profile == e["profile"].upper()))
            if endpoint is None:
                raise CatalogueError(f"no endpoint {e['url']} ({e['profile']}) in [[endpoints]]")
            addr = cat._address(s, e["address"])
            for c in cat._contracts(s, e["contract"]):
                cat._route(s, c, addr, endpoint, _date(e["from"]), _date(e["to"]))
        _at(where, add_route)
    for where, e in entries["permissions"]:
        def add_permission(e: dict[str, Any] = e) -> None:
            comp, addr = cat._component(s, e["consumer"]), cat._address(s, e["address"])
            for c in cat._contracts(s, e["contract"]):
                cat._permission(s, comp, c, addr, _date(e["from"]), _date(e["to"]))
        _at(where, add_permission)


def _entries(doc: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    raw = doc.get(name, [])
    if not isinstance(raw, list):
        raise CatalogueError(f"{name} must be an array of tables ([[{name}]])")
    required, optional = _FIELDS[name]
    out = []
    for i, e in enumerate(raw, 1):
        where = f"{name}[{i}]"
        if not isinstance(e, dict):
            raise CatalogueError(f"{where}: must be a table")
        missing = required - set(e)
        if missing:
            raise CatalogueError(f"{where}: missing {', '.join(sorted(missing))}")
        extra = set(e) - required - optional
        if extra:
            raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        for k, v in e.items():
            if k in ("from", "to", "major", "minor", "timeout_seconds"):
                continue
            if not isinstance(v, str):
                raise CatalogueError(f"{where}: {k} must be a string")
        out.append((where, e))
    return out


def _at(where: str, action) -> None:
    try:
        action()
    except CatalogueError as exc:
        raise CatalogueError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CatalogueError(f"{where}: {exc}") from None


def _date(value: Any) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    raise CatalogueError(f"{value!r} is not a TOML date (write it as YYYY-MM-DD, unquoted)")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogueError(f"{value!r} is not a whole number")
    return value
