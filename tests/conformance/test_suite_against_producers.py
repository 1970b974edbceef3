"""The conformance suite passes against our region producer and fails, naming the right case,
against producers broken in one way each."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp import web
from lxml import etree

from consumers.conformance.testdata import write_pilot_testdata
from interactions.xmlload import XmlInputError, parse_bytes

REPO = Path(__file__).resolve().parents[2]

LIMIT = "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"
CASE_LIMIT = "CreateListing: a change over the 12-month limit"
CASE_NOT_XML = "Robustness: a body that is not XML"
CASE_DOCTYPE = "Robustness: a DOCTYPE"
CASE_LEAK = "No data for another person leaks"
CASE_SLA = "SLA: 95 % of calls"


def test_passes_against_our_region_producer(region08, testdata_08, conformance, tmp_path: Path):
    junit, report = tmp_path / "junit.xml", tmp_path / "report.html"
    run = conformance(region08, testdata_08, "--junit", str(junit), "--html", str(report),
                      "--sla-calls", "20")
    assert run.returncode == 0, run.stdout + run.stderr
    passed, failed = run.counts
    assert failed == 0 and passed >= 25, run.stdout
    # the semantics, not just the schema, were exercised
    assert "refused after" in run.line(CASE_LIMIT)
    assert run.verdict("CreateListing: unit at its cap, addToQueue=true") == "PASS"
    assert re.search(r"p95 \d+ ms over 20 calls", run.line(CASE_SLA))

    suite = etree.parse(str(junit)).getroot().find("testsuite")
    assert suite.get("failures") == "0"
    assert int(suite.get("tests")) == passed + int(suite.get("skipped"))
    names = [tc.get("name") for tc in suite.iter("testcase")]
    assert any(n.startswith(CASE_LIMIT) for n in names)

    html = report.read_text(encoding="utf-8")
    assert f"{passed} passed, 0 failed" in html
    assert "&lt;soap:Envelope" in html or "&lt;soap11env:Envelope" in html  # escaped messages
    assert "<soap:Envelope" not in html and "<soap11env:Envelope" not in html


def test_passes_through_the_platform(platform08, region08, certs, testdata_08, run_cli,
                                     tmp_path: Path):
    """--endpoints: the platform URL, the tester's certificate and the CA of a pilot."""
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({
        "platform_url": platform08, "ca_cert": str(certs.ca),
        "tester": {"hsa_id": "SE5565594230-CONF", "cert": str(certs.tester_cert),
                   "key": str(certs.tester_key)},
        "regions": {"08": {"producer_url": region08, "config": "unused with --data"}}}))
    run = run_cli("conformance", "--endpoints", str(endpoints), "--county", "08",
                  "--data", str(testdata_08), "--sla-calls", "10")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "through the platform" in run.stdout.splitlines()[0]
    assert run.verdict("WSDL") == "SKIP"  # the platform serves no WSDLs
    assert "refused after" in run.line(CASE_LIMIT)
    assert run.counts[1] == 0


def _response_code(body: bytes) -> str | None:
    m = re.search(rb"<resultCode>([A-Z_]+)</resultCode>", body)
    return m[1].decode() if m else None


def ignore_change_limit(path: str, request: bytes, response: bytes) -> bytes | None:
    """Answers OK where the producer refuses a change over the limit (and does nothing)."""
    if path.startswith("/CreateListing/") and _response_code(response) == LIMIT:
        return re.sub(rb"<resultText>.*?</resultText>", b"",
                      response.replace(LIMIT.encode(), b"OK"), flags=re.S)
    return None


def html_on_bad_xml(path: str, request: bytes, response: bytes) -> web.Response | None:
    """An application server's HTML error page for requests it cannot parse."""
    if not request:
        return None  # a GET (?wsdl)
    try:
        parse_bytes(request)
    except XmlInputError:
        return web.Response(status=500, content_type="text/html",
                            text="<html><body><h1>Internal Server Error</h1></body></html>")
    return None


def no_logical_address(request: bytes) -> bool:
    return b"Envelope" in request and b"LogicalAddress" not in request


def test_fails_on_ignored_change_limit_html_error_pages_and_hangs(broken, testdata_08,
                                                                  conformance):
    with broken(ignore_change_limit, html_on_bad_xml, hang_if=no_logical_address) as proxy:
        run = conformance(proxy.url, testdata_08, "--sla-calls", "0", "--timeout", "5",
                          tls=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.verdict(CASE_LIMIT) == "FAIL"
    assert "accepted" in run.line(CASE_LIMIT)
    assert run.verdict(CASE_NOT_XML) == "FAIL" and "HTML" in run.line(CASE_NOT_XML)
    assert run.verdict(CASE_DOCTYPE) == "FAIL" and "HTML" in run.line(CASE_DOCTYPE)
    # everything the proxy leaves alone still passes
    assert run.verdict("Consistency: CreateListing -> GetListing") == "PASS"
    no_address = run.line("Robustness: no LogicalAddress")
    assert no_address.startswith("FAIL") and "must not hang" in no_address
    assert run.verdict("Robustness: body element in the wrong namespace") == "PASS"
    assert run.counts[1] == 4, run.stdout


class LeakLastListing:
    """Answers an empty GetListing with the last non-empty one: another person's listing."""

    def __init__(self) -> None:
        self.last: bytes | None = None

    def __call__(self, path: str, request: bytes, response: bytes) -> bytes | None:
        if not request or not path.startswith("/GetListing/") \
                or b"GetListingResponse" not in response:
            return None  # a GET (?wsdl), a fault
        if b"<listings" in response or b":listings" in response:
            self.last = response
            return None
        return self.last


def test_fails_on_leaked_listing_and_slow_answers(broken, testdata_08, conformance):
    with broken(LeakLastListing(), delays={"GetAvailableHealthcareFacilities": 1.1}) as proxy:
        run = conformance(proxy.url, testdata_08, "--sla-calls", "8", tls=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.verdict(CASE_LEAK) == "FAIL"
    assert "never listed" in run.line(CASE_LEAK)
    assert run.verdict(CASE_SLA) == "FAIL"
    assert re.search(r"p95 \d{4} ms over 8 calls", run.line(CASE_SLA))
    assert run.verdict("GetListing: a person never listed here") == "PASS"  # before the leak
    # the resident's listing also shows up where the other person's listing has ended
    assert run.verdict("UpdateListing: the home region reports a listing in another") == "FAIL"
    assert run.counts[1] == 3, run.stdout


def wrong_namespace(path: str, request: bytes, response: bytes) -> bytes | None:
    if path.startswith("/GetListingCounty/"):
        return response.replace(b"GetListingCountyResponder:2", b"GetListingCountyResponder:1")
    return None


def test_fails_on_wrong_response_namespace(broken, testdata_08, conformance):
    with broken(wrong_namespace) as proxy:
        run = conformance(proxy.url, testdata_08, "--only", "GetListingCounty", tls=False)
    assert run.returncode == 1
    line = run.line("GetListingCounty: not the resident's home region")
    assert line.startswith("FAIL") and "wrong namespace" in line
    assert run.counts == (0, 1)


def no_result_text_on_error(path: str, request: bytes, response: bytes) -> bytes | None:
    if (_response_code(response) or "").startswith("ERROR"):
        return re.sub(rb"<resultText>.*?</resultText>", b"", response, flags=re.S)
    return None


def test_fails_on_error_without_result_text(broken, testdata_08, conformance):
    with broken(no_result_text_on_error) as proxy:
        run = conformance(proxy.url, testdata_08, "--only", "CreateListing", tls=False)
    assert run.returncode == 1
    for case in ("CreateListing: actor REGION -> ERROR",
                 "CreateListing: a unit the region does not have"):
        assert run.verdict(case) == "FAIL"
        assert "result-text" in run.line(case), run.line(case)
    assert run.verdict("CreateListing: a resident of another county lists here") == "PASS"


def test_stockholm_guardian_consent_and_staff(region01, population_db, certs, run_cli,
                                              tmp_path: Path):
    """Region 01 wants both guardians' consent and has fixed doctor contacts: the test data
    written for it (write_pilot_testdata) exercises both."""
    data = write_pilot_testdata({"01": REPO / "producers" / "regions" / "01.toml"},
                                population_db, tmp_path)["01"]
    common = ("--endpoint", region01, "--county", "01", "--data", str(data),
              *certs.client_args())
    run = run_cli("conformance", *common, "--only", "GetAvailableHealthcarePersonnel")
    assert run.returncode == 0 and run.counts == (1, 0), run.stdout + run.stderr
    run = run_cli("conformance", *common, "--only", "CreateListing")
    line = run.line("CreateListing: one of two guardians chooses")
    assert line.startswith("PASS") and "ERROR_GUARDIAN_CONSENT_NEEDED then OK" in line
    assert run.verdict("CreateListing: a child below the age limit") == "PASS"
    # no platform behind this producer: it refuses cross-region listings, as 01 is configured
    assert run.verdict("CreateListing: a resident of another county lists here") == "FAIL"
