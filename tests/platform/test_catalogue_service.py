"""The catalogue service over real HTTP: /snapshot, /status and GetLogicalAddressees-
ByServiceContract over real SOAP (and mutual TLS), served from a real database."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import xmlschema
import zeep
from lxml import etree

from interactions.contracts import all_contracts
from interactions.identifiers import region_hsa_prefix
from routing import pki
from routing.catalogue import GLABSC_NAMESPACE, GLABSC_PATH, PLATFORM_HSA_ID, server
from routing.catalogue.service import Catalogue
from routing.snapshot import Snapshot, today_in_sweden

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = all_contracts()
GLABSC = CONTRACTS["GetLogicalAddresseesByServiceContract"]
UPDATE = CONTRACTS["UpdateListing"].namespace
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
ESERVICE = "SE5565594230-1177"
STHLM = "SE2321000016-LST1"
TODAY = today_in_sweden()
DAY = timedelta(days=1)


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalogue]:
    with Catalogue(f"sqlite:///{tmp_path / 'tak.db'}") as c:
        yield c


@contextmanager
def serving(cat: Catalogue, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """The catalogue service on a free loopback port in a background loop; always stopped."""
    loop = asyncio.new_event_loop()
    state: dict = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            state["runner"], state["port"] = loop.run_until_complete(
                server.start(cat, "127.0.0.1", 0, tls))
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10) and "port" in state, "the catalogue service did not start"
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def get(url: str, headers: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def post(url: str, body: bytes) -> tuple[int, etree._Element | None, bytes]:
    req = urllib.request.Request(url + GLABSC_PATH, data=body, method="POST", headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": GLABSC.soap_action})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, data = err.code, err.read()
    try:
        return status, etree.fromstring(data), data
    except etree.XMLSyntaxError:
        return status, None, data


def request(consumer: str = ESERVICE, namespace: str = UPDATE, *,
            header: str | None = f"<r:LogicalAddress>{PLATFORM_HSA_ID}</r:LogicalAddress>",
            body: str | None = None) -> bytes:
    payload = body or (f'<g:GetLogicalAddresseesByServiceContract xmlns:g="{GLABSC_NAMESPACE}">'
                       f"<g:serviceConsumerHsaId>{consumer}</g:serviceConsumerHsaId>"
                       f"<g:serviceContractNameSpace>{namespace}</g:serviceContractNameSpace>"
                       "</g:GetLogicalAddresseesByServiceContract>")
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:r="urn:riv:itintegration:registry:1">'
            f"{head}<soap:Body>{payload}</soap:Body></soap:Envelope>").encode()


def records(envelope: etree._Element) -> list[tuple[str, str | None]]:
    ns = {"g": GLABSC_NAMESPACE}
    return [(r.findtext("g:logicalAddress", namespaces=ns),
             r.findtext("g:description", namespaces=ns))
            for r in envelope.iterfind(".//g:logicalAddressRecord", ns)]


def fault_of(envelope: etree._Element) -> tuple[str, str]:
    f = envelope.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert f is not None, etree.tostring(envelope)
    return f.findtext("faultcode"), f.findtext("faultstring")


def _permissions(cat: Catalogue) -> None:
    # Connected regions: their county codes are routed. 03 is permitted but not routed (not
    # connected), so the catalogue must not offer it as reachable.
    for code in ("01", "08", "12", "13", "14", "25"):
        cat.connect_region(code, f"https://127.0.0.1:90{code}", f"{region_hsa_prefix(code)}-LIST")
    cat.permit(ESERVICE, "UpdateListing", "03")
    cat.permit(ESERVICE, "UpdateListing", "01", from_date=TODAY - 10 * DAY,
               to_date=TODAY + 10 * DAY)
    cat.permit(ESERVICE, "UpdateListing", "08", from_date=TODAY - 30 * DAY, to_date=TODAY - DAY)
    cat.permit(ESERVICE, "UpdateListing", "12", from_date=TODAY + DAY)
    cat.permit(ESERVICE, "UpdateListing", "13", from_date=TODAY, to_date=TODAY)
    cat.permit(STHLM, "UpdateListing", "14", from_date=TODAY)
    cat.permit(ESERVICE, "GetListing", "25", from_date=TODAY)


def test_snapshot_is_served_only_once_published_and_follows_each_publish(cat: Catalogue) -> None:
    with serving(cat) as url:
        status, _, body = get(url + "/snapshot")
        assert status == 503
        assert b"No catalogue snapshot has been published" in body
        assert json.loads(get(url + "/status")[2])["published"] is False

        cat.connect_region("01", "http://127.0.0.1:9001", STHLM)
        first = cat.publish()
        cat.permit(ESERVICE, "all", "01")  # not published yet: not served
        status, headers, body = get(url + "/snapshot")
        assert status == 200
        served = Snapshot.from_json(body.decode())
        assert served.snapshot_id == first.snapshot_id
        assert (len(served.routes), served.permissions) == (8, [])
        assert get(url + "/snapshot", {"If-None-Match": headers["ETag"]})[0] == 304

        second = cat.publish()  # published by another "process": the server notices
        served = Snapshot.from_json(get(url + "/snapshot")[2].decode())
        assert served.snapshot_id == second.snapshot_id
        assert len(served.permissions) == 8
        status_doc = json.loads(get(url + "/status")[2])
        assert status_doc | {"published_at": None} == {
            "published": True, "snapshot_id": second.snapshot_id, "published_at": None,
            "routes": 8, "permissions": 8, "contracts_served": [GLABSC_NAMESPACE]}


def test_glabsc_answers_only_the_consumers_addresses_valid_today(cat: Catalogue) -> None:
    _permissions(cat)
    cat.publish()
    schema = xmlschema.XMLSchema(str(GLABSC.xsd))
    with serving(cat) as url:
        status, env, raw = post(url, request())
        assert status == 200, raw
        assert records(env) == [("01", "Region Stockholm"), ("13", "Region Halland")]
        payload = env.find(f"{{{SOAP}}}Body")[0]
        assert payload.tag == f"{{{GLABSC_NAMESPACE}}}GetLogicalAddresseesByServiceContractResponse"
        schema.validate(etree.tostring(payload))  # raises if not valid against the contract
        assert payload.findtext(f"{{{GLABSC_NAMESPACE}}}resultCode") == "OK"

        # HSA-ids and namespaces are matched case-insensitively
        status, env, _ = post(url, request(ESERVICE.lower(), UPDATE.upper()))
        assert [a for a, _ in records(env)] == ["01", "13"]
        # another consumer sees only its own
        assert [a for a, _ in records(post(url, request(STHLM))[1])] == ["14"]
        # nothing permitted: an empty, valid answer
        status, env, _ = post(url, request("SE2321000024-NONE"))
        assert (status, records(env)) == (200, [])
        # a contract the catalogue does not know: INFO with an explanation
        status, env, _ = post(url, request(namespace="urn:riv:example:NoSuchResponder:1"))
        payload = env.find(f"{{{SOAP}}}Body")[0]
        assert status == 200 and records(env) == []
        assert payload.findtext(f"{{{GLABSC_NAMESPACE}}}resultCode") == "INFO"
        schema.validate(etree.tostring(payload))


def test_glabsc_through_a_zeep_client_built_from_the_contract_wsdl(cat: Catalogue) -> None:
    _permissions(cat)
    cat.publish()
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                             forbid_external=True, xml_huge_tree=False)
    client = zeep.Client(str(GLABSC.wsdl), settings=settings)
    with serving(cat) as url:
        service = client.create_service(
            f"{{{GLABSC.wsdl_namespace}}}GetLogicalAddresseesByServiceContractResponderBinding",
            url + GLABSC_PATH)
        answer = service.GetLogicalAddresseesByServiceContract(
            serviceConsumerHsaId=ESERVICE, serviceContractNameSpace=UPDATE,
            _soapheaders={"LogicalAddress": PLATFORM_HSA_ID})
    assert [(r.logicalAddress, r.description) for r in answer.logicalAddressRecord] == [
        ("01", "Region Stockholm"), ("13", "Region Halland")]
    assert answer.resultCode == "OK"


@pytest.mark.parametrize(("body", "code", "says"), [
    (b"this is not XML", "soap:Client", "cannot be read"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "soap:Client",
     "DOCTYPE"),
    (b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>',
     "soap:Client", "SOAP 1.2"),
    (request(body=f'<GetListing xmlns="{UPDATE}"/>'), "soap:Client", "This endpoint answers"),
    (request(header=None), "soap:Client", "LogicalAddress header is missing"),
    (request(consumer="not-an-hsa-id"), "soap:Client", "does not follow the contract"),
    (request(body=f'<g:GetLogicalAddresseesByServiceContract xmlns:g="{GLABSC_NAMESPACE}">'
                  f"<g:serviceContractNameSpace>{UPDATE}</g:serviceContractNameSpace>"
                  "</g:GetLogicalAddresseesByServiceContract>"),
     "soap:Client", "does not follow the contract"),
])
def test_bad_requests_get_a_soap_client_fault(cat: Catalogue, body: bytes, code: str,
                                              says: str) -> None:
    cat.publish()
    with serving(cat) as url:
        status, env, raw = post(url, body)
    assert status == 500, raw
    faultcode, faultstring = fault_of(env)
    assert faultcode == code
    assert says in faultstring


def test_glabsc_before_anything_is_published_is_a_server_fault(cat: Catalogue) -> None:
    cat.permit(ESERVICE, "UpdateListing", "01")
    with serving(cat) as url:
        status, env, _ = post(url, request())
    assert status == 500
    assert fault_of(env) == ("soap:Server", "The service catalogue has not been published yet")


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(
        cat: Catalogue, tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "pki")
    tak = pki.issue(tmp_path / "pki", "tak", PLATFORM_HSA_ID, ca=ca)
    vp = pki.issue(tmp_path / "pki", "vp", "SE5565594230-VP01", ca=ca)
    cat.publish()
    with serving(cat, server.tls_context(tak.cert, tak.key, ca.cert)) as url:
        with_cert = ssl.create_default_context(cafile=str(ca.cert))
        with_cert.load_cert_chain(str(vp.cert), str(vp.key))
        status, _, body = get(url + "/status", context=with_cert)
        assert status == 200 and json.loads(body)["published"] is True
        without = ssl.create_default_context(cafile=str(ca.cert))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            get(url + "/status", context=without)


@pytest.fixture
def platform_process(tmp_path: Path) -> Iterator:
    """Start the real virtualisation layer (``python -m routing.vp serve``) against a catalogue
    URL; it is stopped after the test, also when the test fails."""
    if importlib.util.find_spec("routing.vp") is None:
        pytest.skip("the virtualisation layer (routing.vp) is not in this tree")
    started: list[subprocess.Popen] = []

    def start(catalogue_url: str, ident: pki.Identity, ca: Path) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "routing.vp", "serve", "--catalogue", catalogue_url,
             "--cert", str(ident.cert), "--key", str(ident.key), "--ca", str(ca),
             "--state-dir", str(tmp_path / "vp-state"), "--quiet-calls"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        started.append(proc)
        urls = {}
        for line in proc.stdout:
            name, _, url = line.strip().partition(" ")
            if name == "ready":
                return urls["https"]
            urls[name] = url
        raise RuntimeError("the platform exited before it was ready")

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_consumers_reach_glabsc_through_the_platform(cat: Catalogue, tmp_path: Path,
                                                    platform_process) -> None:
    d = tmp_path / "pki"
    ca = pki.create_ca(d)
    vp = pki.issue(d, "vp", PLATFORM_HSA_ID, ca=ca)
    eservice = pki.issue(d, "eservice", ESERVICE, ca=ca)
    stranger = pki.issue(d, "stranger", "SE2321000024-NONE", ca=ca)
    with serving(cat) as tak_url:
        cat.route_catalogue_service(tak_url)
        cat.permit(ESERVICE, "GetLogicalAddresseesByServiceContract", PLATFORM_HSA_ID)
        cat.connect_region("01", "https://127.0.0.1:9001", STHLM)
        cat.permit(ESERVICE, "UpdateListing", "01")
        cat.publish()
        vp_url = platform_process(tak_url, vp, ca.cert)

        def call(who: pki.Identity) -> tuple[int, etree._Element]:
            ctx = ssl.create_default_context(cafile=str(ca.cert))
            ctx.load_cert_chain(str(who.cert), str(who.key))
            req = urllib.request.Request(vp_url + GLABSC_PATH, data=request(), method="POST",
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
            try:
                with urllib.request.urlopen(req, timeout=20, context=ctx) as resp:
                    return resp.status, etree.fromstring(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, etree.fromstring(err.read())

        status, env = call(eservice)
        assert status == 200, etree.tostring(env)
        assert records(env) == [("01", "Region Stockholm")]
        status, env = call(stranger)  # not permitted to ask the catalogue at all
        assert status == 500
        assert "VP007" in fault_of(env)[1]
