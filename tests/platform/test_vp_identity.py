"""Who the platform believes is calling: client certificates, and a TLS-terminating proxy."""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
from urllib.parse import quote

import pytest
import requests
from vp_support import CONSUMER, OK_RESPONSE, assert_vp, client, envelope, fault_of

from routing import pki

PATH = "/GetListing/2/rivtabp21"


def test_no_client_certificate_is_refused_in_the_handshake(certs, main_platform):
    with client(certs, None) as anonymous, pytest.raises(requests.exceptions.ConnectionError):
        anonymous.post(main_platform.urls["https"] + PATH, data=envelope(), timeout=10)


def test_certificate_from_an_unknown_ca_is_refused_in_the_handshake(certs, main_platform):
    with client(certs, certs.foreign) as stranger, \
            pytest.raises(requests.exceptions.ConnectionError):
        stranger.post(main_platform.urls["https"] + PATH, data=envelope(), timeout=10)


def test_expired_certificate_is_refused_in_the_handshake(certs, main_platform):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = pki.issue(certs.ca.parent, "expired", CONSUMER, not_before=start,
                        not_after=start + dt.timedelta(days=1))
    with client(certs, expired) as s, pytest.raises(requests.exceptions.ConnectionError):
        s.post(main_platform.urls["https"] + PATH, data=envelope(), timeout=10)


def test_certificate_without_serialnumber_is_vp002(certs, main_platform):
    with client(certs, certs.no_serial) as s:
        r = s.post(main_platform.urls["https"] + PATH, data=envelope(), timeout=10)
    assert_vp(r, "VP002", "Client")


# --- the plain-HTTP listener behind a TLS-terminating proxy (trusted: 127.0.0.1 exactly) ---

def forwarded(pem: bytes) -> str:
    return quote(pem.decode())


def post_from(platform, source: str, body: bytes, headers: dict[str, str],
              path: str = PATH) -> tuple[int, dict[str, str], bytes]:
    """POST from a chosen loopback source address (the 'proxy' the platform sees)."""
    port = int(platform.urls["http"].rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15,
                                      source_address=(source, 0))
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "text/xml", **headers})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class _Resp:  # enough of requests.Response for assert_vp
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.content, self.text = status, body, body.decode(errors="replace")


def test_forwarded_certificate_from_trusted_proxy_identifies_the_sender(certs, proxy_platform,
                                                                        producers):
    status, headers, body = post_from(
        proxy_platform, "127.0.0.1", envelope(address="plain"),
        {"x-vp-auth-cert": forwarded(certs.consumer.cert.read_bytes())})
    assert status == 200, body
    assert body == OK_RESPONSE
    assert headers["x-skltp-correlation-id"]
    seen = {k.lower(): v for k, v in producers.last("/ok/plain").headers.items()}
    # a plain-HTTP producer learns the sender and the platform instance from headers
    assert seen["x-vp-sender-id"] == CONSUMER
    assert seen["x-vp-instance-id"] == "vp-test"
    assert seen["x-rivta-original-serviceconsumer-hsaid"] == CONSUMER
    assert "x-vp-auth-cert" not in seen  # certificate headers are not forwarded


def test_forwarded_certificate_from_a_non_allow_listed_address_is_vp011(certs, proxy_platform):
    # 127.0.0.10 starts with the trusted "127.0.0.1": string-prefix matching would let it in
    for source in ("127.0.0.10", "127.0.0.2"):
        status, _, body = post_from(
            proxy_platform, source, envelope(address="plain"),
            {"x-vp-auth-cert": forwarded(certs.consumer.cert.read_bytes())})
        assert_vp(_Resp(status, body), "VP011", "Client")


def test_trusted_proxy_without_a_usable_certificate_is_vp002(certs, proxy_platform):
    for headers in ({}, {"x-vp-auth-cert": forwarded(certs.no_serial.cert.read_bytes())},
                    {"x-vp-auth-cert": "not-a-certificate"}):
        status, _, body = post_from(proxy_platform, "127.0.0.1", envelope(address="plain"),
                                    headers)
        assert_vp(_Resp(status, body), "VP002", "Client")


def test_routing_loop_back_into_the_platform_is_vp014(certs, proxy_platform):
    # the 'loop' route points at this platform's own HTTP listener
    status, _, body = post_from(proxy_platform, "127.0.0.1", envelope(address="loop"),
                                {"x-vp-auth-cert": forwarded(certs.consumer.cert.read_bytes())})
    assert status == 500
    assert fault_of(_Resp(status, body)).code == "VP014"


def test_https_producer_without_a_platform_certificate_is_vp012(certs, proxy_platform):
    # this platform instance has no certificate of its own to present to an HTTPS producer
    status, _, body = post_from(proxy_platform, "127.0.0.1", envelope(address="08"),
                                {"x-vp-auth-cert": forwarded(certs.consumer.cert.read_bytes())})
    assert_vp(_Resp(status, body), "VP012", "Server")


def test_producer_verifies_the_platforms_certificate(certs, producers):
    # the HTTPS producer itself refuses callers without a CA-issued certificate: so a routed
    # call that succeeds (test_vp_routing) proves the platform presented its own
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    host, port = producers.https.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn.request("POST", "/ok/x", body=envelope())
        conn.getresponse().read()
    conn.close()
