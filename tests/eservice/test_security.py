"""The e-service over plain HTTP: the test e-ID exists only in pilot mode, CSRF on every form,
session cookies, and what the logs and the database keep."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import EService, start_eservice, stop_process

from listning.supervisor import free_port
from producers.population.test_persons import TEST_PERSONS, TOLVAN
from routing import pki

TEST_EID = "/logga-in/test-e-legitimation"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def _session(url: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _login(url: str, pid: str) -> requests.Session:
    s = _session(url)
    token = _csrf(s.get(url + TEST_EID).text)
    r = s.post(url + TEST_EID, data={"csrf": token, "person": pid}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/min-listning"
    return s


@pytest.fixture(scope="module")
def production_mode(stack: Any) -> Iterator[EService]:
    """The e-service without --pilot, with every environment variable that might look like a
    switch for the test e-ID set."""
    port = free_port()
    data_dir = stack.directory / "eservice-prod"
    argv = stack.eservice_argv(port, data_dir, pilot=False)
    assert "--pilot" not in argv
    env = {"LISTNING_PILOT": "1", "PILOT": "1", "LISTNING_ESERVICE_PILOT": "1",
           "ESERVICE_PILOT": "1", "LISTNING_TEST_EID": "1", "TEST_EID": "1"}
    es = start_eservice(argv, stack.directory / "eservice-prod.log", port, data_dir, env)
    try:
        yield es
    finally:
        stop_process(es.proc)


def test_test_eid_does_not_exist_outside_pilot_mode(production_mode: EService) -> None:
    url = production_mode.url
    s = _session(url)
    assert s.get(url + TEST_EID).status_code == 404
    assert s.post(url + TEST_EID, data={"person": TOLVAN.person_id}).status_code == 404
    page = s.get(url + "/logga-in")
    assert page.status_code == 503
    assert "Inloggning är inte tillgänglig" in page.text
    assert "test-e-legitimation" not in page.text
    assert "Pilot" not in s.get(url + "/").text
    # and nothing behind the login opens without one
    r = s.get(url + "/min-listning", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/logga-in"


def test_session_cookie_is_httponly_and_samesite_and_login_rotates_it(
        eservice: EService) -> None:
    url = eservice.url
    s = _session(url)
    page = s.get(url + TEST_EID)
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test
    anonymous = s.cookies["listning_session"]
    r = s.post(url + TEST_EID, data={"csrf": _csrf(page.text), "person": TOLVAN.person_id},
               allow_redirects=False)
    assert r.status_code == 303
    assert s.cookies["listning_session"] != anonymous, "a new session at login"
    assert TOLVAN.person_id not in r.headers.get("Location", "")


def test_forms_without_the_csrf_token_are_refused(eservice: EService) -> None:
    url = eservice.url
    s = _session(url)
    s.get(url + TEST_EID)
    r = s.post(url + TEST_EID, data={"person": TOLVAN.person_id}, allow_redirects=False)
    assert r.status_code == 403
    assert "Formuläret har gått ut" in r.text
    assert s.get(url + "/min-listning", allow_redirects=False).status_code == 303

    s = _login(url, TOLVAN.person_id)
    before = eservice.log_text().count("CreateListing @")
    form = {"region": "01", "enhet": "SE2321000016-01VC"}
    r = s.post(url + "/valj-vardcentral/bekrafta", data={**form, "csrf": "wrong"})
    assert r.status_code == 403
    token = _csrf(s.get(url + "/min-listning").text)
    r = s.post(url + "/valj-vardcentral/bekrafta", data={**form, "csrf": token},
               headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert eservice.log_text().count("CreateListing @") == before


def test_pages_carry_security_headers_and_are_not_cached(eservice: EService) -> None:
    s = _login(eservice.url, TOLVAN.person_id)
    r = s.get(eservice.url + "/min-listning")
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    assert '<html lang="sv">' in r.text


def test_session_cookie_is_secure_over_https(stack: Any, tmp_path: Path) -> None:
    web = pki.issue(stack.directory / "pki", "eservice-web", None)
    port = free_port()
    argv = [*stack.eservice_argv(port, tmp_path / "data"), "--tls-cert", str(web.cert),
            "--tls-key", str(web.key)]
    es = start_eservice(argv, tmp_path / "https.log", port, tmp_path / "data")
    try:
        s = _session(es.url)
        s.verify = str(stack.ca)
        r = s.get(f"https://127.0.0.1:{port}{TEST_EID}")
        assert r.status_code == 200
        assert "Secure" in r.headers["Set-Cookie"]
        assert "HttpOnly" in r.headers["Set-Cookie"]
    finally:
        stop_process(es.proc)


def test_logs_name_no_personnummer_and_receipts_are_kept(eservice: EService,
                                                        stack: Any) -> None:
    s = _login(eservice.url, TOLVAN.person_id)
    assert s.get(eservice.url + "/min-listning").status_code == 200
    assert s.get(eservice.url + "/valj-vardcentral?q=Kalmar").status_code == 200
    log = eservice.log_text()
    assert "GetListingCounty @01" in log, "the log says what was called"
    for person in TEST_PERSONS:
        assert person.person_id not in log, f"{person.first_name}'s personnummer in the log"
    assert stack.teen_id not in log

    # receipts of every change made in these tests are in the e-service's own database
    db = sqlite3.connect(eservice.data_dir / "eservice.sqlite")
    try:
        rows = db.execute("SELECT unit_name, county, result_code, correlation_id "
                          "FROM receipts").fetchall()
    finally:
        db.close()
    for unit, county, code, cid in rows:
        assert unit and county and code and re.fullmatch(r"[0-9a-f-]{36}", cid)
