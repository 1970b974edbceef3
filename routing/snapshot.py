"""A published catalogue snapshot: what the virtualisation layer routes and authorises on.

This is the interface between the catalogue (TAK, which stores and publishes) and the
virtualisation layer (VP, which loads and looks up). It is plain data: the VP swaps a whole
snapshot in atomically, and saves the last good one to a local file as JSON.

Date semantics: ``from_date`` and ``to_date`` are inclusive local dates in Europe/Stockholm;
an entry is valid on day D when ``from_date <= D <= to_date``. Matching of HSA-ids, logical
addresses and contract namespaces is case-insensitive. Lookups try the exact logical address
first, then the catch-all address ``*``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")
CATCH_ALL = "*"


def today_in_sweden(now: datetime | None = None) -> date:
    return (now or datetime.now(STOCKHOLM)).astimezone(STOCKHOLM).date()


def _key(*parts: str) -> tuple[str, ...]:
    return tuple(p.casefold() for p in parts)


@dataclass(frozen=True)
class Route:
    contract_namespace: str
    logical_address: str
    url: str
    riv_profile: str  # "RIVTABP21" or "RIVTABP20"
    component_hsa_id: str
    from_date: date
    to_date: date

    def valid_on(self, day: date) -> bool:
        return self.from_date <= day <= self.to_date


@dataclass(frozen=True)
class Permission:
    consumer_hsa_id: str
    contract_namespace: str
    logical_address: str
    from_date: date
    to_date: date

    def valid_on(self, day: date) -> bool:
        return self.from_date <= day <= self.to_date


@dataclass
class Snapshot:
    snapshot_id: str
    published_at: datetime
    routes: list[Route]
    permissions: list[Permission]
    # per-contract producer timeout in seconds, keyed by contract namespace (casefolded)
    timeouts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._routes: dict[tuple[str, ...], list[Route]] = defaultdict(list)
        for r in self.routes:
            self._routes[_key(r.contract_namespace, r.logical_address)].append(r)
        self._perms: dict[tuple[str, ...], list[Permission]] = defaultdict(list)
        self._by_consumer: dict[tuple[str, ...], list[Permission]] = defaultdict(list)
        for p in self.permissions:
            self._perms[_key(p.consumer_hsa_id, p.contract_namespace, p.logical_address)].append(p)
            self._by_consumer[_key(p.consumer_hsa_id, p.contract_namespace)].append(p)

    def routes_for(self, contract_namespace: str, logical_address: str, day: date) -> list[Route]:
        """Routes valid on ``day``: for the exact address if any, else for ``*``."""
        for address in (logical_address, CATCH_ALL):
            found = [r for r in self._routes.get(_key(contract_namespace, address), ())
                     if r.valid_on(day)]
            if found:
                return found
        return []

    def is_permitted(self, consumer: str, contract_namespace: str, logical_address: str,
                     day: date) -> bool:
        for address in (logical_address, CATCH_ALL):
            if any(p.valid_on(day) for p in
                   self._perms.get(_key(consumer, contract_namespace, address), ())):
                return True
        return False

    def addressees(self, consumer: str, contract_namespace: str, day: date) -> list[str]:
        """Logical addresses ``consumer`` may call for the contract on ``day`` (sorted)."""
        perms = self._by_consumer.get(_key(consumer, contract_namespace), ())
        found = {p.logical_address for p in perms if p.valid_on(day)}
        return sorted(found)

    def timeout_for(self, contract_namespace: str, default: float = 30.0) -> float:
        return self.timeouts.get(contract_namespace.casefold(), default)

    # --- serialisation (the local last-good copy, and the catalogue's publish format) ---

    def to_json(self) -> str:
        return json.dumps(
            {
                "snapshot_id": self.snapshot_id,
                "published_at": self.published_at.isoformat(),
                "routes": [asdict(r) for r in self.routes],
                "permissions": [asdict(p) for p in self.permissions],
                "timeouts": self.timeouts,
            },
            default=str,
            indent=1,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        raw = json.loads(text)
        def dates(d: dict) -> dict:
            return {**d, "from_date": date.fromisoformat(d["from_date"]),
                    "to_date": date.fromisoformat(d["to_date"])}
        return cls(
            snapshot_id=raw["snapshot_id"],
            published_at=datetime.fromisoformat(raw["published_at"]),
            routes=[Route(**dates(r)) for r in raw["routes"]],
            permissions=[Permission(**dates(p)) for p in raw["permissions"]],
            timeouts={k.casefold(): float(v) for k, v in raw.get("timeouts", {}).items()},
        )

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a crash never leaves half a snapshot."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        return cls.from_json(path.read_text(encoding="utf-8"))
