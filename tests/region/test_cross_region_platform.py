"""Cross-region listing through the real platform: every part is its own process.

The catalogue (``listning tak serve``), the virtualisation layer (``python -m routing.vp
serve``) and three regions (``listning region serve`` for 01 Stockholm, 08 Kalmar län and 03
Uppsala) run on loopback ports with certificates from routing.pki; the test plays 1177's
e-service and calls the regions through the platform with its own certificate. The regions
send UpdateListing to each other through the platform, presenting their own certificates.

The whole stack runs once on SQLite and once on PostgreSQL (module-scoped, so each start-up
is shared by the tests). Regions' rules are the shipped ones: 08 keeps a listing and queues
the notification when the home region cannot be reached (``outbox``), 01 refuses (``refuse``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from consumers import values as v
from consumers.client import CallResult, ListingClient
from interactions.identifiers import make_personal_id
from listning.supervisor import Service, free_port
from producers.population.api import ApiServer
from producers.population.register import PopulationRegister
from producers.population.test_persons import TOLVAN
from routing import pki
from routing.catalogue.service import Catalogue

REPO = Path(__file__).resolve().parents[2]
PLATFORM_ID = "SE165565594230-VP01"
E_SERVICE = "SE5565594230-1177"
REGIONS = {"01": "SE2321000016-LIST", "08": "SE2321000073-LIST", "03": "SE2321000024-LIST"}
UNIT = {"01": "SE2321000016-01VC", "08": "SE2321000073-01HC", "03": "SE2321000024-01VC"}
PG_URL = os.environ.get("LISTNING_TEST_POSTGRES_URL",
                        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"


@dataclass
class Stack:
    backend: str
    work: Path
    ca: Path
    vp_url: str
    regions: dict[str, Service]
    client: ListingClient
    population: PopulationRegister
    logs: dict[str, Path] = field(default_factory=dict)

    def stop_region(self, county: str) -> None:
        """SIGTERM, as an operator would: the region finishes what it is doing and exits 0."""
        service = self.regions[county]
        service.stop(grace=30)
        log = service.log_path.read_text(encoding="utf-8").splitlines()
        assert service.proc is not None and service.proc.returncode == 0, log[-20:]
        assert log[-1].endswith("stopped"), log[-5:]
        assert f"region {county} listening on https://127.0.0.1:{service.port}" in log

    def start_region(self, county: str) -> None:
        service = self.regions[county]
        service.start()
        service.wait_ready()


def new_resident() -> str:
    born = date(1950 + random.randrange(40), 1 + random.randrange(12), 1 + random.randrange(28))
    return make_personal_id(born, random.randrange(1000))


def _create_databases(names: list[str]) -> list[str]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return [PG_URL.rsplit("/", 1)[0] + "/" + name for name in names]


def _drop_databases(names: list[str]) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    backend = request.param
    if backend == "postgres" and (why := _pg_problem()):
        pytest.skip(why)
    work = tmp_path_factory.mktemp(f"platform-{backend}")
    d = work / "pki"
    ca = pki.create_ca(d)
    platform = pki.issue(d, "platform", PLATFORM_ID, ca=ca)
    e_service = pki.issue(d, "e-service", E_SERVICE, ca=ca)
    ids = {county: pki.issue(d, f"region{county}", hsa, ca=ca)
           for county, hsa in REGIONS.items()}
    # The population register (Navet) with its HTTPS API; the regions read its change feed.
    population = PopulationRegister(f"sqlite:///{work / 'population.sqlite'}")
    population.generate(40, seed=7, counties=list(REGIONS))
    navet = pki.issue(d, "population", None, ca=ca)
    register_api = ApiServer(population, cert=navet.cert, key=navet.key, ca=ca.cert).start()
    ports = {county: free_port() for county in REGIONS}
    tak_port, vp_port = free_port(), free_port()
    vp_url = f"https://127.0.0.1:{vp_port}"

    # The catalogue: every region connected for its county; the e-service may call every
    # contract anywhere, each region may send UpdateListing to any county.
    tak_db = f"sqlite:///{work / 'tak.sqlite'}"
    with Catalogue(tak_db) as cat:
        for county, hsa in REGIONS.items():
            cat.connect_region(county, f"https://127.0.0.1:{ports[county]}", hsa)
            cat.permit(hsa, "UpdateListing", "*")
        cat.permit(E_SERVICE, "all", "*")
        cat.publish()

    databases: list[str] = []
    urls: dict[str, str] = {}
    if backend == "postgres":
        databases = [f"listning_test_vp{c}_{uuid.uuid4().hex[:8]}" for c in REGIONS]
        urls = dict(zip(REGIONS, _create_databases(databases), strict=True))

    services: list[Service] = []
    py = sys.executable
    tak = Service("tak", [py, "-m", "listning", "tak", "serve", "--db", tak_db, "--port",
                          str(tak_port)], tak_port, work / "tak.log")
    vp = Service("vp", [py, "-m", "routing.vp", "serve", "--catalogue",
                        f"http://127.0.0.1:{tak_port}", "--port", str(vp_port),
                        "--cert", str(platform.cert), "--key", str(platform.key),
                        "--ca", str(ca.cert), "--state-dir", str(work / "vp-state"),
                        "--instance-name", "vp-test", "--catalogue-retry", "0.5",
                        "--default-timeout", "20"], vp_port, work / "vp.log")
    regions: dict[str, Service] = {}
    for county in REGIONS:
        argv = [py, "-m", "listning", "region", "serve",
                "--config", str(REPO / f"producers/regions/{county}.toml"),
                "--data-dir", str(work / f"region{county}"), "--host", "127.0.0.1",
                "--port", str(ports[county]), "--cert", str(ids[county].cert),
                "--key", str(ids[county].key), "--ca", str(ca.cert),
                "--platform-url", vp_url, "--platform-hsa-id", PLATFORM_ID,
                "--outbox-interval", "0.3", "--send-timeout", "10",
                "--population-url", register_api.url, "--feed-interval", "0.5"]
        if county in urls:
            argv += ["--db", urls[county]]
        regions[county] = Service(f"region {county}", argv, ports[county],
                                  work / f"region{county}.log")
    client = ListingClient(vp_url, cert=e_service.cert, key=e_service.key, ca=ca.cert,
                           retries=0, timeout=30)
    try:
        # Start everything at once (start-up is mostly imports), then wait for each.
        for service in (tak, *regions.values(), vp):
            services.append(service)
            service.start()
            if service is tak:
                service.wait_ready()  # the platform loads its snapshot from it at start
        for service in services:
            service.wait_ready()
        yield Stack(backend, work, ca.cert, vp_url, regions, client, population,
                    {s.name: s.log_path for s in services})
    finally:
        client.close()
        stop_all(services)
        register_api.stop()
        population.close()
        if databases:
            _drop_databases(databases)


def stop_all(services: list[Service], grace: float = 20.0) -> None:
    """SIGTERM to every process at once (each finishes its transaction), then wait; SIGKILL
    only for one that outlives the grace period."""
    for service in services:
        if service.proc is not None and service.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for service in services:
        if service.proc is None:
            continue
        try:
            service.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait()


# --- what the e-service sees -------------------------------------------------------------------

def create(stack: Stack, county: str, pid: str, home: str) -> CallResult:
    return stack.client.create_listing(
        county, actor=v.actor(pid), personId=v.person(pid), healthcareFacilityHSAId=UNIT[county],
        listingType=v.listing_type(), homeCounty=v.county(home))


def listed_units(stack: Stack, county: str, pid: str) -> list[str]:
    """Units in ``county`` where the resident is listed with no end (GetListing there)."""
    r = stack.client.get_listing(county, actor=v.actor(pid), personId=v.person(pid))
    assert r.result_code == "OK", r.response.resultText
    return [x.healthcareFacility.id for x in r.response.listings
            if not x.isInQueue and x.validToDate is None]


def listing_counties(stack: Stack, home: str, pid: str) -> list[str]:
    r = stack.client.get_listing_county(home, actor=v.actor(pid), personId=v.person(pid))
    assert r.result_code == "OK", r.response.resultText
    return [c.extension for c in r.response.listingCounties]


def outbox_pending(stack: Stack, county: str) -> int:
    r = stack.client.ping(county)
    return int({c.name: c.value for c in r.response.configuration}["outboxPending"])


def platform_calls(stack: Stack, contract: str, correlation_id: str
                   ) -> list[tuple[str, str, int]]:
    """(sender, logical address, HTTP status) of the platform's calls with that correlation
    id, from its JSON call log (written within a fraction of a second)."""
    found = []
    for line in stack.logs["vp"].read_text(encoding="utf-8").splitlines():
        if line.startswith("{") and correlation_id in line:
            try:
                leg = json.loads(line)
            except ValueError:  # the last line, half written
                continue
            if leg.get("event") == "resp-out" and leg.get("contract") == contract:
                found.append((leg["sender"], leg["receiver"], leg["status"]))
    return found


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (outbox workers deliver in the
    background, with back-off); fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"not reached within {timeout:.0f} s: {what}"
            return value
        time.sleep(0.25)


# --- the flows -----------------------------------------------------------------------------------

def test_listing_in_another_region_moves_the_resident_there(stack: Stack) -> None:
    pid = new_resident()
    assert create(stack, "01", pid, home="01").ok
    assert listing_counties(stack, "01", pid) == ["01"]

    r = create(stack, "08", pid, home="01")

    # 08 told the home region through the platform while answering: nothing left to send
    assert r.result_code == "OK", r.response.resultText
    assert listing_counties(stack, "01", pid) == ["08"]
    assert listed_units(stack, "08", pid) == [UNIT["08"]]
    assert listed_units(stack, "01", pid) == []  # the home region ended its own listing
    assert listing_counties(stack, "08", pid) == []  # only the home region answers that
    assert outbox_pending(stack, "08") == 0
    # the platform saw 08's UpdateListing to 01 under the CreateListing's correlation id
    eventually(lambda: ("SE2321000073-LIST", "01", 200) in platform_calls(
        stack, "UpdateListing", r.correlation_id), what="UpdateListing in the call log")


def test_listed_in_a_third_region_the_home_region_forwards(stack: Stack) -> None:
    pid = new_resident()
    assert create(stack, "03", pid, home="01").ok
    assert listing_counties(stack, "01", pid) == ["03"]
    assert listed_units(stack, "03", pid) == [UNIT["03"]]

    r = create(stack, "08", pid, home="01")

    assert r.result_code == "OK", r.response.resultText
    assert listing_counties(stack, "01", pid) == ["08"]
    # 01's outbox worker sends UpdateListing @03 (new=08) through the platform; 03 ends it
    eventually(lambda: listed_units(stack, "03", pid) == [], what="03 ends its listing")
    assert listed_units(stack, "08", pid) == [UNIT["08"]]
    eventually(lambda: outbox_pending(stack, "01") == 0, what="01's outbox is empty")


def test_a_move_in_the_population_register_is_handed_over_through_the_platform(
        stack: Stack) -> None:
    pid = TOLVAN.person_id  # a resident of Stockholm (01) in the register
    r = stack.client.create_listing(
        "01", actor=v.actor(pid), personId=v.person(pid), healthcareFacilityHSAId=UNIT["01"],
        listingType=v.listing_type())  # no homeCounty: 01 asks the register itself
    assert r.ok, r.response.resultText
    assert listing_counties(stack, "01", pid) == ["01"]

    stack.population.record_move(pid, "08")

    # 01 reads the move from the feed and tells the new home region, through the platform,
    # that the resident stays listed at 01's unit
    eventually(lambda: listing_counties(stack, "08", pid) == ["01"],
               what="08, the new home region, learns the resident is listed in 01")
    assert listed_units(stack, "01", pid) == [UNIT["01"]]
    eventually(lambda: outbox_pending(stack, "01") == 0, what="01's outbox is empty")


def test_home_region_down_the_outbox_delivers_when_it_is_back(stack: Stack) -> None:
    pid = new_resident()
    assert create(stack, "01", pid, home="01").ok
    stack.stop_region("01")
    try:
        r = create(stack, "08", pid, home="01")
        # 08's rule is `outbox`: listed now, the home region is told later (INFO says so)
        assert r.result_code == "INFO", r.response.resultText
        assert "hemregion" in r.response.resultText
        assert listed_units(stack, "08", pid) == [UNIT["08"]]
        assert outbox_pending(stack, "08") >= 1
    finally:  # while 01 starts again, 08 keeps trying with back-off

        stack.start_region("01")
    eventually(lambda: listing_counties(stack, "01", pid) == ["08"], timeout=40,
               what="01 learns the resident is listed in 08")
    assert listed_units(stack, "01", pid) == []  # no listing in two places
    assert listed_units(stack, "08", pid) == [UNIT["08"]]
    eventually(lambda: outbox_pending(stack, "08") == 0, what="08's outbox is empty")


def test_home_region_down_a_refusing_region_lists_no_one(stack: Stack) -> None:
    pid = new_resident()  # a resident of Kalmar län (08), listed there
    assert create(stack, "08", pid, home="08").ok
    stack.stop_region("08")
    try:
        r = create(stack, "01", pid, home="08")
        # 01's rule is `refuse`: "try again later", and nothing changed anywhere
        assert r.result_code == "ERROR"
        assert "försök igen" in r.response.resultText.lower()
        assert listed_units(stack, "01", pid) == []
        assert outbox_pending(stack, "01") == 0
    finally:
        stack.start_region("08")
    assert listed_units(stack, "08", pid) == [UNIT["08"]]
    assert listing_counties(stack, "08", pid) == ["08"]
