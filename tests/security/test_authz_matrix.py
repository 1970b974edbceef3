"""Who may call what, on the running pilot: the platform's authorisation matrix, the client
certificates it refuses, revocation through the catalogue, the producer's own gate, and what
the 1177 e-service lets a logged-in resident (or a guardian) see and do.

The pilot's catalogue (listning/pilot.py): every producer contract routed at 01 and 08,
GetLogicalAddresseesByServiceContract (GLABSC) at the platform's address; the e-service and the
tester may call everything at 01 and 08 and GLABSC; each region may call everything at the
other region. Every other combination must be refused: VP004 when nothing is routed (the route
lookup comes first, even for an unpermitted or unknown caller), VP007 otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_support import (
    PLATFORM_ADDRESS,
    TEST_EID,
    TIMEOUT,
    Pilot,
    csrf_token,
    login,
    session,
    soap,
    start_pilot,
    vp_code,
)

from consumers import values as v
from consumers.client import ListingClient
from interactions.contracts import all_contracts
from listning.supervisor import free_port, wait_for_port
from producers.population.register import PopulationRegister
from producers.population.test_persons import CHILD, GUARDIAN, KALMAR_RESIDENT, TOLVAN
from routing import pki

pytestmark = pytest.mark.slow

CONTRACTS = sorted(all_contracts())  # the 8 producer contracts + GLABSC
GLABSC = "GetLogicalAddresseesByServiceContract"
ADDRESSES = ["01", "08", "03", PLATFORM_ADDRESS]
IDENTITIES = ["eservice", "tester", "region-01", "region-08", "stranger"]
ESERVICE_ID, TESTER_ID = "SE5565594230-1177", "SE5565594230-CONF"
STRANGER_ID = "SE5565594230-STRG"
TEMP_ID = "SE5565594230-TEMP"
UNIT = {"01": "SE2321000016-01VC", "08": "SE2321000073-01HC"}
SWEDEN = ZoneInfo("Europe/Stockholm")


def swedish_today() -> date:
    return dt.datetime.now(SWEDEN).date()


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    with start_pilot(tmp_path_factory.mktemp("authz") / "pilot", population=40) as p:
        yield p


@pytest.fixture(scope="module")
def certs(pilot: Pilot) -> dict[str, tuple[Path, Path]]:
    d = pilot.pki
    out = {name: (d / f"{name}.pem", d / f"{name}.key")
           for name in ("eservice", "tester", "region-01", "region-08", "platform")}
    stranger = pki.issue(d, "stranger", STRANGER_ID)  # the pilot's CA, unknown to the catalogue
    out["stranger"] = (stranger.cert, stranger.key)
    return out


def expected(identity: str, contract: str, address: str) -> str:
    """'reach' (the producer or the catalogue answers), 'VP004' or 'VP007'."""
    if address == "03":
        return "VP004"
    if address == PLATFORM_ADDRESS:
        if contract != GLABSC:
            return "VP004"
        return "reach" if identity in ("eservice", "tester") else "VP007"
    if contract == GLABSC:
        return "VP004"
    if identity in ("eservice", "tester"):
        return "reach"
    if identity == f"region-{'08' if address == '01' else '01'}":
        return "reach"
    return "VP007"


def _request(contract: str, address: str) -> bytes:
    """A request the platform routes on (the contract's body element) that changes nothing:
    GLABSC is a valid question; for the producer contracts the element is empty, so a producer
    that gets it answers with its own schema fault (no VP code)."""
    c = all_contracts()[contract]
    if contract == GLABSC:
        ns = c.namespace
        body = (f'<g:GetLogicalAddresseesByServiceContract xmlns:g="{ns}">'
                f"<g:serviceConsumerHsaId>{TESTER_ID}</g:serviceConsumerHsaId>"
                f"<g:serviceContractNameSpace>{all_contracts()['GetListing'].namespace}"
                "</g:serviceContractNameSpace></g:GetLogicalAddresseesByServiceContract>")
    else:
        body = f'<r:{contract} xmlns:r="{c.namespace}"/>'
    return soap(body, address=address)


def _outcome(r: requests.Response) -> str:
    code = vp_code(r.text)
    if code:
        return code
    # not the platform's own fault: the producer (or the catalogue) answered
    assert "x-skltp-prt" in {k.lower() for k in r.headers}, r.text[:300]
    return "reach"


def _call(s: requests.Session, base: str, contract: str, address: str) -> requests.Response:
    path = all_contracts()[contract].path
    return s.post(base + path, data=_request(contract, address), timeout=TIMEOUT,
                  headers={"Content-Type": "text/xml; charset=utf-8"})


def test_the_platform_lets_exactly_the_permitted_calls_through(
        pilot: Pilot, certs: dict[str, tuple[Path, Path]]) -> None:
    base, ca = pilot.info["platform_url"], pilot.info["ca_cert"]
    wrong: list[tuple[str, str, str, str, str]] = []
    counts = {"reach": 0, "VP004": 0, "VP007": 0}
    for identity in IDENTITIES:
        s = session(*certs[identity], ca)
        for contract in CONTRACTS:
            for address in ADDRESSES:
                want = expected(identity, contract, address)
                got = _outcome(_call(s, base, contract, address))
                counts[want] += 1
                if got != want:
                    wrong.append((identity, contract, address, want, got))
        s.close()
    assert not wrong, f"{len(wrong)} wrong: {wrong[:10]}"
    total = len(IDENTITIES) * len(CONTRACTS) * len(ADDRESSES)
    assert sum(counts.values()) == total == 180
    # 1177 + tester: 16 + GLABSC each; the regions: 8 each at the other region
    assert counts == {"reach": 2 * 17 + 2 * 8, "VP004": 95, "VP007": 35}


def test_a_permitted_call_gets_a_real_answer_and_glabsc_tells_the_truth(
        pilot: Pilot, certs: dict[str, tuple[Path, Path]]) -> None:
    ca = pilot.info["ca_cert"]
    pid = TOLVAN.person_id
    for identity, address in [("eservice", "01"), ("tester", "08"), ("region-08", "01"),
                              ("region-01", "08")]:
        with ListingClient(pilot.info["platform_url"], cert=certs[identity][0],
                           key=certs[identity][1], ca=ca, retries=0) as c:
            r = c.get_listing(address, actor=v.actor(pid), personId=v.person(pid))
            assert r.result_code == "OK", (identity, address)
    with ListingClient(pilot.info["platform_url"], cert=certs["tester"][0],
                       key=certs["tester"][1], ca=ca, retries=0) as c:
        for consumer, want in [(ESERVICE_ID, ["01", "08"]), (TESTER_ID, ["01", "08"]),
                               (pilot.info["regions"]["01"]["hsa_id"], ["08"]),
                               (STRANGER_ID, [])]:
            r = c.get_logical_addressees_by_service_contract(
                PLATFORM_ADDRESS, serviceConsumerHsaId=consumer,
                serviceContractNameSpace=all_contracts()["CreateListing"].namespace)
            got = sorted(x.logicalAddress for x in (r.response.logicalAddressRecord or []))
            assert got == want, consumer


def test_only_the_platform_may_call_a_producer_directly(
        pilot: Pilot, certs: dict[str, tuple[Path, Path]]) -> None:
    ca = pilot.info["ca_cert"]
    producer = pilot.info["regions"]["01"]["producer_url"]
    for identity in IDENTITIES:
        s = session(*certs[identity], ca)
        for contract in CONTRACTS:
            if contract == GLABSC:
                continue
            r = _call(s, producer, contract, "01")
            assert r.status_code == 403, (identity, contract, r.status_code)
            assert "only the service platform may" in r.text
    s = session(*certs["platform"], ca)
    r = _call(s, producer, "GetListing", "01")
    assert r.status_code == 500 and "SchemaValidation" in r.text  # reached the service


def _handshake_refused(cert: tuple[Path, Path] | None, ca: str, url: str) -> bool:
    s = session(cert[0] if cert else None, cert[1] if cert else None, ca)
    try:
        r = _call(s, url, "GetListing", "01")
    except requests.exceptions.ConnectionError:  # SSLError is one
        return True
    finally:
        s.close()
    pytest.fail(f"answered {r.status_code}: {r.text[:200]}")


def test_certificates_without_trust_are_refused_in_the_handshake(
        pilot: Pilot, tmp_path: Path) -> None:
    ca = pilot.info["ca_cert"]
    urls = [pilot.info["platform_url"], pilot.info["regions"]["01"]["producer_url"]]
    other = tmp_path / "other-ca"
    pki.create_ca(other, "Some Other CA")
    foreign = pki.issue(other, "foreign", TESTER_ID)  # a permitted HSA-id, the wrong CA
    now = dt.datetime.now(dt.UTC)
    expired = pki.issue(pilot.pki, "expired-tester", TESTER_ID,
                        not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    future = pki.issue(pilot.pki, "future-tester", TESTER_ID,
                       not_before=now + timedelta(days=2), not_after=now + timedelta(days=30))
    for url in urls:
        assert _handshake_refused(None, ca, url)
        assert _handshake_refused((foreign.cert, foreign.key), ca, url)
        assert _handshake_refused((expired.cert, expired.key), ca, url)
        assert _handshake_refused((future.cert, future.key), ca, url)


def test_a_certificate_without_serialnumber_gets_vp002(pilot: Pilot) -> None:
    anon = pki.issue(pilot.pki, "no-serialnumber", None)
    s = session(anon.cert, anon.key, pilot.info["ca_cert"])
    for contract, address in [("GetListing", "01"), ("CreateListing", "08"),
                              (GLABSC, PLATFORM_ADDRESS), ("GetListing", "03")]:
        r = _call(s, pilot.info["platform_url"], contract, address)
        assert r.status_code == 500
        assert vp_code(r.text) == "VP002", r.text[:300]


def _tak(pilot: Pilot, *args: str) -> None:
    db = pilot.info["catalogue_admin"]["db"]
    done = subprocess.run([sys.executable, "-m", "listning", "tak", *args, "--db", db],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _reload(pilot: Pilot) -> None:
    r = requests.post(pilot.info["platform_ops_url"] + "/resetcache", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["reloaded"], r.text


def test_a_component_removed_from_the_catalogue_is_refused_after_reload(pilot: Pilot) -> None:
    temp = pki.issue(pilot.pki, "temporary", TEMP_ID)
    base, ca = pilot.info["platform_url"], pilot.info["ca_cert"]
    s = session(temp.cert, temp.key, ca)
    assert vp_code(_call(s, base, "GetListing", "01").text) == "VP007"
    _tak(pilot, "permit", TEMP_ID, "all", "01")
    _tak(pilot, "publish")
    _reload(pilot)
    assert _outcome(_call(s, base, "GetListing", "01")) == "reach"
    assert _outcome(_call(s, base, "CreateListing", "01")) == "reach"
    assert vp_code(_call(s, base, "GetListing", "08").text) == "VP007"

    _tak(pilot, "remove-component", TEMP_ID)
    # removed but not yet published: the platform still runs on the published snapshot
    assert _outcome(_call(s, base, "GetListing", "01")) == "reach"
    _tak(pilot, "publish")
    _reload(pilot)
    for contract in ("GetListing", "CreateListing", "UpdateListing", "PingForConfiguration"):
        assert vp_code(_call(s, base, contract, "01").text) == "VP007", contract
    # and nobody else lost anything
    tester = session(pilot.pki / "tester.pem", pilot.pki / "tester.key", ca)
    assert _outcome(_call(tester, base, "GetListing", "01")) == "reach"


# --- the e-service: one resident never reaches another's data ------------------------------

def _choose(s: requests.Session, url: str, county: str, unit: str,
            extra: dict[str, str] | None = None) -> requests.Response:
    token = csrf_token(s.get(url + "/min-listning", timeout=TIMEOUT).text)
    data = {"csrf": token, "region": county, "enhet": unit, "samtycke": "ja", **(extra or {})}
    return s.post(url + "/valj-vardcentral/bekrafta", data=data, allow_redirects=False,
                  timeout=TIMEOUT)


def _current_units(pilot: Pilot, county: str, pid: str) -> list[str]:
    t = pilot.info["tester"]
    with ListingClient(pilot.info["platform_url"], cert=t["cert"], key=t["key"],
                       ca=pilot.info["ca_cert"], retries=0) as c:
        r = c.get_listing(county, actor=v.actor(pid), personId=v.person(pid))
    assert r.result_code == "OK"
    return [x.healthcareFacility.id for x in r.response.listings
            if not x.isInQueue and x.validToDate is None]


def _names(person: Any) -> str:
    return f"{person.first_name} {person.last_name}"


@pytest.fixture(scope="module")
def karin_receipt(pilot: Pilot) -> str:
    """Karin (08) lists at 01's unit through her own session: the data Tolvan must not see."""
    url = pilot.info["eservice_url"]
    karin = login(url, KALMAR_RESIDENT.person_id)
    r = _choose(karin, url, "01", UNIT["01"])
    assert r.status_code == 303 and r.headers["Location"].startswith("/kvitton/"), r.text[:300]
    assert _current_units(pilot, "01", KALMAR_RESIDENT.person_id) == [UNIT["01"]]
    return r.headers["Location"]


def test_eservice_person_ids_in_urls_and_forms_are_ignored(pilot: Pilot,
                                                          karin_receipt: str) -> None:
    url = pilot.info["eservice_url"]
    karin_pid = KALMAR_RESIDENT.person_id
    tolvan = login(url, TOLVAN.person_id)
    for path in ["/min-listning", "/kvitton", "/valj-vardcentral", "/agera-for"]:
        for param in ("person", "pid", "personId", "personnummer", "subject", "barn"):
            r = tolvan.get(url + path, params={param: karin_pid}, timeout=TIMEOUT)
            assert r.status_code == 200, (path, param)
            assert _names(KALMAR_RESIDENT) not in r.text, (path, param)
            assert karin_pid not in r.text
    # another resident's receipt, by its URL: not found, and not in the list
    r = tolvan.get(url + karin_receipt, timeout=TIMEOUT)
    assert r.status_code == 404
    assert KALMAR_RESIDENT.first_name not in r.text
    assert karin_receipt not in tolvan.get(url + "/kvitton", timeout=TIMEOUT).text
    # a listing form with Karin's number in every plausible field lists Tolvan, not Karin
    r = _choose(tolvan, url, "08", UNIT["08"],
                {"person": karin_pid, "personId": karin_pid, "pid": karin_pid,
                 "subject": karin_pid, "barn": karin_pid})
    assert r.status_code == 303, r.text[:300]
    assert _current_units(pilot, "01", karin_pid) == [UNIT["01"]]  # Karin's unchanged
    assert _current_units(pilot, "08", karin_pid) == []
    assert _current_units(pilot, "08", TOLVAN.person_id) == [UNIT["08"]]
    receipt = tolvan.get(url + r.headers["Location"], timeout=TIMEOUT)
    assert receipt.status_code == 200 and _names(KALMAR_RESIDENT) not in receipt.text
    # acting for someone who is not one's child
    token = csrf_token(tolvan.get(url + "/agera-for", timeout=TIMEOUT).text)
    r = tolvan.post(url + "/agera-for", data={"csrf": token, "barn": karin_pid},
                    allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    page = tolvan.get(url + "/min-listning", timeout=TIMEOUT).text
    assert _names(TOLVAN) in page and _names(KALMAR_RESIDENT) not in page


def test_eservice_sessions_cannot_be_reused_or_forged(pilot: Pilot, karin_receipt: str) -> None:
    url = pilot.info["eservice_url"]
    karin = login(url, KALMAR_RESIDENT.person_id)
    old_cookie = karin.cookies["listning_session"]
    assert karin.get(url + karin_receipt, timeout=TIMEOUT).status_code == 200
    token = csrf_token(karin.get(url + "/min-listning", timeout=TIMEOUT).text)
    r = karin.post(url + "/logga-ut", data={"csrf": token}, allow_redirects=False,
                   timeout=TIMEOUT)
    assert r.status_code == 303
    # fixation: an attacker's anonymous session cookie, planted in the victim's browser, is
    # worthless once the victim logs in with it (login issues a new session)
    attacker = requests.Session()
    attacker.trust_env = False
    page = attacker.get(url + TEST_EID, timeout=TIMEOUT)
    planted = attacker.cookies["listning_session"]
    victim = requests.Session()
    victim.trust_env = False
    r = victim.post(url + TEST_EID, data={"csrf": csrf_token(page.text),
                                          "person": KALMAR_RESIDENT.person_id},
                    headers={"Cookie": f"listning_session={planted}"},
                    allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303
    issued = r.cookies.get("listning_session")
    assert issued and issued != planted
    r = attacker.get(url + "/min-listning", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and r.headers["Location"] == "/logga-in"
    assert victim.get(url + "/min-listning", timeout=TIMEOUT).status_code == 200

    for cookie in (old_cookie, "A" * 43, old_cookie[:-2] + "xx", "", "../../etc/passwd"):
        s = requests.Session()
        s.trust_env = False
        s.cookies.set("listning_session", cookie)
        for path in ("/min-listning", karin_receipt, "/kvitton"):
            r = s.get(url + path, allow_redirects=False, timeout=TIMEOUT)
            assert r.status_code == 303 and r.headers["Location"] == "/logga-in", (cookie, path)
            assert KALMAR_RESIDENT.first_name not in r.text


def test_eservice_changes_need_this_sessions_csrf_token(pilot: Pilot) -> None:
    url = pilot.info["eservice_url"]
    tolvan = login(url, TOLVAN.person_id)
    before = _current_units(pilot, "01", TOLVAN.person_id), _current_units(
        pilot, "08", TOLVAN.person_id)
    other = login(url, GUARDIAN.person_id)
    foreign_token = csrf_token(other.get(url + "/min-listning", timeout=TIMEOUT).text)
    own_token = csrf_token(tolvan.get(url + "/min-listning", timeout=TIMEOUT).text)
    form = {"region": "01", "enhet": UNIT["01"], "samtycke": "ja"}
    attempts = [({**form}, {}), ({**form, "csrf": ""}, {}), ({**form, "csrf": foreign_token}, {}),
                ({**form, "csrf": own_token[:-1]}, {}),
                ({**form, "csrf": own_token}, {"Origin": "https://evil.example"})]
    for data, headers in attempts:
        r = tolvan.post(url + "/valj-vardcentral/bekrafta", data=data, headers=headers,
                        allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 403, (data.get("csrf", "")[:5], headers)
        assert "Formuläret har gått ut" in r.text
    for path, data in [("/agera-for", {"barn": CHILD.person_id}), ("/ko/lamna",
                                                                   {"region": "01",
                                                                    "enhet": UNIT["01"]}),
                       ("/logga-ut", {})]:
        r = tolvan.post(url + path, data=data, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 403, path
    after = _current_units(pilot, "01", TOLVAN.person_id), _current_units(
        pilot, "08", TOLVAN.person_id)
    assert after == before
    assert tolvan.get(url + "/min-listning", allow_redirects=False,
                      timeout=TIMEOUT).status_code == 200  # still logged in


@pytest.fixture(scope="module")
def children(pilot: Pilot) -> dict[str, str]:
    """Two more children of Sara: one turns 13 today, one turns 13 tomorrow."""
    register = PopulationRegister(f"sqlite:///{pilot.directory / 'population.db'}")
    today = swedish_today()  # ages count in Swedish days, whatever the server's time zone
    try:
        thirteen = register.record_birth([GUARDIAN.person_id], first_name="Tretton",
                                         born=years_before(today, 13), seed=11)
        almost = register.record_birth([GUARDIAN.person_id], first_name="Nastan",
                                       born=years_before(today + timedelta(days=1), 13),
                                       seed=12)
    finally:
        register.close()
    return {"thirteen": thirteen.person_id, "almost": almost.person_id}


def _act_for(s: requests.Session, url: str, child: str) -> requests.Response:
    token = csrf_token(s.get(url + "/agera-for", timeout=TIMEOUT).text)
    return s.post(url + "/agera-for", data={"csrf": token, "barn": child},
                  allow_redirects=False, timeout=TIMEOUT)


def test_a_guardian_sees_a_childs_listing_only_while_the_child_is_under_13(
        pilot: Pilot, children: dict[str, str]) -> None:
    url = pilot.info["eservice_url"]
    # Nils (under 13) is listed at 01's unit; the 13-year-old is listed at 08's unit
    t = pilot.info["tester"]
    with ListingClient(pilot.info["platform_url"], cert=t["cert"], key=t["key"],
                       ca=pilot.info["ca_cert"], retries=0) as c:
        r = c.create_listing("08", actor=v.actor(children["thirteen"]),
                             personId=v.person(children["thirteen"]),
                             healthcareFacilityHSAId=UNIT["08"], listingType=v.listing_type(),
                             homeCounty=v.county("01"))
        assert r.ok, r.response.resultText
    sara = login(url, GUARDIAN.person_id)
    r = _act_for(sara, url, CHILD.person_id)
    assert r.status_code == 303, r.text[:300]
    r = _choose(sara, url, "01", UNIT["01"])
    assert r.status_code == 303, r.text[:300]
    page = sara.get(url + "/min-listning", timeout=TIMEOUT).text
    assert CHILD.first_name in page and "Gubbängen" in page  # Nils's unit, shown to Sara
    assert _current_units(pilot, "01", CHILD.person_id) == [UNIT["01"]]

    # the child who turned 13 today: refused, and nothing of the child's listing is shown
    r = _act_for(sara, url, children["thirteen"])
    assert r.status_code == 403
    assert "har fyllt 13" in r.text
    assert "Hälsocentralen Kalmar centrum" not in r.text
    page = sara.get(url + "/min-listning", timeout=TIMEOUT).text
    assert "Tretton" not in page and "Hälsocentralen Kalmar centrum" not in page
    # one day younger: still allowed
    assert _act_for(sara, url, children["almost"]).status_code == 303
    assert "Nastan" in sara.get(url + "/min-listning", timeout=TIMEOUT).text
    # a person who is not Sara's child at all
    assert _act_for(sara, url, TOLVAN.person_id).status_code == 403
    assert _names(TOLVAN) not in sara.get(url + "/min-listning", timeout=TIMEOUT).text


@pytest.fixture(scope="module")
def skewed_eservice(pilot: Pilot, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[str, int]]:
    """A second e-service, the pilot's own command line, on a server whose local date is not
    today's Swedish date: TZ twelve hours behind or fourteen ahead, whichever differs now.
    Yields its URL and the day offset of its local date from the Swedish one."""
    pid = pilot.child_pid(pilot.port(pilot.info["eservice_url"]))
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    port = free_port()
    data_dir = tmp_path_factory.mktemp("skewed-eservice")
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--data-dir") + 1] = str(data_dir)
    sweden = swedish_today()
    utc = dt.datetime.now(dt.UTC)
    tz, offset = next((name, (utc + shift).date().toordinal() - sweden.toordinal())
                      for name, shift in [("Etc/GMT+12", timedelta(hours=-12)),
                                          ("Etc/GMT-14", timedelta(hours=14))]
                      if (utc + shift).date() != sweden)
    with (data_dir / "eservice.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "TZ": tz})
    try:
        wait_for_port("127.0.0.1", port, 90, proc)
        yield f"http://127.0.0.1:{port}", offset
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_guardians_age_limit_counts_swedish_days_whatever_the_servers_zone(
        pilot: Pilot, skewed_eservice: tuple[str, int]) -> None:
    """Regression: the e-service took ages from the server's local date (``date.today``), so
    on a UTC server between midnight in Sweden and 01:00 UTC a guardian could still open the
    page of a child who had turned 13 (and a day early was refused)."""
    url, offset = skewed_eservice
    today = swedish_today()
    register = PopulationRegister(f"sqlite:///{pilot.directory / 'population.db'}")
    try:
        # 13 today in Sweden (12 on a server behind) / 13 tomorrow (13 on a server ahead)
        born = years_before(today if offset < 0 else today + timedelta(days=1), 13)
        child = register.record_birth([GUARDIAN.person_id], first_name="Gransfall",
                                      born=born, seed=21).person_id
    finally:
        register.close()
    sara = login(url, GUARDIAN.person_id)
    r = _act_for(sara, url, child)
    if offset < 0:  # 13 today in Sweden: no longer the guardian's to see
        assert r.status_code == 403, "a guardian opened a 13-year-old's page"
        assert "har fyllt 13" in r.text
    else:  # still 12 in Sweden
        assert r.status_code == 303, r.text[:300]
