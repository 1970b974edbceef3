"""The catalogue API: what ``listning tak ...`` and the pilot call.

Changes are made to the current rows; the platform sees them only after ``publish()``, which
turns the rows into a ``routing.snapshot.Snapshot``, stores it and makes it the current one.
Overlapping validity periods for the same route (logical address + contract) or the same
permission (consumer + contract + logical address) are refused; adding exactly what is already
there is a no-op, so setup scripts can be run again.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from interactions import contracts as release
from routing import snapshot as snap
from routing.catalogue import GLABSC_NAME, GLABSC_PATH, PLATFORM_HSA_ID, rules
from routing.catalogue.db import open_engine, session_factory
from routing.catalogue.models import (
    Address,
    Component,
    Contract,
    Endpoint,
    Permission,
    PublishedSnapshot,
    Route,
    key,
)
from routing.catalogue.rules import CatalogueError

__all__ = ["Catalogue", "CatalogueError", "ListingRow", "Removed"]

P = ParamSpec("P")
T = TypeVar("T")


def _retry_on_conflict(method: Callable[P, T]) -> Callable[P, T]:
    """Run a write again when a concurrent transaction created the same component, address,
    contract or endpoint first (a unique-key conflict): the retry finds and reuses it."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(3):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return run


@dataclass(frozen=True)
class Removed:
    """What ``remove_component`` dropped."""

    permissions: int
    routes: int
    endpoints: int


@dataclass(frozen=True)
class ListingRow:
    """One line of ``tak list``: a route or a permission and whether it is published."""

    kind: str  # "route" | "permission"
    contract: str  # contract name
    address: str
    party: str  # routes: the producer URL (and profile); permissions: the consumer HSA-id
    from_date: date
    to_date: date
    state: str  # "published" | "not published" | "removed, still published"


class Catalogue:
    """The service catalogue in one database (``db_url`` or $LISTNING_TAK_DB or sqlite)."""

    def __init__(self, db_url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine or open_engine(db_url)
        self._sessions = session_factory(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    # --- components -------------------------------------------------------------------

    @_retry_on_conflict
    def add_component(self, hsa_id: str, description: str | None = None) -> None:
        with self.session() as s:
            self._component(s, hsa_id, description)

    def remove_component(self, hsa_id: str) -> Removed:
        """Remove a component with its endpoints, their routes and its permissions."""
        with self.session() as s:
            comp = s.scalar(select(Component).where(Component.hsa_key == key(hsa_id)))
            if comp is None:
                raise CatalogueError(f"no service component {hsa_id!r} in the catalogue")
            removed = Removed(
                permissions=len(comp.permissions),
                routes=sum(len(e.routes) for e in comp.endpoints),
                endpoints=len(comp.endpoints),
            )
            s.delete(comp)
            return removed

    # --- contracts --------------------------------------------------------------------

    def contracts(self, spec: str) -> list[str]:
        """The namespaces ``spec`` names (a contract name, a namespace, or ``all``)."""
        with self.session() as s:
            return [c.namespace for c in self._contracts(s, spec)]

    @_retry_on_conflict
    def add_contract(self, namespace: str, name: str, major: int, minor: int) -> None:
        """A contract that is not in this release's contract files."""
        with self.session() as s:
            self._contract_row(s, namespace, name, major, minor)

    @_retry_on_conflict
    def set_timeout(self, contract: str, seconds: float) -> list[str]:
        if not 0 < seconds <= 3600:
            raise CatalogueError(f"timeout {seconds} s must be more than 0 and at most 3600")
        with self.session() as s:
            found = self._contracts(s, contract)
            for c in found:
                c.timeout_seconds = float(seconds)
            return [c.name for c in found]

    # --- routes -----------------------------------------------------------------------

    @_retry_on_conflict
    def add_route(self, contract: str, address: str, url: str, component_hsa_id: str, *,
                  profile: str = "RIVTABP21", from_date: date | None = None,
                  to_date: date | None = None) -> int:
        """Route ``address`` × each contract of ``contract`` to ``url``; returns routes added."""
        with self.session() as s:
            comp = self._component(s, component_hsa_id)
            addr = self._address(s, address)
            endpoint = self._endpoint(s, comp, url, profile)
            return sum(self._route(s, c, addr, endpoint, from_date, to_date)
                       for c in self._contracts(s, contract))

    @_retry_on_conflict
    def connect_region(self, county: str, url: str, hsa_id: str, *,
                       from_date: date | None = None, to_date: date | None = None,
                       profile: str = "RIVTABP21") -> int:
        """Route every producer contract for ``county`` to the region's system at ``url``.

        ``url`` is the base URL of the region's listing system; each contract's route gets
        its own endpoint ``url + /<Contract>/<major>/rivtabp21``. Returns routes added.
        """
        code = rules.county_code(county)
        base = rules.url(url).rstrip("/")
        region = rules.region_name(code)
        added = 0
        with self.session() as s:
            comp = self._component(s, hsa_id, f"{region} listing system")
            addr = self._address(s, code, region)
            for c in release.producer_contracts():
                row = self._release_contract(s, c)
                endpoint = self._endpoint(s, comp, base + c.path, profile)
                added += self._route(s, row, addr, endpoint, from_date, to_date)
        return added

    @_retry_on_conflict
    def route_catalogue_service(self, url: str, *, from_date: date | None = None,
                                to_date: date | None = None) -> int:
        """Route GetLogicalAddresseesByServiceContract at the platform's HSA-id to ``url``
        (the base URL of ``tak serve``), so consumers reach it through the platform."""
        full = rules.url(url).rstrip("/") + GLABSC_PATH
        with self.session() as s:
            comp = self._component(s, PLATFORM_HSA_ID, "National service platform (catalogue)")
            addr = self._address(s, PLATFORM_HSA_ID, "National service platform")
            endpoint = self._endpoint(s, comp, full, "RIVTABP21")
            return sum(self._route(s, c, addr, endpoint, from_date, to_date)
                       for c in self._contracts(s, GLABSC_NAME))

    # --- permissions ------------------------------------------------------------------

    @_retry_on_conflict
    def permit(self, consumer: str, contract: str, address: str, *,
               from_date: date | None = None, to_date: date | None = None) -> int:
        """Permit ``consumer`` to call ``contract`` at ``address``; returns permissions added."""
        with self.session() as s:
            comp = self._component(s, consumer)
            addr = self._address(s, address)
            return sum(self._permission(s, comp, c, addr, from_date, to_date)
                       for c in self._contracts(s, contract))

    @_retry_on_conflict
    def permit_many(self, grants: Iterable[tuple[str, str, str]], *,
                    from_date: date | None = None, to_date: date | None = None) -> int:
        """``permit`` for each (consumer, contract, address) of ``grants``, in one transaction:
        all or none, with the same rules (an identical permission is a no-op, an overlapping
        one is refused). Each contract is locked once and the existing permissions are read
        in one query: the pilot's ~900 grants for 21 regions took minutes one by one.
        Returns permissions added."""
        grants = list(dict.fromkeys(grants))  # read again if a conflict runs the write twice
        new = rules.period(from_date, to_date)
        with self.session() as s:
            comps: dict[str, Component] = {}
            addrs: dict[str, Address] = {}
            found: dict[str, list[Contract]] = {}
            for consumer, contract, address in grants:
                if key(consumer) not in comps:
                    comps[key(consumer)] = self._component(s, consumer)
                if key(address) not in addrs:
                    addrs[key(address)] = self._address(s, address)
                if contract not in found:
                    found[contract] = self._contracts(s, contract)
            rows = {c.id: c for cs in found.values() for c in cs}
            for c in rows.values():
                s.refresh(c, with_for_update=True)  # as _permission: serialises (PostgreSQL)
            periods: dict[tuple[int, int, int], list[tuple[date, date]]] = {}
            for perm in s.scalars(select(Permission).where(Permission.contract_id.in_(rows))):
                periods.setdefault((perm.component_id, perm.contract_id, perm.address_id),
                                   []).append((perm.from_date, perm.to_date))
            added = 0
            for consumer, contract, address in grants:
                comp, addr = comps[key(consumer)], addrs[key(address)]
                for c in found[contract]:
                    have = periods.setdefault((comp.id, c.id, addr.id), [])
                    if new in have:
                        continue
                    for old in have:
                        if rules.overlaps(new, old):
                            raise _overlapping_permission(comp, c, addr, old, new)
                    s.add(Permission(consumer=comp, contract=c, address=addr,
                                     from_date=new[0], to_date=new[1]))
                    have.append(new)
                    added += 1
            return added

    def revoke(self, consumer: str, contract: str, address: str, *,
               from_date: date | None = None) -> int:
        """End permissions: all of them, or from ``from_date`` on (periods that started
        earlier end the day before). Returns the number of permissions changed or removed."""
        with self.session() as s:
            comp = s.scalar(select(Component).where(Component.hsa_key == key(consumer)))
            addr = s.scalar(select(Address).where(Address.address_key == key(address)))
            found = self._contracts(s, contract)
            if comp is None or addr is None:
                return 0
            changed = 0
            for perm in s.scalars(select(Permission).where(
                    Permission.component_id == comp.id, Permission.address_id == addr.id,
                    Permission.contract_id.in_([c.id for c in found]))):
                if from_date is None or perm.from_date >= from_date:
                    s.delete(perm)
                    changed += 1
                elif perm.to_date >= from_date:
                    perm.to_date = date.fromordinal(from_date.toordinal() - 1)
                    changed += 1
            return changed

    # --- publishing -------------------------------------------------------------------

    def build_snapshot(self) -> snap.Snapshot:
        """A snapshot of the current rows (not stored; see ``publish``)."""
        with self.session() as s:
            return self._build(s, self._new_id(), datetime.now(UTC))

    def publish(self) -> snap.Snapshot:
        """Store a snapshot of the current rows and make it the one the platform loads."""
        with self.session() as s:
            published_at = datetime.now(UTC)
            snapshot = self._build(s, self._new_id(), published_at)
            descriptions = {a.address: a.description for a in s.scalars(select(Address))
                            if a.description}
            s.add(PublishedSnapshot(snapshot_id=snapshot.snapshot_id, published_at=published_at,
                                    content=snapshot.to_json(),
                                    address_descriptions=json.dumps(descriptions,
                                                                    ensure_ascii=False)))
            return snapshot

    def published_row(self) -> PublishedSnapshot | None:
        with self.session() as s:
            return s.scalar(select(PublishedSnapshot)
                            .order_by(PublishedSnapshot.seq.desc()).limit(1))

    def published(self) -> snap.Snapshot | None:
        """The current published snapshot, or None before the first publish."""
        row = self.published_row()
        return None if row is None else snap.Snapshot.from_json(row.content)

    def published_seq(self) -> int | None:
        """A cheap check whether the published snapshot changed (the server caches by it)."""
        with self.session() as s:
            return s.scalar(select(func.max(PublishedSnapshot.seq)))

    # --- listing ----------------------------------------------------------------------

    def listing(self) -> list[ListingRow]:
        """Every route and permission, current and published, with its publication state."""
        current = self.build_snapshot()
        published = self.published()
        names = self._contract_names()

        def route_key(r: snap.Route) -> tuple:
            return (key(r.contract_namespace), key(r.logical_address), r.url, r.riv_profile,
                    r.from_date, r.to_date)

        def perm_key(p: snap.Permission) -> tuple:
            return (key(p.consumer_hsa_id), key(p.contract_namespace), key(p.logical_address),
                    p.from_date, p.to_date)

        def route_row(r: snap.Route, state: str) -> ListingRow:
            return ListingRow("route", names.get(key(r.contract_namespace), r.contract_namespace),
                              r.logical_address, f"{r.url} ({r.riv_profile})",
                              r.from_date, r.to_date, state)

        def perm_row(p: snap.Permission, state: str) -> ListingRow:
            return ListingRow("permission",
                              names.get(key(p.contract_namespace), p.contract_namespace),
                              p.logical_address, p.consumer_hsa_id, p.from_date, p.to_date, state)

        rows: list[ListingRow] = []
        pub_routes = {route_key(r) for r in published.routes} if published else set()
        pub_perms = {perm_key(p) for p in published.permissions} if published else set()
        cur_routes = {route_key(r) for r in current.routes}
        cur_perms = {perm_key(p) for p in current.permissions}
        for r in current.routes:
            rows.append(route_row(r, "published" if route_key(r) in pub_routes
                                  else "not published"))
        for p in current.permissions:
            rows.append(perm_row(p, "published" if perm_key(p) in pub_perms
                                 else "not published"))
        if published:
            rows += [route_row(r, "removed, still published") for r in published.routes
                     if route_key(r) not in cur_routes]
            rows += [perm_row(p, "removed, still published") for p in published.permissions
                     if perm_key(p) not in cur_perms]
        rows.sort(key=lambda x: (x.kind != "route", key(x.address), x.contract, key(x.party),
                                 x.from_date))
        return rows

    # --- import / export (the file format lives in tomlfile) ---------------------------

    def export_toml(self) -> str:
        from routing.catalogue import tomlfile

        with self.session() as s:
            return tomlfile.export_text(s)

    @_retry_on_conflict
    def import_toml(self, text: str) -> None:
        """Replace the current rows with the file's content (published snapshots stay)."""
        from routing.catalogue import tomlfile

        with self.session() as s:
            tomlfile.import_text(self, s, text)

    # --- internals (all take the open session) ----------------------------------------

    def clear(self, s: Session) -> None:
        """Delete every current row (not the published snapshots)."""
        for model in (Permission, Route, Endpoint, Address, Component, Contract):
            s.execute(delete(model))

    def _component(self, s: Session, hsa_id: str, description: str | None = None) -> Component:
        hsa = rules.hsa_id(hsa_id)
        comp = s.scalar(select(Component).where(Component.hsa_key == key(hsa)))
        if comp is None:
            comp = Component(hsa_id=hsa, hsa_key=key(hsa), description=description)
            s.add(comp)
            s.flush()
        elif description and not comp.description:
            comp.description = description
        return comp

    def _address(self, s: Session, address: str, description: str | None = None) -> Address:
        a = rules.logical_address(address)
        description = description or rules.region_name(a)
        row = s.scalar(select(Address).where(Address.address_key == key(a)))
        if row is None:
            row = Address(address=a, address_key=key(a), description=description)
            s.add(row)
            s.flush()
        elif description and not row.description:
            row.description = description
        return row

    def _endpoint(self, s: Session, comp: Component, url: str, profile: str) -> Endpoint:
        u, p = rules.url(url), rules.profile(profile)
        row = s.scalar(select(Endpoint).where(Endpoint.url == u, Endpoint.profile == p))
        if row is None:
            row = Endpoint(component=comp, url=u, profile=p)
            s.add(row)
            s.flush()
        elif row.component_id != comp.id:
            raise CatalogueError(f"the endpoint {u} ({p}) belongs to component "
                                 f"{row.component.hsa_id}, not {comp.hsa_id}")
        return row

    def _contract_row(self, s: Session, namespace: str, name: str, major: int,
                      minor: int) -> Contract:
        ns = (namespace or "").strip()
        if not ns or any(c.isspace() for c in ns):
            raise CatalogueError(f"contract namespace {namespace!r} must be a URI without spaces")
        row = s.scalar(select(Contract).where(Contract.namespace_key == key(ns)))
        if row is None:
            row = Contract(namespace=ns, namespace_key=key(ns), name=name, major=int(major),
                           minor=int(minor))
            s.add(row)
            s.flush()
        return row

    def _release_contract(self, s: Session, c: release.Contract) -> Contract:
        major, minor = (int(x) for x in c.version.split("."))
        return self._contract_row(s, c.namespace, c.name, major, minor)

    def _contracts(self, s: Session, spec: str) -> list[Contract]:
        """Rows for a contract name, a namespace or ``all`` (every producer contract)."""
        wanted = (spec or "").strip()
        if wanted.casefold() == "all":
            return [self._release_contract(s, c) for c in release.producer_contracts()]
        for c in release.all_contracts().values():
            if key(wanted) in (key(c.name), key(c.namespace)):
                return [self._release_contract(s, c)]
        row = s.scalar(select(Contract).where(Contract.namespace_key == key(wanted)))
        if row is None:
            row = s.scalar(select(Contract).where(func.lower(Contract.name) == wanted.lower()))
        if row is None:
            raise CatalogueError(
                f"unknown service contract {spec!r}: give a contract name (e.g. CreateListing), "
                "a Responder namespace, or 'all'")
        return [row]

    def _route(self, s: Session, contract: Contract, addr: Address, endpoint: Endpoint,
               from_date: date | None, to_date: date | None) -> int:
        new = rules.period(from_date, to_date)
        s.refresh(contract, with_for_update=True)  # serialises concurrent changes (PostgreSQL)
        for r in s.scalars(select(Route).where(Route.contract_id == contract.id,
                                               Route.address_id == addr.id)):
            if r.endpoint_id == endpoint.id and (r.from_date, r.to_date) == new:
                return 0
            if rules.overlaps(new, (r.from_date, r.to_date)):
                raise CatalogueError(
                    f"a route for {contract.name} at logical address {addr.address} already "
                    f"exists for {r.from_date}–{r.to_date} (to {r.endpoint.url}); "
                    f"{new[0]}–{new[1]} would overlap it")
        s.add(Route(contract=contract, address=addr, endpoint=endpoint,
                    from_date=new[0], to_date=new[1]))
        s.flush()
        return 1

    def _permission(self, s: Session, comp: Component, contract: Contract, addr: Address,
                    from_date: date | None, to_date: date | None) -> int:
        new = rules.period(from_date, to_date)
        s.refresh(contract, with_for_update=True)
        for p in s.scalars(select(Permission).where(Permission.component_id == comp.id,
                                                    Permission.contract_id == contract.id,
                                                    Permission.address_id == addr.id)):
            if (p.from_date, p.to_date) == new:
                return 0
            if rules.overlaps(new, (p.from_date, p.to_date)):
                raise _overlapping_permission(comp, contract, addr, (p.from_date, p.to_date),
                                              new)
        s.add(Permission(consumer=comp, contract=contract, address=addr,
                         from_date=new[0], to_date=new[1]))
        s.flush()
        return 1

    def _build(self, s: Session, snapshot_id: str, published_at: datetime) -> snap.Snapshot:
        routes = [
            snap.Route(contract_namespace=r.contract.namespace,
                       logical_address=r.address.address, url=r.endpoint.url,
                       riv_profile=r.endpoint.profile,
                       component_hsa_id=r.endpoint.component.hsa_id,
                       from_date=r.from_date, to_date=r.to_date)
            for r in s.scalars(select(Route).order_by(Route.id))
        ]
        permissions = [
            snap.Permission(consumer_hsa_id=p.consumer.hsa_id,
                            contract_namespace=p.contract.namespace,
                            logical_address=p.address.address,
                            from_date=p.from_date, to_date=p.to_date)
            for p in s.scalars(select(Permission).order_by(Permission.id))
        ]
        timeouts = {c.namespace_key: c.timeout_seconds
                    for c in s.scalars(select(Contract)) if c.timeout_seconds is not None}
        return snap.Snapshot(snapshot_id=snapshot_id, published_at=published_at,
                             routes=routes, permissions=permissions, timeouts=timeouts)

    def _contract_names(self) -> dict[str, str]:
        with self.session() as s:
            return {c.namespace_key: c.name for c in s.scalars(select(Contract))}

    @staticmethod
    def _new_id() -> str:
        return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _overlapping_permission(comp: Component, contract: Contract, addr: Address,
                            old: tuple[date, date], new: tuple[date, date]) -> CatalogueError:
    return CatalogueError(
        f"{comp.hsa_id} is already permitted {contract.name} at logical address "
        f"{addr.address} for {old[0]}–{old[1]}; {new[0]}–{new[1]} would overlap it")
