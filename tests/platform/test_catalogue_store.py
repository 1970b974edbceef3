"""The catalogue's storage and API on real databases: SQLite, and PostgreSQL when reachable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from interactions.contracts import all_contracts, producer_contracts
from routing.catalogue.models import Base
from routing.catalogue.service import Catalogue, CatalogueError
from routing.snapshot import Snapshot

NS = {c.name: c.namespace for c in all_contracts().values()}
STHLM = "SE2321000016-LST1"
KALMAR = "SE2321000073-LST8"
ESERVICE = "SE5565594230-1177"
JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
END_JAN, END_FEB = date(2026, 1, 31), date(2026, 2, 28)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tak.db'}"
    # a database of its own, as the plain postgresql:// an operator would type (tests/conftest.py)
    return request.getfixturevalue("pg_database")


@pytest.fixture
def cat(db_url: str) -> Iterator[Catalogue]:
    with Catalogue(db_url) as c:
        yield c


def test_opening_migrates_to_a_schema_that_matches_the_models(cat: Catalogue,
                                                               db_url: str) -> None:
    with cat.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        version = conn.execute(text("SELECT version_num FROM tak_alembic_version")).scalar()
    assert [d for d in diff if "tak_alembic_version" not in repr(d)] == []
    assert version == "0001"
    Catalogue(db_url).close()  # opening an up-to-date database again is a no-op


def test_overlapping_routes_are_refused_but_touching_periods_are_allowed(cat: Catalogue) -> None:
    a, b = "http://127.0.0.1:9001/a", "http://127.0.0.1:9001/b"
    assert cat.add_route("GetListing", "08", a, KALMAR, from_date=JAN, to_date=END_JAN) == 1
    assert cat.add_route("GetListing", "08", b, KALMAR, from_date=FEB, to_date=END_FEB) == 1
    with pytest.raises(CatalogueError, match=r"route for GetListing at logical address 08.*"
                                             r"2026-02-01–2026-02-28.*overlap"):
        cat.add_route("GetListing", "08", a, KALMAR, from_date=END_FEB, to_date=date(2026, 4, 1))
    # another contract, or another address, is another route
    assert cat.add_route("GetListingTypes", "08", a, KALMAR, from_date=JAN) == 1
    assert cat.add_route("GetListing", "01", a, KALMAR, from_date=JAN) == 1
    routes = [(r.logical_address, r.url, r.from_date) for r in cat.build_snapshot().routes
              if r.contract_namespace == NS["GetListing"]]
    assert sorted(routes) == [("01", a, JAN), ("08", a, JAN), ("08", b, FEB)]


def test_overlapping_permissions_are_refused_but_touching_periods_are_allowed(
        cat: Catalogue) -> None:
    assert cat.permit(ESERVICE, "CreateListing", "08", from_date=JAN, to_date=END_JAN) == 1
    assert cat.permit(ESERVICE, "CreateListing", "08", from_date=FEB, to_date=END_FEB) == 1
    with pytest.raises(CatalogueError, match="already permitted CreateListing at logical "
                                             "address 08 for 2026-01-01–2026-01-31"):
        cat.permit(ESERVICE, "CreateListing", "08", from_date=date(2025, 6, 1), to_date=JAN)
    # the same permission again is no change, not an error (setup scripts run twice)
    assert cat.permit(ESERVICE, "CreateListing", "08", from_date=FEB, to_date=END_FEB) == 0
    assert cat.permit(STHLM, "CreateListing", "08", from_date=JAN) == 1
    assert cat.permit(ESERVICE, "CreateListing", "01", from_date=JAN) == 1
    snap = cat.build_snapshot()
    assert snap.is_permitted(ESERVICE, NS["CreateListing"], "08", FEB)
    assert not snap.is_permitted(ESERVICE, NS["CreateListing"], "08", MAR)


def test_a_period_that_ends_before_it_starts_is_refused(cat: Catalogue) -> None:
    with pytest.raises(CatalogueError, match="ends before it starts"):
        cat.permit(ESERVICE, "GetListing", "01", from_date=FEB, to_date=JAN)


def test_hsa_ids_addresses_and_namespaces_match_case_insensitively(cat: Catalogue) -> None:
    cat.add_route("GetListing", "Kalmar", "http://127.0.0.1:9001/x", KALMAR, from_date=JAN)
    with pytest.raises(CatalogueError, match="overlap"):
        cat.add_route(NS["GetListing"].upper(), "KALMAR", "http://127.0.0.1:9001/y",
                      KALMAR.lower(), from_date=FEB)
    assert cat.permit(ESERVICE, "GetListing", "Kalmar", from_date=JAN) == 1
    assert cat.permit(ESERVICE.lower(), NS["GetListing"].upper(), "kALMAR", from_date=JAN) == 0
    snap = cat.build_snapshot()
    assert [r.component_hsa_id for r in snap.routes] == [KALMAR]  # one component, as entered
    assert snap.is_permitted(ESERVICE.upper(), NS["GetListing"].lower(), "KALMAR", FEB)
    assert cat.remove_component(ESERVICE.lower()).permissions == 1


def test_connect_region_routes_every_producer_contract_to_the_region(cat: Catalogue) -> None:
    added = cat.connect_region("08", "https://127.0.0.1:9443/", KALMAR, from_date=JAN)
    routes = cat.build_snapshot().routes
    assert added == len(producer_contracts()) == len(routes) == 8
    assert {r.contract_namespace for r in routes} == {c.namespace for c in producer_contracts()}
    assert {r.url for r in routes} == {f"https://127.0.0.1:9443{c.path}"
                                       for c in producer_contracts()}
    assert {(r.logical_address, r.component_hsa_id, r.riv_profile, r.from_date)
            for r in routes} == {("08", KALMAR, "RIVTABP21", JAN)}
    assert cat.connect_region("08", "https://127.0.0.1:9443", KALMAR, from_date=JAN) == 0
    with pytest.raises(CatalogueError, match="'02' is not a county code"):
        cat.connect_region("02", "https://127.0.0.1:9443", KALMAR)
    with pytest.raises(CatalogueError, match="overlap"):  # another system for the same county
        cat.connect_region("08", "https://127.0.0.1:9555", "SE2321000073-OTHR", from_date=FEB)


def test_changes_reach_the_platform_only_when_published(cat: Catalogue) -> None:
    assert cat.published() is None
    cat.connect_region("01", "http://127.0.0.1:9001", STHLM, from_date=JAN)
    first = cat.publish()
    cat.permit(ESERVICE, "all", "01", from_date=JAN)
    published = cat.published()
    assert published.snapshot_id == first.snapshot_id
    assert published.permissions == []
    states = {(r.kind, r.state) for r in cat.listing()}
    assert states == {("route", "published"), ("permission", "not published")}
    second = cat.publish()
    assert second.snapshot_id != first.snapshot_id
    reloaded = cat.published()
    assert reloaded.snapshot_id == second.snapshot_id
    assert len(reloaded.permissions) == len(producer_contracts())
    assert reloaded.addressees(ESERVICE, NS["UpdateListing"], FEB) == ["01"]
    cat.revoke(ESERVICE, "all", "01")
    assert {r.state for r in cat.listing() if r.kind == "permission"} == {
        "removed, still published"}


def test_timeouts_are_published_per_contract(cat: Catalogue) -> None:
    assert cat.set_timeout("CreateListing", 12) == ["CreateListing"]
    with pytest.raises(CatalogueError, match="timeout"):
        cat.set_timeout("CreateListing", 0)
    snap = Snapshot.from_json(cat.publish().to_json())
    assert snap.timeout_for(NS["CreateListing"]) == 12.0
    assert snap.timeout_for(NS["GetListing"], default=30.0) == 30.0


def test_removing_a_component_revokes_its_permissions_and_routes(cat: Catalogue) -> None:
    cat.connect_region("08", "http://127.0.0.1:9001", KALMAR, from_date=JAN)
    cat.permit(KALMAR, "UpdateListing", "01", from_date=JAN)
    cat.permit(ESERVICE, "CreateListing", "08", from_date=JAN)
    removed = cat.remove_component(KALMAR)
    assert (removed.permissions, removed.routes, removed.endpoints) == (1, 8, 8)
    snap = cat.build_snapshot()
    assert snap.routes == []
    assert [p.consumer_hsa_id for p in snap.permissions] == [ESERVICE]
    with pytest.raises(CatalogueError, match="no service component"):
        cat.remove_component(KALMAR)


def test_revoke_from_a_date_ends_the_permission_the_day_before(cat: Catalogue) -> None:
    cat.permit(ESERVICE, "GetListing", "01", from_date=JAN)
    cat.permit(ESERVICE, "GetListing", "08", from_date=MAR)
    assert cat.revoke(ESERVICE, "GetListing", "01", from_date=FEB) == 1
    assert cat.revoke(ESERVICE, "GetListing", "08", from_date=FEB) == 1  # starts later: gone
    assert [(p.logical_address, p.from_date, p.to_date)
            for p in cat.build_snapshot().permissions] == [("01", JAN, END_JAN)]
    assert cat.revoke(ESERVICE, "GetListing", "08") == 0


def _rich_catalogue(cat: Catalogue) -> None:
    cat.connect_region("01", "https://127.0.0.1:9001", STHLM, from_date=JAN)
    cat.connect_region("08", "https://127.0.0.1:9008", KALMAR, from_date=JAN, to_date=END_FEB,
                       profile="RIVTABP20")
    cat.add_component(ESERVICE, "1177 e-tjänst \"Listning\"")
    cat.permit(ESERVICE, "all", "*", from_date=JAN)
    cat.permit(STHLM, "UpdateListing", "08", from_date=JAN, to_date=END_JAN)
    cat.permit(STHLM, "UpdateListing", "08", from_date=FEB)
    cat.add_contract("urn:riv:example:OtherResponder:3", "Other", 3, 1)
    cat.set_timeout("CreateListing", 7.5)
    cat.route_catalogue_service("http://127.0.0.1:8085", from_date=JAN)


def test_export_then_import_round_trips_exactly(cat: Catalogue, tmp_path) -> None:
    _rich_catalogue(cat)
    before = cat.build_snapshot()
    text_1 = cat.export_toml()
    assert '[[routes]]\ncontract = "urn:riv:supportprocess:logistics:carelisting:' in text_1
    assert "from = 2026-01-01\nto = 9999-12-31" in text_1  # TOML dates, explicit
    with Catalogue(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        copy.import_toml(text_1)
        assert copy.export_toml() == text_1
        after = copy.build_snapshot()
    assert sorted(map(repr, after.routes)) == sorted(map(repr, before.routes))
    assert sorted(map(repr, after.permissions)) == sorted(map(repr, before.permissions))
    assert after.timeouts == before.timeouts
    cat.import_toml(text_1)  # importing replaces: nothing doubles
    assert cat.export_toml() == text_1


def test_import_refuses_a_bad_file_and_changes_nothing(cat: Catalogue) -> None:
    _rich_catalogue(cat)
    before = cat.export_toml()
    overlapping = before + (f'\n[[permissions]]\nconsumer = "{STHLM}"\n'
                            f'contract = "UpdateListing"\naddress = "08"\n'
                            "from = 2026-01-15\nto = 2026-01-15\n")
    with pytest.raises(CatalogueError, match=r"permissions\[\d+\]: .*overlap"):
        cat.import_toml(overlapping)
    with pytest.raises(CatalogueError, match=r"routes\[1\]: unknown key\(s\) form"):
        cat.import_toml('[[routes]]\ncontract = "GetListing"\naddress = "01"\nurl = "http://x"\n'
                        'profile = "RIVTABP21"\nfrom = 2026-01-01\nto = 2026-02-01\n'
                        "form = 2026-01-01\n")
    with pytest.raises(CatalogueError, match="not a readable TOML file"):
        cat.import_toml("[[routes]\n")
    assert cat.export_toml() == before


def test_concurrent_overlapping_permits_let_exactly_one_through(db_url: str) -> None:
    """Two administrators (own connections, as two processes) permit overlapping periods at
    the same moment: one wins, the other is refused, never both (ten races in a row)."""
    with Catalogue(db_url) as setup:  # consumer, contract and addresses exist already
        setup.add_component(ESERVICE)
        for race in range(10):
            setup.permit(STHLM, "GetListing", f"race{race}", from_date=JAN, to_date=JAN)
    cats = [Catalogue(db_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def permit(cat: Catalogue, address: str, start: date) -> None:
        barrier.wait()
        try:
            cat.permit(ESERVICE, "GetListing", address, from_date=start, to_date=END_FEB)
            outcomes.append("added")
        except CatalogueError:
            outcomes.append("refused")
        except Exception as exc:  # reported by the assertion below
            outcomes.append(repr(exc))

    try:
        for race in range(10):
            outcomes.clear()
            address = f"race{race}"
            threads = [threading.Thread(target=permit, args=(c, address, d))
                       for c, d in zip(cats, (JAN, FEB), strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(outcomes) == ["added", "refused"], f"race {race}"
            perms = [p for p in cats[0].build_snapshot().permissions
                     if p.logical_address == address and p.consumer_hsa_id == ESERVICE]
            assert len(perms) == 1
    finally:
        for c in cats:
            c.close()
