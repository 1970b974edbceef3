"""The mock producer (a real process over mutual TLS), the suite's command line and its test
data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from consumers.conformance.testdata import (
    TestDataError,
    load_testdata,
    parse_testdata,
    region_testdata,
    write_pilot_testdata,
)
from interactions.contracts import all_contracts
from interactions.validator import validate_bytes
from listning.supervisor import free_port
from producers.population import test_persons as tp

REPO = Path(__file__).resolve().parents[2]
CONFIG_08 = REPO / "producers" / "regions" / "08.toml"
EXAMPLES = REPO / "interactions" / "examples"


@pytest.fixture
def client(certs) -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False
    s.cert = (str(certs.tester_cert), str(certs.tester_key))
    s.verify = str(certs.ca)
    yield s
    s.close()


def _post(client: requests.Session, base: str, contract: str, body: bytes,
          mode: str | None = None) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if mode:
        headers["x-mock-response"] = mode
    return client.post(base + all_contracts()[contract].path, data=body, headers=headers,
                       timeout=10)


GET_LISTING = (EXAMPLES / "GetListing" / "valid" / "request-citizen.xml").read_bytes()
UPDATE = (EXAMPLES / "UpdateListing" / "valid" / "request-back-to-home-region.xml").read_bytes()
CREATE = (EXAMPLES / "CreateListing" / "valid" / "request-citizen-cross-region-queue.xml"
          ).read_bytes()


@pytest.mark.parametrize(("contract", "body", "mode", "code"), [
    ("GetListing", GET_LISTING, None, "OK"),
    ("GetListing", GET_LISTING, "info", "INFO"),
    ("CreateListing", CREATE, "error-cap", "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT"),
    ("UpdateListing", UPDATE, "error-changes", "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"),
    ("CreateListing", CREATE, "error-age", "ERROR_AGE_LIMIT"),
    ("GetListing", GET_LISTING, "slow", "OK"),
])
def test_mock_answers_schema_valid_canned_responses(mock08, client, contract, body, mode, code):
    r = _post(client, mock08, contract, body, mode)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    report = validate_bytes(r.content)
    assert report.valid, report.problems
    assert report.contract == contract and report.is_response
    assert f"<resultCode>{code}</resultCode>".encode() in r.content
    if mode == "slow":
        assert r.elapsed.total_seconds() >= 0.5


def test_mock_breaks_on_request(mock08, client):
    fault = _post(client, mock08, "GetListing", GET_LISTING, "fault")
    assert fault.status_code == 500 and b"<faultcode>soap:Server</faultcode>" in fault.content
    page = _post(client, mock08, "GetListing", GET_LISTING, "html")
    assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")
    invalid = _post(client, mock08, "GetListing", GET_LISTING, "invalid")
    assert "schema" in validate_bytes(invalid.content).rules
    unknown = _post(client, mock08, "GetListing", GET_LISTING, "sometimes")
    assert unknown.status_code == 500 and b"error-changes" in unknown.content  # lists the modes


def test_mock_refuses_broken_requests_with_soap_faults(mock08, client):
    no_address = (EXAMPLES / "CreateListing" / "invalid" /
                  "request-missing-logical-address.xml").read_bytes()
    r = _post(client, mock08, "CreateListing", no_address)
    assert r.status_code == 500 and b"LogicalAddress" in r.content and b"Fault" in r.content
    r = _post(client, mock08, "GetListing", GET_LISTING.replace(b">08<", b">01<"))
    assert b"answers for county 08" in r.content
    r = _post(client, mock08, "CreateListing", GET_LISTING)  # the wrong contract's request
    assert b"Fault" in r.content and b"CreateListing" in r.content


def test_mock_serves_the_contracts_wsdl(mock08, client):
    c = all_contracts()["GetListingCounty"]
    r = client.get(mock08 + c.path + "?wsdl", timeout=10)
    assert r.status_code == 200
    assert f'targetNamespace="{c.wsdl_namespace}"'.encode() in r.content
    assert mock08.encode() in r.content  # soap:address points at the mock


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_mock_stops_cleanly_on_a_signal(sig):
    """``listning mock-producer`` over plain HTTP: it answers, then a signal ends it with
    status 0 and nothing on stderr (no traceback)."""
    proc = subprocess.Popen([sys.executable, "-m", "listning", "mock-producer", "--county", "08",
                             "--port", "0"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("mock producer for county 08 listening on http://127.0.0.1:"), \
            proc.stderr.read()
        with requests.Session() as s:
            s.trust_env = False
            wsdl = s.get(line.split()[-1] + all_contracts()["GetListing"].path + "?wsdl",
                         timeout=10)
        assert wsdl.status_code == 200
        proc.send_signal(sig)
        assert proc.wait(15) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_mock_help_lists_the_modes(run_cli):
    run = run_cli("mock-producer", "--help")
    assert run.returncode == 0
    for mode in ("ok", "info", "error-cap", "error-changes", "fault", "slow", "invalid", "html"):
        assert f"  {mode} " in run.stdout


def test_suite_against_the_mock_fails_the_semantic_cases(mock08, certs, run_cli,
                                                         tmp_path: Path):
    data = tmp_path / "td.toml"
    data.write_text(_toml(region_testdata(CONFIG_08)), encoding="utf-8")
    report = tmp_path / "r.html"
    run = run_cli("conformance", "--endpoint", mock08, "--county", "08", "--data", str(data),
                  *certs.client_args(), "--sla-calls", "4", "--html", str(report))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.verdict("PingForConfiguration") == "PASS"  # canned, and schema-valid
    assert run.verdict("GetListing: a person never listed here") == "FAIL"  # canned listing
    assert run.verdict("CreateListing: actor REGION -> ERROR") == "FAIL"  # canned OK
    assert run.counts[1] >= 5
    html = report.read_text(encoding="utf-8")
    assert "CreateListing: actor REGION -&gt; ERROR" in html and 'class="failed"' in html


def _toml(tree: dict) -> str:
    import tomli_w

    return tomli_w.dumps(tree)


# --- unusable input: one line on stderr, exit 2 --------------------------------------------------

def _one_line_error(run) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


def test_unusable_input_exits_2(run_cli, tmp_path: Path):
    good = tmp_path / "td.toml"
    good.write_text(_toml(region_testdata(CONFIG_08)), encoding="utf-8")
    assert "no such file" in _one_line_error(run_cli(
        "conformance", "--endpoint", "http://127.0.0.1:9", "--county", "08",
        "--data", str(tmp_path / "missing.toml")))
    assert "county" in _one_line_error(run_cli(
        "conformance", "--endpoint", "http://127.0.0.1:9", "--county", "99", "--data", str(good)))
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("196804222385", "196804222386"), encoding="utf-8")
    assert "persons.resident.id" in _one_line_error(run_cli(
        "conformance", "--endpoint", "http://127.0.0.1:9", "--county", "08", "--data", str(bad)))
    closed = free_port()
    assert "cannot reach" in _one_line_error(run_cli(
        "conformance", "--endpoint", f"http://127.0.0.1:{closed}", "--county", "08",
        "--data", str(good)))
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"platform_url": "https://127.0.0.1:9", "ca_cert": "x",
                                     "tester": {"cert": "c", "key": "k"},
                                     "regions": {"01": {}}}))
    assert "no region 08" in _one_line_error(run_cli(
        "conformance", "--endpoints", str(endpoints), "--county", "08"))


def test_endpoints_file_of_a_pilot(region08, certs, run_cli, tmp_path: Path):
    """--endpoints takes the URL, the tester's certificate, the CA and the test data (written
    from the region's configuration) from endpoints.json; here the 'platform' is the producer."""
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({
        "platform_url": region08, "ca_cert": str(certs.ca),
        "tester": {"hsa_id": "SE5565594230-CONF", "cert": str(certs.tester_cert),
                   "key": str(certs.tester_key)},
        "regions": {"08": {"producer_url": region08, "config": str(CONFIG_08)}}}))
    junit = tmp_path / "j.xml"
    run = run_cli("conformance", "--endpoints", str(endpoints), "--county", "08",
                  "--only", "PingForConfiguration", "--junit", str(junit))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip("\n").splitlines()[-1] == "1 passed, 0 failed"
    assert "through the platform" in run.stdout
    assert 'skipped="' in junit.read_text()


def test_pilot_testdata_gives_each_region_its_own_persons(population_db, tmp_path: Path):
    written = write_pilot_testdata({"01": REPO / "producers" / "regions" / "01.toml",
                                    "08": CONFIG_08}, population_db, tmp_path)
    data = {county: load_testdata(path) for county, path in written.items()}
    ids01 = {p.id for p in data["01"].persons()}
    ids08 = {p.id for p in data["08"].persons()}
    assert not ids01 & ids08
    assert data["08"].resident.county == "08" and data["08"].other_resident.county == "01"
    assert data["01"].resident.county == "01" and data["01"].child is not None


# --- test data ------------------------------------------------------------------------------------

def test_region_testdata_for_kalmar_uses_the_test_persons():
    data = parse_testdata(region_testdata(CONFIG_08))
    assert data.resident.id == tp.KALMAR_RESIDENT.person_id and data.resident.county == "08"
    assert data.other_resident.county == "01"
    assert data.cap.unit == "SE2321000073-02HC" and data.cap.queues
    assert len(data.cap.fill) == 2  # its cap
    adults = [data.resident.id, data.other_resident.id, *(p.id for p in data.cap.fill)]
    assert len(adults) == len(set(adults))  # nobody has two of these roles
    assert data.child.id == tp.CHILD.person_id == data.unlisted.id  # never listed: both


def test_region_testdata_for_stockholm_has_staff_and_unshared_types():
    data = parse_testdata(region_testdata(REPO / "producers" / "regions" / "01.toml"))
    assert data.resident.id == tp.TOLVAN.person_id
    assert data.staff is not None and data.staff.personnel
    assert ("HLM", "1.2.752.129.2.2.1.18.01.27") in data.not_shared_types
    assert data.cap is not None and not data.cap.queues  # its smallest unit has no queue


def test_bad_testdata_lists_every_problem(tmp_path: Path):
    p = tmp_path / "td.toml"
    p.write_text('county = "08"\n[persons.resident]\nid = "123"\ncounty = "08"\n'
                 '[persons.boss]\nid = "191212121212"\ncounty = "01"\n', encoding="utf-8")
    with pytest.raises(TestDataError) as exc:
        load_testdata(p)
    text = "; ".join(exc.value.problems)
    assert "persons.resident.id" in text and "persons.boss" in text and "units.with_room" in text
