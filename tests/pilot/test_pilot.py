"""The pilot as a user runs it: `listning pilot` as a subprocess on free ports.

One pilot run: endpoints.json; a resident of 01 lists at a unit in 08 through the e-service in
Chromium, and the platform (tester certificate) confirms GetListingCounty at 01 answers 08 and
GetListing at 08 shows the unit; region 03 is connected while the pilot runs and becomes
reachable without a restart; Ctrl-C stops every process. A second run on the same data
directory: the listing survived.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.client import ListingClient
from consumers.values import actor, county, listing_type, person
from listning.supervisor import free_port, wait_for_port
from producers.config import load_config
from producers.population.test_persons import TOLVAN

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KALMAR = load_config(REPO / "producers/regions/08.toml")
UPPSALA = load_config(REPO / "producers/regions/03.toml")
KALMAR_UNIT = next(u for u in KALMAR.units if u.cap > 100)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def listning(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "listning", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


class Pilot:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = (data_dir.parent / f"pilot-{time.monotonic_ns()}.out").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "listning", "pilot", "--data-dir", str(data_dir),
             "--free-ports", "--population", "200"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        path = data_dir / "endpoints.json"
        deadline = time.monotonic() + 240
        while not path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"the pilot exited ({self.proc.returncode}): "
                                     + Path(self.log.name).read_text()[-3000:])
            assert time.monotonic() < deadline, "the pilot did not get ready in 240 s"
            time.sleep(0.5)
        self.endpoints = json.loads(path.read_text())

    def client(self) -> ListingClient:
        e = self.endpoints
        return ListingClient(e["platform_url"], cert=e["tester"]["cert"],
                             key=e["tester"]["key"], ca=e["ca_cert"], timeout=20)

    def children(self) -> list[int]:
        # each part runs in its own session (so Ctrl-C reaches only the pilot): find them
        # as the pilot's child processes
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def interrupt(self) -> int:
        """Ctrl-C, as at a terminal: SIGINT to the pilot only."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pilot") / "pilot-data"


@pytest.fixture(scope="module")
def pilot(data_dir: Path) -> Iterator[Pilot]:
    p = Pilot(data_dir)
    try:
        yield p
    finally:
        p.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, pilot: Pilot) -> Iterator[Any]:
    context = browser.new_context(base_url=pilot.endpoints["eservice_url"], locale="sv-SE")
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def login_as_tolvan(page: Any) -> None:
    page.goto("/logga-in")
    page.get_by_role("link", name=re.compile("Test-e-legitimation")).click()
    page.get_by_label(re.compile("Tolvan Tolvansson")).check()
    page.get_by_role("button", name="Logga in").click()
    page.wait_for_url("**/min-listning")


def test_endpoints_json_names_every_part_with_absolute_paths(pilot: Pilot) -> None:
    e = pilot.endpoints
    assert set(e) >= {"platform_url", "ca_cert", "tester", "eservice_url", "regions",
                      "catalogue_admin"}
    assert set(e["regions"]) == {"01", "08"}
    for code, region in e["regions"].items():
        assert region["producer_url"].startswith("https://127.0.0.1:")
        assert region["hsa_id"] == load_config(REPO / f"producers/regions/{code}.toml").hsa_id
        assert Path(region["testdata"]).is_absolute() and Path(region["testdata"]).exists()
    for path in (e["ca_cert"], e["tester"]["cert"], e["tester"]["key"]):
        assert Path(path).is_absolute() and Path(path).exists()
    assert e["tester"]["hsa_id"] == "SE5565594230-CONF"


def test_resident_of_01_lists_in_08_through_the_eservice(pilot: Pilot, page: Any) -> None:
    login_as_tolvan(page)
    page.goto(f"/valj-vardcentral/bekrafta?region=08&enhet={KALMAR_UNIT.hsa_id}")
    page.get_by_label(re.compile("Jag samtycker")).check()
    page.get_by_role("button", name="Bekräfta val").click()
    page.wait_for_url(re.compile(r"/kvitton/"))
    assert f"Du är nu listad på {KALMAR_UNIT.name}" in page.locator("main").inner_text()

    # The platform, asked with the conformance tester's certificate, agrees.
    client = pilot.client()
    counties = client.get_listing_county("01", actor=actor(TOLVAN.person_id),
                                         personId=person(TOLVAN.person_id))
    assert [c.extension for c in counties.response.listingCounties] == ["08"]
    listing = client.get_listing("08", actor=actor(TOLVAN.person_id),
                                 personId=person(TOLVAN.person_id))
    units = [(li.healthcareFacility.id, li.healthcareFacility.name)
             for li in listing.response.listings]
    assert units == [(KALMAR_UNIT.hsa_id, KALMAR_UNIT.name)]


def test_a_region_connected_while_the_pilot_runs_is_offered_without_restart(
        pilot: Pilot, page: Any, data_dir: Path) -> None:
    db = f"sqlite:///{data_dir / 'tak.db'}"
    port = free_port()
    hsa = UPPSALA.hsa_id
    # The operator's procedure (README): a certificate, routes, permissions, publish ...
    for args in (["pki", "init", str(data_dir / "pki"), "--party", f"region-03={hsa}"],
                 ["tak", "connect-region", "03", "--url", f"https://127.0.0.1:{port}",
                  "--hsa-id", hsa, "--db", db],
                 ["tak", "permit", "SE5565594230-1177", "all", "03", "--db", db],
                 ["tak", "permit", "SE5565594230-CONF", "all", "03", "--db", db],
                 *[["tak", "permit", other, "all", "03", "--db", db]
                   for other in (KALMAR.hsa_id, "SE2321000016-LIST")],
                 *[["tak", "permit", hsa, "all", code, "--db", db] for code in ("01", "08")],
                 ["tak", "publish", "--db", db]):
        done = listning(*args)
        assert done.returncode == 0, (args, done.stderr)
    # ... and the region's listing system.
    e = pilot.endpoints
    pki_dir = data_dir / "pki"
    region = subprocess.Popen(
        [sys.executable, "-m", "listning", "region", "serve",
         "--config", str(REPO / "producers/regions/03.toml"),
         "--data-dir", str(data_dir / "regions" / "03"), "--host", "127.0.0.1",
         "--port", str(port), "--cert", str(pki_dir / "region-03.pem"),
         "--key", str(pki_dir / "region-03.key"), "--ca", e["ca_cert"],
         "--platform-url", e["platform_url"], "--platform-hsa-id", e["platform_hsa_id"],
         "--population-url", e["population_url"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 90, region)
        login_as_tolvan(page)
        deadline = time.monotonic() + 60
        while True:
            page.goto("/valj-vardcentral")
            if UPPSALA.name in page.locator("main").inner_text():
                break
            assert time.monotonic() < deadline, "the e-service never offered Region Uppsala"
            time.sleep(1)
        facilities = pilot.client().get_available_healthcare_facilities("03")
        assert {f.id for f in facilities.response.healthcareFacilities} == {
            u.hsa_id for u in UPPSALA.units}
    finally:
        region.send_signal(signal.SIGTERM)
        region.wait(timeout=30)


def test_ctrl_c_stops_everything_and_a_restart_keeps_the_data(pilot: Pilot,
                                                              data_dir: Path) -> None:
    # Tolvan is listed in 08 (by the e-service test before, or here when the browser tests
    # cannot run): the data a restart must keep.
    client = pilot.client()
    who = {"actor": actor(TOLVAN.person_id), "personId": person(TOLVAN.person_id)}
    if [c.extension for c in client.get_listing_county("01", **who).response.listingCounties
            or []] != ["08"]:
        made = client.create_listing("08", healthcareFacilityHSAId=KALMAR_UNIT.hsa_id,
                                     listingType=listing_type(), homeCounty=county("01"), **who)
        assert made.result_code == "OK", made.response.resultText
    children = pilot.children()
    assert len(children) >= 6, children  # catalogue, platform, population, 2 regions, e-service
    assert pilot.interrupt() == 0
    time.sleep(0.5)
    assert [pid for pid in children if alive(pid)] == [], "orphan processes after Ctrl-C"
    assert not (data_dir / "endpoints.json").exists(), "a stopped pilot's endpoints.json lies"

    again = Pilot(data_dir)
    try:
        counties = again.client().get_listing_county(
            "01", actor=actor(TOLVAN.person_id), personId=person(TOLVAN.person_id))
        assert [c.extension for c in counties.response.listingCounties] == ["08"]
        assert again.endpoints["platform_url"] == pilot.endpoints["platform_url"]  # same ports
    finally:
        assert again.interrupt() == 0
