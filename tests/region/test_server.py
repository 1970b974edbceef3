"""A region's producer over HTTPS with mutual TLS, as a real process (``listning region serve``).

One region (Stockholm, 01) runs for the whole module on a SQLite file; the tests call it the
way the platform does — with the platform's certificate — and the way others must not.
"""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from consumers import values as v
from consumers.client import ListingClient
from interactions.contracts import SOAP11_ENV, all_contracts, producer_contracts
from interactions.identifiers import make_personal_id
from interactions.validation import validate_element
from listning.supervisor import Service, free_port
from routing import pki

REPO = Path(__file__).resolve().parents[2]
PLATFORM_ID = "SE165565594230-VP01"
REGION_01 = "SE2321000016-LIST"  # Region Stockholm's listing system (producers/regions/01.toml)
REGION_08 = "SE2321000073-LIST"
MAX_BODY = 64 * 1024  # small, so the cap is cheap to test
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class Certs:
    ca: Path
    platform: pki.Identity
    region: pki.Identity
    other_region: pki.Identity  # issued by the same CA, but not the platform
    foreign: pki.Identity  # the platform's HSA-id, issued by another CA


@dataclass
class Producer:
    url: str
    certs: Certs
    service: Service


def new_resident() -> str:
    """A fresh adult personnummer (valid check digit), different in every test."""
    born = date(1950 + random.randrange(40), 1 + random.randrange(12), 1 + random.randrange(28))
    return make_personal_id(born, random.randrange(1000))


def region_command(county: str, data_dir: Path, port: int, certs: Certs, me: pki.Identity,
                   platform_url: str, *extra: str) -> list[str]:
    """``listning region serve`` for one region, presenting ``me``'s certificate."""
    return [sys.executable, "-m", "listning", "region", "serve",
            "--config", str(REPO / f"producers/regions/{county}.toml"),
            "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
            "--cert", str(me.cert), "--key", str(me.key), "--ca", str(certs.ca),
            "--platform-url", platform_url, "--platform-hsa-id", PLATFORM_ID, *extra]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(d)
    foreign_dir = tmp_path_factory.mktemp("foreign-pki")
    pki.create_ca(foreign_dir, common_name="Some Other CA")
    return Certs(ca.cert, pki.issue(d, "platform", PLATFORM_ID, ca=ca),
                 pki.issue(d, "region01", REGION_01, ca=ca),
                 pki.issue(d, "region08", REGION_08, ca=ca),
                 pki.issue(foreign_dir, "foreign", PLATFORM_ID))


@pytest.fixture(scope="module")
def producer(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Producer]:
    work = tmp_path_factory.mktemp("region01")
    port = free_port()
    # the platform is not needed here: UpdateListing sending is tested through the real one
    argv = region_command("01", work / "data", port, certs, certs.region,
                          f"https://127.0.0.1:{free_port()}", "--max-body", str(MAX_BODY))
    service = Service("region 01", argv, port, work / "region.log", ready_timeout=60)
    service.start()
    try:
        service.wait_ready()
        yield Producer(f"https://127.0.0.1:{port}", certs, service)
    finally:
        service.stop()


def session(certs: Certs, who: pki.Identity | None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(certs.ca)
    if who is not None:
        s.cert = (str(who.cert), str(who.key))
    return s


def as_platform(producer: Producer, **kw: object) -> ListingClient:
    return ListingClient(producer.url, cert=producer.certs.platform.cert,
                         key=producer.certs.platform.key, ca=producer.certs.ca, retries=0,
                         **kw)


def envelope(body: str, address: str | None = "01") -> bytes:
    header = ("" if address is None else
              f'<LogicalAddress xmlns="urn:riv:itintegration:registry:1">{address}'
              "</LogicalAddress>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}">'
            f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body>"
            "</soap:Envelope>").encode()


TYPES_BODY = ('<GetListingTypes xmlns="urn:riv:supportprocess:logistics:carelisting:'
              'GetListingTypesResponder:2"/>')
TYPES_PATH = "/GetListingTypes/2/rivtabp21"


def post(producer: Producer, path: str, data: bytes,
         who: pki.Identity | None = None) -> requests.Response:
    with session(producer.certs, who or producer.certs.platform) as s:
        return s.post(producer.url + path, data=data, timeout=20,
                      headers={"Content-Type": "text/xml; charset=utf-8"})


def fault_of(resp: requests.Response) -> tuple[str, str]:
    assert resp.headers["Content-Type"].startswith("text/xml"), resp.text[:300]
    root = etree.fromstring(resp.content, SAFE)
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert fault is not None, resp.text[:500]
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


# --- every contract, answered and valid ------------------------------------------------------

def test_every_contract_answers_with_a_schema_valid_response(producer: Producer) -> None:
    pid = new_resident()
    unit, doctor = "SE2321000016-01VC", "SE2321000016-L001"
    with as_platform(producer, consumer_hsa_id="SE5565594230-1177") as c:
        results = {
            "PingForConfiguration": c.ping("01"),
            "GetListingTypes": c.get_listing_types("01"),
            "GetAvailableHealthcareFacilities": c.get_available_healthcare_facilities("01"),
            "GetAvailableHealthcarePersonnel": c.get_available_healthcare_personnel(
                "01", personId=v.person(pid), healthcareFacilityHSAId=unit),
            "CreateListing": c.create_listing(
                "01", actor=v.actor(pid), personId=v.person(pid), healthcareFacilityHSAId=unit,
                listingType=v.listing_type(), healthcarePersonnel=doctor,
                homeCounty=v.county("01")),
            "GetListing": c.get_listing("01", actor=v.actor(pid), personId=v.person(pid)),
        }
        county_before = c.get_listing_county("01", actor=v.actor(pid), personId=v.person(pid))
    # Region Kalmar län tells Stockholm (the home region) that the resident listed there.
    with as_platform(producer, consumer_hsa_id=REGION_08) as c:
        results["UpdateListing"] = c.update_listing(
            "01", personId=v.person(pid), newListingCounty=v.county("08"),
            homeCounty=v.county("01"), listingType=v.listing_type(display_name=None))
    with as_platform(producer) as c:
        results["GetListingCounty"] = c.get_listing_county("01", actor=v.actor(pid),
                                                           personId=v.person(pid))
    assert set(results) == {c.name for c in producer_contracts()}
    for name, r in results.items():
        assert r.payload is not None and validate_element(r.payload) == [], name
        assert r.payload.tag == all_contracts()[name].response_qname
    ping = {p.name: p.value for p in results["PingForConfiguration"].response.configuration}
    assert ping["county"] == "01" and ping["database"] == "ok"
    codes = [t.code for t in results["GetListingTypes"].response.listingTypes]
    assert codes[0] == "PV" and {"HLM", "BMM"} <= set(codes)
    facilities = results["GetAvailableHealthcareFacilities"].response.healthcareFacilities
    units = [f.id for f in facilities]
    assert unit in units and all(u.startswith("SE2321000016-") for u in units)
    staff = results["GetAvailableHealthcarePersonnel"].response.healthcarePersonnel
    assert doctor in [p.id for p in staff]
    assert results["CreateListing"].ok, results["CreateListing"].response.resultText
    listing = results["GetListing"].response.listings
    assert [(x.healthcareFacility.id, x.healthcarePersonnel.id) for x in listing] == [
        (unit, doctor)]
    assert [c.extension for c in county_before.response.listingCounties] == ["01"]
    assert results["UpdateListing"].result_code == "OK"
    # the home region now knows the resident is listed in Kalmar län
    assert [c.extension for c in results["GetListingCounty"].response.listingCounties] == ["08"]


def test_a_request_for_another_county_is_a_client_fault_but_ping_ignores_it(
        producer: Producer) -> None:
    resp = post(producer, TYPES_PATH, envelope(TYPES_BODY, "08"))
    assert resp.status_code == 500
    code, text = fault_of(resp)
    assert code.endswith("Client.WrongLogicalAddress")
    assert "'08'" in text and "Region Stockholm" in text
    with as_platform(producer) as c:
        assert c.ping("08").response.version  # ping answers whatever the address


def test_a_response_that_breaks_the_contract_never_leaves(tmp_path: Path) -> None:
    """Our own bug (here: a unit id that is no HSA-id) is a Server fault, not a bad answer."""
    from interactions.models import message_class, type_class
    from producers.config import shipped_config
    from producers.region import Region
    from producers.spyne_services import wsgi_application
    from producers.storage import open_database

    class BuggyRegion(Region):
        def handle(self, request: object, ctx: object) -> object:
            facility = type_class("HealthcareFacilityType")(
                id="not-an-hsa-id", name="X", hasQueue=False, supportsHealthcarePersonnel=False)
            return message_class("GetAvailableHealthcareFacilitiesResponse")(
                healthcareFacilities=[facility], resultCode="OK")

    region = BuggyRegion(shipped_config("01"),
                         open_database(f"sqlite:///{tmp_path / 'r.sqlite'}"))
    app = wsgi_application(region)
    body = envelope('<GetAvailableHealthcareFacilities xmlns="urn:riv:supportprocess:'
                    'logistics:carelisting:GetAvailableHealthcareFacilitiesResponder:2"/>')
    status: list[str] = []
    out = b"".join(app({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml",
                        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                        "PATH_INFO": "/GetAvailableHealthcareFacilities/2/rivtabp21",
                        "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "443",
                        "wsgi.url_scheme": "https", "HTTP_X_SKLTP_CORRELATION_ID": "c-42"},
                       lambda s, h, e=None: status.append(s)))
    region.db.dispose()
    assert status == ["500 Internal Server Error"]
    root = etree.fromstring(out, SAFE)
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert fault is not None and "not-an-hsa-id" not in out.decode()
    assert fault.findtext("faultcode").endswith("Server.InvalidResponse")
    assert "c-42" in fault.findtext("faultstring")


# --- the contract's own WSDL and XSDs --------------------------------------------------------

def test_wsdl_is_the_contracts_own_with_this_servers_addresses(producer: Producer) -> None:
    contract = all_contracts()["GetListing"]
    with session(producer.certs, producer.certs.platform) as s:
        resp = s.get(f"{producer.url}{contract.path}?wsdl", timeout=10)
        assert resp.status_code == 200
        served = etree.fromstring(resp.content, SAFE)
        original = etree.parse(str(contract.wsdl), SAFE).getroot()
        assert served.get("targetNamespace") == original.get("targetNamespace") \
            == contract.wsdl_namespace
        ops = served.findall(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation")
        assert [o.get("name") for o in ops] == ["GetListing"]
        address = served.find(f".//{{{SOAP_BINDING_NS}}}address")
        assert address.get("location") == producer.url + contract.path
        locations = [i.get("schemaLocation") for i in served.iter(f"{{{XS}}}import")]
        assert locations == [f"{producer.url}{contract.path}?xsd={n}" for n in
                             ("GetListingResponder_2.1.xsd", "itintegration_registry_1.0.xsd")]
        # everything else is the file as released: same elements, same attributes
        for el in (served, original):
            for node in el.iter(f"{{{XS}}}import", f"{{{SOAP_BINDING_NS}}}address"):
                node.attrib.pop("schemaLocation", None)
                node.attrib.pop("location", None)
        assert etree.tostring(served, method="c14n") == etree.tostring(original, method="c14n")
        # the imported XSDs come from here too, their own imports rewritten the same way
        xsd = s.get(locations[0], timeout=10)
        assert xsd.status_code == 200
        doc = etree.fromstring(xsd.content, SAFE)
        assert doc.get("targetNamespace") == contract.namespace
        assert all(i.get("schemaLocation").startswith(f"{producer.url}{contract.path}?xsd=")
                   for i in doc.iter(f"{{{XS}}}import"))


def test_zeep_loads_the_wsdl_from_the_url_and_calls_through_it(producer: Producer) -> None:
    s = session(producer.certs, producer.certs.platform)
    # Hardened, but remote imports allowed: forbid_external would refuse the XSDs that the
    # WSDL imports over https (the session is pinned to the test CA and our certificate).
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                             forbid_external=False, xml_huge_tree=False)
    client = zeep.Client(f"{producer.url}{TYPES_PATH}?wsdl", transport=Transport(session=s),
                         settings=settings)
    try:
        answer = client.service.GetListingTypes(_soapheaders={"LogicalAddress": "01"})
        assert answer.resultCode == "OK"
        assert "PV" in [t.code for t in answer.listingTypes]
    finally:
        s.close()


@pytest.mark.parametrize("name", ["../../schemas/itintegration_registry_1.0.xsd",
                                  "..%2F..%2Fsetup.cfg", "/etc/passwd", "../../../pyproject.toml",
                                  "GetListingResponder_2.1.wsdl", ""])
def test_xsd_parameter_serves_only_release_schema_files(producer: Producer, name: str) -> None:
    with session(producer.certs, producer.certs.platform) as s:
        resp = s.get(f"{producer.url}/GetListing/2/rivtabp21?xsd={name}", timeout=10)
    assert resp.status_code == 404
    assert "root:" not in resp.text and "[tool" not in resp.text and "<xs:schema" not in resp.text


# --- who may call ----------------------------------------------------------------------------

def test_a_certificate_other_than_the_platforms_gets_403_soap_fault(producer: Producer) -> None:
    resp = post(producer, TYPES_PATH, envelope(TYPES_BODY), who=producer.certs.other_region)
    assert resp.status_code == 403
    code, text = fault_of(resp)
    assert code == "soap:Client" and REGION_08 in text and "platform" in text


@pytest.mark.parametrize("who", ["foreign", None])
def test_no_certificate_or_one_from_another_ca_fails_the_handshake(producer: Producer,
                                                                    who: str | None) -> None:
    # TLS 1.3: the server rejects the certificate after the client's side of the handshake,
    # so the client sees an SSL error or the connection closed, never an HTTP answer.
    with session(producer.certs, producer.certs.foreign if who else None) as s, \
            pytest.raises(requests.exceptions.ConnectionError):
        s.post(producer.url + TYPES_PATH, data=envelope(TYPES_BODY), timeout=10)


# --- malformed requests: always a SOAP fault ---------------------------------------------------

def test_no_logical_address_is_a_soap_fault(producer: Producer) -> None:
    resp = post(producer, TYPES_PATH, envelope(TYPES_BODY, address=None))
    assert resp.status_code == 500
    code, text = fault_of(resp)
    assert "Client" in code and "LogicalAddress" in text


def test_doctype_is_a_soap_fault_not_an_html_page(producer: Producer) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>' + envelope(TYPES_BODY).split(
                  b"?>", 1)[1].replace(b"<soap:Body>", b"<soap:Body>&lol2;"))
    resp = post(producer, TYPES_PATH, laughs)
    assert resp.status_code == 500
    assert b"<html" not in resp.content.lower()
    code, text = fault_of(resp)
    assert "Client" in code and "DOCTYPE" in text


def test_schema_invalid_request_is_a_client_fault(producer: Producer) -> None:
    body = TYPES_BODY.replace("/>", "><surprise>1</surprise></GetListingTypes>")
    code, _ = fault_of(post(producer, TYPES_PATH, envelope(body)))
    assert "Client" in code


def test_a_body_over_the_cap_is_refused_with_413(producer: Producer) -> None:
    big = envelope(TYPES_BODY.replace("/>", f"><!-- {'x' * MAX_BODY} --></GetListingTypes>"))
    resp = post(producer, TYPES_PATH, big)
    assert resp.status_code == 413
    assert "limit" in fault_of(resp)[1]


def test_an_unknown_path_is_a_soap_fault(producer: Producer) -> None:
    resp = post(producer, "/GetListing/3/rivtabp21", envelope(TYPES_BODY))
    assert resp.status_code == 404
    assert "/GetListing/2/rivtabp21" in fault_of(resp)[1]


def test_calls_from_other_regions_are_answered_while_every_create_listing_waits(
        certs: Certs, tmp_path: Path) -> None:
    """CreateListing holds its thread while the home region answers; two regions listing each
    other's residents at once took every thread that way, and the UpdateListing each side
    waited for queued behind them (found by benchmarks/cross_region.py). Here every
    CreateListing thread is held: UpdateListing and the reads still get an answer."""
    import threading

    from producers.config import shipped_config
    from producers.region import Region
    from producers.server import ProducerApp, ProducerServer, tls_context
    from producers.spyne_services import wsgi_application
    from producers.storage import open_database

    held, release = threading.Event(), threading.Event()

    class WaitingRegion(Region):
        def handle(self, request: object, ctx: object) -> object:
            if type(request).__name__ == "CreateListing":
                held.set()
                release.wait(30)  # as if the home region took its time
            return super().handle(request, ctx)

    region = WaitingRegion(shipped_config("01"),
                           open_database(f"sqlite:///{tmp_path / 'r.sqlite'}"))
    app = ProducerApp(wsgi_application(region), platform_hsa_ids=[certs.platform.hsa_id],
                      threads=1)
    server = ProducerServer(app, host="127.0.0.1", port=0, ssl_context=tls_context(
        certs.region.cert, certs.region.key, certs.ca)).start()
    producer = Producer(server.url, certs, None)  # type: ignore[arg-type]
    try:
        pid = new_resident()
        waiting = threading.Thread(target=lambda: as_platform(producer).create_listing(
            "01", actor=v.actor(pid), personId=v.person(pid),
            healthcareFacilityHSAId="SE2321000016-01VC", listingType=v.listing_type()))
        waiting.start()
        assert held.wait(20), "the CreateListing never started"
        ii = '<c:root>{}</c:root><c:extension>{}</c:extension>'
        update = envelope(
            '<UpdateListing xmlns="urn:riv:supportprocess:logistics:carelisting:'
            'UpdateListingResponder:2" xmlns:c="urn:riv:supportprocess:logistics:carelisting:2">'
            f'<personId>{ii.format("1.2.752.129.2.1.3.1", pid)}</personId>'
            f'<newListingCounty>{ii.format("1.2.752.129.2.2.1.18", "08")}</newListingCounty>'
            f'<homeCounty>{ii.format("1.2.752.129.2.2.1.18", "01")}</homeCounty>'
            '</UpdateListing>')
        answer = post(producer, "/UpdateListing/2/rivtabp21", update)
        assert answer.status_code == 200, answer.text
        assert b"resultCode>OK<" in answer.content, answer.text
        types = post(producer, TYPES_PATH, envelope(TYPES_BODY))
        assert types.status_code == 200
        assert waiting.is_alive()  # the CreateListing is still held all the while
    finally:
        release.set()
        server.stop()
        region.db.dispose()
