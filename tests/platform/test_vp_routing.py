"""Calls through the real platform process over mutual TLS to real producers."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from lxml import etree
from vp_support import (
    CONSUMER,
    GET_LISTING,
    GET_TYPES,
    OK_RESPONSE,
    PERSON,
    PRODUCER_FAULT,
    TRUSTED_ORIGINATOR,
    assert_vp,
    client,
    envelope,
)

PATH = "/GetListing/2/rivtabp21"
HEADERS = {"Content-Type": "text/xml; charset=utf-8",
           "SOAPAction": f"{GET_LISTING}:GetListing"}


@pytest.fixture(scope="module")
def consumer(certs):
    with client(certs, certs.consumer) as s:
        yield s


def post(session: requests.Session, platform, body: bytes, path: str = PATH,
         headers: dict | None = None, timeout: float = 15) -> requests.Response:
    return session.post(platform.urls["https"] + path, data=body,
                        headers={**HEADERS, **(headers or {})}, timeout=timeout)


def test_routed_call_reaches_producer_and_answer_comes_back(consumer, main_platform, producers):
    r = post(consumer, main_platform, envelope(address="08"))
    assert r.status_code == 200
    assert r.content == OK_RESPONSE
    assert r.headers["X-Producer"] == "yes"
    assert int(r.headers["x-skltp-prt"]) >= 0
    seen = producers.last("/ok/GetListing/2/rivtabp21")
    assert seen.body == envelope(address="08")  # forwarded byte for byte
    assert seen.headers["x-rivta-original-serviceconsumer-hsaid"] == CONSUMER
    # a new correlation id, the same one the consumer gets back
    assert str(uuid.UUID(seen.headers["x-skltp-correlation-id"])) == \
        r.headers["x-skltp-correlation-id"]
    # HTTPS producer: it sees the platform's certificate, so no x-vp-sender-id
    assert "x-vp-sender-id" not in {k.lower() for k in seen.headers}


def test_incoming_correlation_id_kept_and_hop_by_hop_headers_stripped(consumer, main_platform,
                                                                      producers):
    r = post(consumer, main_platform, envelope(address="08"),
             headers={"x-skltp-correlation-id": "corr-123", "Proxy-Authorization": "Basic x",
                      "x-vp-sender-id": "SE-spoofed", "X-Custom": "kept",
                      "Connection": "keep-alive, X-Hop", "X-Hop": "named in Connection"})
    assert r.status_code == 200
    assert r.headers["x-skltp-correlation-id"] == "corr-123"
    seen = {k.lower(): v for k, v in producers.last("/ok/GetListing/2/rivtabp21").headers.items()}
    assert seen["x-skltp-correlation-id"] == "corr-123"
    assert "proxy-authorization" not in seen
    assert "x-hop" not in seen and "connection" not in seen
    assert "x-vp-sender-id" not in seen  # a caller cannot spoof it
    assert seen["x-custom"] == "kept"
    assert seen["soapaction"] == f"{GET_LISTING}:GetListing"


def test_matching_is_case_insensitive(consumer, main_platform):
    # route "kalmar", permission held by the consumer's HSA-id in lower case
    r = post(consumer, main_platform, envelope(address="KALMAR"))
    assert r.status_code == 200, r.text
    r = post(consumer, main_platform, envelope(GET_LISTING.upper(), address="08"))
    assert r.status_code == 200, r.text


def test_producer_fault_passes_through_unchanged(consumer, main_platform):
    r = post(consumer, main_platform, envelope(address="fault"))
    assert r.status_code == 500
    assert r.content == PRODUCER_FAULT


@pytest.mark.parametrize(("address", "code", "side"), [
    ("nowhere", "VP004", "Client"),     # no route
    ("expired", "VP004", "Client"),     # route valid only until the day before yesterday
    ("01", "VP007", "Server"),          # route, but no permission
    ("dup", "VP006", "Server"),         # two routes
    ("nourl", "VP010", "Server"),       # empty producer address
    ("bp30", "VP005", "Client"),        # producer profile the platform cannot speak
    ("down", "VP009", "Server"),        # connection refused
    ("garbage", "VP009", "Server"),     # 200 but not SOAP
    ("empty", "VP009", "Server"),       # 200 with no body
    ("html", "VP009", "Server"),        # non-SOAP error page
    ("impostor", "VP009", "Server"),    # producer's certificate is not from our CA
])
def test_platform_faults(consumer, main_platform, producers, address, code, side):
    r = post(consumer, main_platform, envelope(address=address))
    assert_vp(r, code, side)
    assert r.headers["x-skltp-correlation-id"]
    if address == "impostor":  # refused in the TLS handshake: nothing was sent
        assert not [s for s in producers.seen if s.path == "/ok/impostor"]


def test_unknown_route_wins_over_missing_permission(certs, main_platform):
    with client(certs, certs.other) as other:  # permitted for nothing at all
        assert_vp(post(other, main_platform, envelope(address="nowhere")), "VP004", "Client")
        assert_vp(post(other, main_platform, envelope(address="08")), "VP007", "Server")


def test_producer_timeout_is_the_contracts(consumer, main_platform):
    started = time.monotonic()
    r = post(consumer, main_platform, envelope(GET_TYPES, address="08"),
             path="/GetListingTypes/2/rivtabp21")
    elapsed = time.monotonic() - started
    f = assert_vp(r, "VP009", "Server")
    assert "1 s" in f.faultstring
    assert 0.9 <= elapsed < 2.5  # the contract's 1 s, not the 5 s the producer takes


@pytest.mark.parametrize(("body", "why"), [
    (b"this is not xml", "not XML"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DOCTYPE"),
    (envelope().replace(b"http://schemas.xmlsoap.org/soap/envelope/",
                        b"http://www.w3.org/2003/05/soap-envelope"), "SOAP 1.2"),
    (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>'
     b"<soap:Body/></soap:Envelope>", "no body element"),
    (b"", "empty"),
])
def test_unreadable_requests_get_vp015(consumer, main_platform, body, why):
    assert_vp(post(consumer, main_platform, body), "VP015", "Client")


def test_doctype_in_a_large_envelope_is_refused_by_the_streaming_reader(consumer,
                                                                        main_platform):
    big = envelope(padding=30_000)  # above the switch to the pull parser
    body = big.replace(b"?>", b'?><!DOCTYPE soap:Envelope [<!ENTITY e "x">]>', 1)
    assert_vp(post(consumer, main_platform, body), "VP015", "Client")


def test_large_envelope_below_the_cap_is_routed(consumer, main_platform, producers):
    body = envelope(padding=40_000)  # read by the streaming reader
    r = post(consumer, main_platform, body)
    assert r.status_code == 200
    assert producers.last("/ok/GetListing/2/rivtabp21").body == body


def test_oversized_body_gets_413_with_vp015(consumer, main_platform):
    r = post(consumer, main_platform, envelope(padding=70_000))  # cap is 64 KiB here
    f = assert_vp(r, "VP015", "Client", status=413)
    assert "65536 bytes" in f.faultstring


def test_oversized_chunked_body_is_cut_at_the_cap(consumer, main_platform):
    def chunks():
        yield envelope()[:-40]
        for _ in range(100):
            yield b"<pad>" + b"y" * 1000 + b"</pad>"

    r = post(consumer, main_platform, chunks())
    assert_vp(r, "VP015", "Client", status=413)


def test_missing_logical_address_is_vp003(consumer, main_platform):
    assert_vp(post(consumer, main_platform, envelope(address=None)), "VP003", "Client")


def test_unsupported_riv_version_in_path_is_vp001(consumer, main_platform):
    assert_vp(post(consumer, main_platform, envelope(), path="/GetListing/2/rivtabp30"),
              "VP001", "Client")


def test_original_consumer_header_needs_the_allow_list(certs, consumer, main_platform,
                                                       producers):
    r = post(consumer, main_platform, envelope(),
             headers={"x-rivta-original-serviceconsumer-hsaid": "SE-someone-else"})
    assert_vp(r, "VP013", "Client")
    with client(certs, certs.originator) as allowed:
        r = post(allowed, main_platform, envelope(),
                 headers={"x-rivta-original-serviceconsumer-hsaid": "SE2321000016-citizen"})
    assert r.status_code == 200, r.text
    seen = producers.last("/ok/GetListing/2/rivtabp21")
    assert seen.headers["x-rivta-original-serviceconsumer-hsaid"] == "SE2321000016-citizen"
    assert TRUSTED_ORIGINATOR


def _address_header(body: bytes) -> tuple[str, str]:
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    head = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Header")[0]
    return etree.QName(head).text, head.text


def test_bp21_caller_to_bp20_producer_gets_wsa_to(consumer, main_platform, producers):
    assert post(consumer, main_platform, envelope(address="bp20")).status_code == 200
    assert _address_header(producers.last("/ok/bp20").body) == (
        "{http://www.w3.org/2005/08/addressing}To", "bp20")


def test_bp20_caller_to_bp21_producer_gets_logical_address(consumer, main_platform, producers):
    r = post(consumer, main_platform, envelope(address="08", header="To"),
             path="/GetListing/2/rivtabp20")
    assert r.status_code == 200, r.text
    assert _address_header(producers.last("/ok/GetListing/2/rivtabp21").body) == (
        "{urn:riv:itintegration:registry:1}LogicalAddress", "08")


def test_one_log_line_per_leg_without_bodies(consumer, main_platform):
    r = post(consumer, main_platform, envelope(address="08"),
             headers={"x-skltp-correlation-id": "log-check-1"})
    assert r.status_code == 200
    assert_vp(post(consumer, main_platform, envelope(address="01"),
                   headers={"x-skltp-correlation-id": "log-check-2"}), "VP007", "Server")
    time.sleep(0.2)
    lines = main_platform.log_lines()
    ok = {x["event"]: x for x in lines if x.get("correlation_id") == "log-check-1"}
    assert set(ok) == {"req-in", "req-out", "resp-in", "resp-out"}
    out = ok["resp-out"]
    assert (out["sender"], out["receiver"], out["contract"], out["status"]) == (
        CONSUMER, "08", "GetListing", 200)
    assert out["duration_ms"] >= 0
    failed = {x["event"]: x for x in lines if x.get("correlation_id") == "log-check-2"}
    assert failed["error"]["vp_code"] == "VP007"
    assert failed["resp-out"]["vp_code"] == "VP007"
    text = main_platform.log.read_text()
    assert PERSON not in text
    assert "Envelope" not in text


def test_metrics_count_calls_by_contract_and_outcome(consumer, main_platform):
    post(consumer, main_platform, envelope(address="08"))
    metrics = main_platform.ops("/metrics").text
    assert 'vp_calls_total{contract="GetListing",outcome="ok"}' in metrics
    assert 'vp_call_duration_seconds_bucket{contract="GetListing"' in metrics
    loaded_at = [line for line in metrics.splitlines()
                 if line.startswith("vp_snapshot_loaded_timestamp_seconds ")]
    assert float(loaded_at[0].split()[1]) > time.time() - 3600
