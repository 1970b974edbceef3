"""ListingClient against a real HTTPS server with mutual TLS that answers canned SOAP."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from lxml import etree

from consumers import values as v
from consumers.client import (
    ClientTimeout,
    InvalidRequest,
    InvalidResponse,
    ListingClient,
    SoapFault,
    TransportError,
)
from interactions.contracts import REGISTRY_NS, SOAP11_ENV, all_contracts
from routing import pki

TOLVAN = "191212121212"
CORE = "urn:riv:supportprocess:logistics:carelisting:2"
EXT = "urn:riv:supportprocess:logistics:carelisting:2.1"
MON = "urn:riv:itintegration:monitoring:1"
PV = ("<c:listingType><c:code>PV</c:code><c:codeSystem>1.2.752.129.5.1.27</c:codeSystem>"
      "</c:listingType>")
FACILITY = ("<c:id>SE2321000073-VC1</c:id><c:name>Vårdcentralen Kalmar</c:name>"
            "<c:hasQueue>true</c:hasQueue><c:supportsHealthcarePersonnel>true"
            "</c:supportsHealthcarePersonnel><x:queueLength>12</x:queueLength>")
OK = "<r:resultCode>OK</r:resultCode>"

# The inside of each contract's response element: valid against the XSDs.
CANNED = {
    "CreateListing": OK,
    "UpdateListing": OK + "<r:resultText>Uppdaterad</r:resultText>",
    "GetListing": (f"<r:listings><c:validFromDate>2026-01-02T10:00:00</c:validFromDate>{PV}"
                   f"<c:healthcareFacility>{FACILITY}</c:healthcareFacility>"
                   "<c:isInQueue>false</c:isInQueue><x:remainingChanges>1</x:remainingChanges>"
                   f"</r:listings>{OK}"),
    "GetListingCounty": ("<r:listingCounties><c:root>1.2.752.129.2.2.1.18</c:root>"
                         f"<c:extension>08</c:extension></r:listingCounties>{OK}"),
    "GetListingTypes": ("<r:listingTypes><c:code>PV</c:code><c:codeSystem>1.2.752.129.5.1.27"
                        "</c:codeSystem><c:displayName>Primärvårdslistning</c:displayName>"
                        f"</r:listingTypes>{OK}"),
    "GetAvailableHealthcareFacilities": (f"<r:healthcareFacilities>{FACILITY}"
                                         f"</r:healthcareFacilities>{OK}"),
    "GetAvailableHealthcarePersonnel": ("<r:healthcarePersonnel><c:id>SE2321000073-DR7</c:id>"
                                        "<c:name>Doktor Sju</c:name><c:title>Läkare</c:title>"
                                        f"</r:healthcarePersonnel>{OK}"),
    "GetLogicalAddresseesByServiceContract": ("<r:logicalAddressRecord><r:logicalAddress>08"
                                              "</r:logicalAddress></r:logicalAddressRecord>"
                                              f"{OK}"),
    "PingForConfiguration": ("<r:version>1.0</r:version><r:pingDateTime>20261125120000"
                             "</r:pingDateTime><r:configuration><m:name>region</m:name>"
                             "<m:value>08</m:value></r:configuration>"),
}


def envelope(contract: str, inner: str) -> bytes:
    ns = all_contracts()[contract].namespace
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>'
            f'<r:{contract}Response xmlns:r="{ns}" xmlns:c="{CORE}" xmlns:x="{EXT}" '
            f'xmlns:m="{MON}">{inner}</r:{contract}Response></s:Body></s:Envelope>').encode()


def fault(code: str, text: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><s:Fault><faultcode>{code}</faultcode>'
            f"<faultstring>{text}</faultstring><detail><detailString>explained</detailString>"
            "</detail></s:Fault></s:Body></s:Envelope>").encode()


@dataclass
class Received:
    contract: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def logical_address(self) -> str | None:
        root = etree.fromstring(self.body)
        return root.findtext(f"{{{SOAP11_ENV}}}Header/{{{REGISTRY_NS}}}LogicalAddress")


@dataclass
class SoapServer:
    """An aiohttp HTTPS server in its own thread. ``plan[contract]`` is a queue of answers
    (status, body) or "hang"; when it is empty the contract's canned OK answer is sent."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    plan: dict[str, list[tuple[int, bytes] | str]] = field(default_factory=dict)
    release: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        contract = request.path.split("/")[1]
        self.received.append(Received(contract, dict(request.headers), await request.read(),
                                      time.monotonic()))
        queue = self.plan.get(contract) or []
        answer = queue.pop(0) if queue else (200, envelope(contract, CANNED[contract]))
        if answer == "hang":
            assert self.release is not None
            await self.release.wait()
            return web.Response(status=503)
        status, body = answer
        return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8",
                            headers={"x-skltp-correlation-id":
                                     request.headers.get("x-skltp-correlation-id", "")})


@dataclass(frozen=True)
class Certs:
    ca: Path
    server: pki.Identity
    client: pki.Identity
    stranger: pki.Identity  # signed by another CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("pki")
    pki.create_ca(d)
    other = tmp_path_factory.mktemp("other-pki")
    pki.create_ca(other, common_name="Some Other CA")
    return Certs(d / "ca.pem", pki.issue(d, "platform", "SE2321000016-VP01"),
                 pki.issue(d, "eservice", "SE2321000016-1177"),
                 pki.issue(other, "stranger", "SE2321000016-EVIL"))


@pytest.fixture
def server(certs: Certs) -> Iterator[SoapServer]:
    srv = SoapServer()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server.cert, certs.server.key)
    ctx.load_verify_locations(certs.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as the platform demands
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    app = web.Application()
    app.router.add_post("/{contract}/{major}/rivtabp21", srv.handle)
    runner = web.AppRunner(app)

    async def start() -> None:
        srv.release = asyncio.Event()
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = runner.addresses[0][1]
        srv.url = f"https://127.0.0.1:{port}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the test server did not start"
    try:
        yield srv
    finally:
        loop.call_soon_threadsafe(srv.release.set)  # type: ignore[union-attr]
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def make_client(server: SoapServer, certs: Certs, **kw) -> ListingClient:
    kw.setdefault("timeout", 5.0)
    return ListingClient(server.url, cert=certs.client.cert, key=certs.client.key, ca=certs.ca,
                         **kw)


# --- every contract ------------------------------------------------------------------------

def test_every_contract_is_called_and_its_response_read(server: SoapServer, certs: Certs) -> None:
    with make_client(server, certs, consumer_hsa_id="SE2321000016-1177") as client:
        created = client.create_listing(
            "08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
            healthcareFacilityHSAId="SE2321000073-VC1", listingType=v.listing_type(),
            homeCounty=v.county("01"))
        updated = client.update_listing(
            "01", personId=v.person(TOLVAN), newListingCounty=v.county("08"),
            homeCounty=v.county("01"))
        listing = client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
        counties = client.get_listing_county("01", actor=v.actor(TOLVAN),
                                             personId=v.person(TOLVAN))
        types = client.get_listing_types("08", homeCountyCode=v.county("01"))
        units = client.get_available_healthcare_facilities("08")
        staff = client.get_available_healthcare_personnel(
            "08", personId=v.person(TOLVAN), healthcareFacilityHSAId="SE2321000073-VC1")
        ping = client.ping("08")
        reach = client.get_logical_addressees_by_service_contract(
            "5565594230", serviceConsumerHsaId="SE2321000016-1177",
            serviceContractNameSpace=all_contracts()["GetListing"].namespace)

    assert created.ok and created.result_code == "OK"
    assert updated.response.resultText == "Uppdaterad"
    first = listing.response.listings[0]
    assert first.healthcareFacility.name == "Vårdcentralen Kalmar"
    assert first.remainingChanges == 1  # a 2.1 extension, by its XSD name
    assert first.healthcareFacility.queueLength == 12
    assert [c.extension for c in counties.response.listingCounties] == ["08"]
    assert types.response.listingTypes[0].displayName == "Primärvårdslistning"
    assert units.response.healthcareFacilities[0].hasQueue is True
    assert staff.response.healthcarePersonnel[0].title == "Läkare"
    assert ping.response.configuration[0].value == "08"
    assert [r.logicalAddress for r in reach.response.logicalAddressRecord] == ["08"]
    assert [r.contract for r in server.received] == [
        "CreateListing", "UpdateListing", "GetListing", "GetListingCounty", "GetListingTypes",
        "GetAvailableHealthcareFacilities", "GetAvailableHealthcarePersonnel",
        "PingForConfiguration", "GetLogicalAddresseesByServiceContract"]
    assert {r.contract for r in server.received} == set(all_contracts())  # none left out
    for r, result in zip(server.received, [created, updated, listing, counties, types, units,
                                           staff, ping, reach], strict=True):
        contract = all_contracts()[r.contract]
        assert r.headers["SOAPAction"] == f'"{contract.soap_action}"'
        assert r.headers["x-rivta-original-serviceconsumer-hsaid"] == "SE2321000016-1177"
        assert r.headers["x-skltp-correlation-id"] == result.correlation_id
        assert result.round_trip_ms > 0


def test_logical_address_and_correlation_id_reach_the_server(server: SoapServer,
                                                             certs: Certs) -> None:
    with make_client(server, certs) as client:
        given = client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
                                   correlation_id="corr-123")
        fresh = client.get_listing("01", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
    assert [r.logical_address for r in server.received] == ["08", "01"]
    assert given.correlation_id == "corr-123"
    assert server.received[0].headers["x-skltp-correlation-id"] == "corr-123"
    assert len(fresh.correlation_id) == 36 and fresh.correlation_id != "corr-123"  # a uuid4
    assert server.received[1].headers["x-skltp-correlation-id"] == fresh.correlation_id
    assert "x-rivta-original-serviceconsumer-hsaid" not in server.received[0].headers


def test_a_body_that_does_not_fit_the_contract_is_refused_before_sending(
        server: SoapServer, certs: Certs) -> None:
    with make_client(server, certs) as client, pytest.raises(InvalidRequest) as err:
        client.get_listing("08", personId=v.person(TOLVAN), favouriteColour="blue")
    assert "favouriteColour" in str(err.value)
    assert server.received == []


# --- invalid responses -------------------------------------------------------------------

@pytest.mark.parametrize(("inner", "expected"), [
    ("<r:resultCode>FINE</r:resultCode>", "FINE"),  # not in ResultCodeEnum
    ("<r:resultText>Klart</r:resultText>", "resultCode"),  # the required element is missing
])
def test_a_schema_invalid_response_raises_invalid_response(
        server: SoapServer, certs: Certs, inner: str, expected: str) -> None:
    server.plan["CreateListing"] = [(200, envelope("CreateListing", inner))]
    with make_client(server, certs, retries=2, backoff=0.01) as client, \
            pytest.raises(InvalidResponse) as err:
        client.create_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
                              healthcareFacilityHSAId="SE2321000073-VC1",
                              listingType=v.listing_type())
    assert expected in str(err.value)
    assert "schema" in str(err.value)
    assert err.value.correlation_id == server.received[0].headers["x-skltp-correlation-id"]
    assert len(server.received) == 1  # an invalid answer is an answer: not retried


def test_the_wrong_response_element_is_refused(server: SoapServer, certs: Certs) -> None:
    server.plan["GetListing"] = [(200, envelope("GetListingTypes", OK))]
    with make_client(server, certs) as client, pytest.raises(InvalidResponse) as err:
        client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
    assert "GetListingResponse" in str(err.value)


def test_a_doctype_in_a_response_is_refused(server: SoapServer, certs: Certs) -> None:
    evil = (b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x "boom">]>'
            + envelope("GetListingTypes", "<r:resultCode>&x;</r:resultCode>")
            .split(b"?>", 1)[1])
    server.plan["GetListingTypes"] = [(200, evil)]
    with make_client(server, certs) as client, pytest.raises(InvalidResponse) as err:
        client.get_listing_types("08")
    assert "DOCTYPE" in str(err.value)


# --- faults and retries ------------------------------------------------------------------

def test_a_soap_fault_raises_soap_fault_with_its_text(server: SoapServer, certs: Certs) -> None:
    server.plan["GetListing"] = [
        (500, fault("soap:Server", "VP007 [vp-1] Authorization missing for serviceConsumer"))]
    with make_client(server, certs) as client, pytest.raises(SoapFault) as err:
        client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
    exc = err.value
    assert exc.faultcode == "soap:Server"
    assert exc.faultstring == "VP007 [vp-1] Authorization missing for serviceConsumer"
    assert exc.vp_code == "VP007"
    assert exc.detail == "explained"
    assert exc.correlation_id == server.received[0].headers["x-skltp-correlation-id"]
    assert len(server.received) == 1  # a read is never retried


def test_create_listing_retries_with_growing_delays(server: SoapServer, certs: Certs) -> None:
    server.plan["CreateListing"] = [(500, fault("soap:Server", "VP009 producer down"))] * 2
    with make_client(server, certs, retries=3, backoff=0.2) as client:
        result = client.create_listing(
            "08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
            healthcareFacilityHSAId="SE2321000073-VC1", listingType=v.listing_type(),
            correlation_id="same-call")
    assert result.ok and result.attempts == 3
    times = [r.at for r in server.received]
    assert len(times) == 3
    first, second = times[1] - times[0], times[2] - times[1]
    assert 0.2 <= first <= 0.2 * 1.25 + 0.3  # backoff, jitter ≤ 25 %, slack for a busy host
    assert 0.4 <= second <= 0.4 * 1.25 + 0.3
    assert second > first
    # one logical call: the same correlation id on every attempt
    assert {r.headers["x-skltp-correlation-id"] for r in server.received} == {"same-call"}


def test_update_listing_gives_up_after_its_retries(server: SoapServer, certs: Certs) -> None:
    server.plan["UpdateListing"] = [(500, fault("soap:Server", "VP009 producer down"))] * 5
    with make_client(server, certs, retries=2, backoff=0.01) as client, \
            pytest.raises(SoapFault) as err:
        client.update_listing("01", personId=v.person(TOLVAN), newListingCounty=v.county("08"),
                              homeCounty=v.county("01"))
    assert err.value.attempts == 3 and len(server.received) == 3
    assert "3 attempts" in str(err.value)


def test_a_client_fault_is_not_retried(server: SoapServer, certs: Certs) -> None:
    server.plan["CreateListing"] = [(500, fault("soap:Client", "VP004 no route for 99"))] * 3
    with make_client(server, certs, retries=3, backoff=0.01) as client, \
            pytest.raises(SoapFault) as err:
        client.create_listing("99", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
                              healthcareFacilityHSAId="SE2321000073-VC1",
                              listingType=v.listing_type())
    assert err.value.vp_code == "VP004" and len(server.received) == 1


def test_get_listing_does_not_retry(server: SoapServer, certs: Certs) -> None:
    server.plan["GetListing"] = [(500, fault("soap:Server", "VP009 producer down"))] * 3
    with make_client(server, certs, retries=3, backoff=0.01) as client, pytest.raises(SoapFault):
        client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
    assert len(server.received) == 1


def test_a_non_soap_http_error_is_a_transport_error(server: SoapServer, certs: Certs) -> None:
    server.plan["GetListingTypes"] = [(502, b"<html>Bad gateway</html>")]
    with make_client(server, certs) as client, pytest.raises(TransportError) as err:
        client.get_listing_types("08")
    assert err.value.status == 502 and "HTTP 502" in str(err.value)


# --- timeouts and TLS --------------------------------------------------------------------

def test_a_server_that_never_answers_times_out_in_time(server: SoapServer, certs: Certs) -> None:
    server.plan["GetListing"] = ["hang"]
    with make_client(server, certs, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ClientTimeout) as err:
            client.get_listing("08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    assert "timeout" in str(err.value)


def test_create_listing_retries_after_a_timeout(server: SoapServer, certs: Certs) -> None:
    server.plan["CreateListing"] = ["hang"]
    with make_client(server, certs, timeout=0.3, backoff=0.01) as client:
        result = client.create_listing(
            "08", actor=v.actor(TOLVAN), personId=v.person(TOLVAN),
            healthcareFacilityHSAId="SE2321000073-VC1", listingType=v.listing_type())
    assert result.ok and result.attempts == 2


def test_a_client_without_a_certificate_is_refused(server: SoapServer, certs: Certs) -> None:
    with ListingClient(server.url, cert=None, key=None, ca=certs.ca, timeout=5) as client, \
            pytest.raises(TransportError) as err:
        client.get_listing_types("08")
    assert server.received == []
    assert "no client certificate" in str(err.value) and err.value.correlation_id


def test_a_client_certificate_from_another_ca_is_refused(server: SoapServer,
                                                         certs: Certs) -> None:
    with ListingClient(server.url, cert=certs.stranger.cert, key=certs.stranger.key,
                       ca=certs.ca, timeout=5) as client, pytest.raises(TransportError):
        client.get_listing_types("08")
    assert server.received == []


def test_a_server_the_ca_did_not_sign_is_refused(server: SoapServer, certs: Certs,
                                                 tmp_path: Path) -> None:
    other_ca = pki.create_ca(tmp_path, common_name="Not the platform's CA").cert
    with ListingClient(server.url, cert=certs.client.cert, key=certs.client.key,
                       ca=other_ca, timeout=5) as client, pytest.raises(TransportError) as err:
        client.get_listing_types("08")
    assert "TLS" in str(err.value) and "certificate verify failed" in str(err.value)


def test_a_refused_connection_is_retried_for_writes_only(certs: Certs) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    with ListingClient(url, cert=certs.client.cert, key=certs.client.key, ca=certs.ca,
                       retries=2, backoff=0.01) as client:
        with pytest.raises(TransportError) as write:
            client.update_listing("01", personId=v.person(TOLVAN),
                                  newListingCounty=v.county("08"), homeCounty=v.county("01"))
        with pytest.raises(TransportError) as read:
            client.get_listing_county("01", actor=v.actor(TOLVAN), personId=v.person(TOLVAN))
    assert write.value.attempts == 3 and read.value.attempts == 1
    assert "could not reach" in str(write.value)
