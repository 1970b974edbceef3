"""Small pieces of the platform that are cheapest to check directly: the envelope readers,
the proxy allow-list, snapshot validity dates at their boundaries, the fault format."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from lxml import etree
from vp_support import GET_LISTING, envelope, permit, route, snapshot

from routing.vp import envelope as env
from routing.vp.faults import CODES, VpError, fault_body
from routing.vp.identity import is_allowed, parse_networks

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def both_readers(data: bytes) -> list[env.EnvelopeInfo | str]:
    results: list[env.EnvelopeInfo | str] = []
    for reader in (lambda d: env._read_full(d, 10**8), env._read_streaming):
        try:
            results.append(reader(data))
        except VpError as exc:
            results.append(exc.code)
    return results


@pytest.mark.parametrize("padding", [0, 50_000])
def test_both_readers_agree_on_routing_inputs(padding):
    full, pulled = both_readers(envelope(address=" 08 ", padding=padding))
    assert full == pulled == env.EnvelopeInfo(GET_LISTING, "08", "RIVTABP21")
    full, pulled = both_readers(envelope(address="08", header="To", padding=padding))
    assert full == pulled == env.EnvelopeInfo(GET_LISTING, "08", "RIVTABP20")


def test_first_address_header_wins_and_comments_are_skipped():
    data = (f'<s:Envelope xmlns:s="{SOAP}"><s:Header><!-- c --><x:Other xmlns:x="urn:x">no'
            '</x:Other><a:LogicalAddress xmlns:a="urn:riv:itintegration:registry:1">01'
            '</a:LogicalAddress><a:LogicalAddress xmlns:a="urn:a">02</a:LogicalAddress>'
            f'</s:Header><s:Body><!-- c --><m:Ping xmlns:m="urn:ping"/></s:Body></s:Envelope>'
            ).encode()
    assert both_readers(data) == [env.EnvelopeInfo("urn:ping", "01", "RIVTABP21")] * 2
    big = data.replace(b"<!-- c -->", b"<!--" + b"x" * 40_000 + b"-->", 1)
    assert env.read_envelope(big, 10**8) == env.EnvelopeInfo("urn:ping", "01", "RIVTABP21")


@pytest.mark.parametrize("data", [
    b"<not-closed>",
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b"<lolz>&lol2;</lolz>",
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body><unqualified/></s:Body></s:Envelope>'.encode(),
    f'<s:Envelope xmlns:s="{SOAP}"><s:Body></s:Body></s:Envelope>'.encode(),
    b'<Envelope xmlns="urn:not-soap"><Body><x xmlns="urn:x"/></Body></Envelope>',
])
def test_unreadable_envelopes_are_vp015_in_both_readers(data):
    assert both_readers(data) == ["VP015", "VP015"]


def test_streaming_reader_does_not_need_the_rest_of_the_body():
    data = envelope(padding=200_000)
    cut = data[: len(data) // 2]  # malformed after the body element starts: never read
    assert env._read_streaming(cut).contract_namespace == GET_LISTING


def test_conversion_keeps_the_rest_of_the_envelope():
    original = envelope(address="08", header="To", padding=10)
    converted = env.convert_address_header(original, env.BP21, 10**6)
    assert env.read_envelope(converted, 10**6) == env.EnvelopeInfo(GET_LISTING, "08", env.BP21)
    root = etree.fromstring(converted)
    assert root.find(f"{{{SOAP}}}Body")[0].findtext(f"{{{GET_LISTING}}}note") == "x" * 10
    back = env.convert_address_header(converted, env.BP20, 10**6)
    assert env.read_envelope(back, 10**6).riv_version == env.BP20


def test_proxy_allow_list_compares_addresses_not_strings():
    nets = parse_networks(["127.0.0.1", "10.1.0.0/16", "::1"])
    assert is_allowed("127.0.0.1", nets)
    assert not is_allowed("127.0.0.10", nets)  # a string prefix would match
    assert is_allowed("10.1.255.3", nets) and not is_allowed("10.10.0.1", nets)
    assert is_allowed("::1", nets) and is_allowed("::ffff:127.0.0.1", nets)
    assert not is_allowed("not-an-ip", nets) and not is_allowed(None, nets)
    assert not is_allowed("127.0.0.1", ())
    with pytest.raises(ValueError):
        parse_networks(["127.0.0"])


def test_validity_dates_are_inclusive_at_both_ends():
    day = date(2026, 6, 1)
    s = snapshot("d", [route("08", "https://p/x", dates=(day, day))],
                 [permit("08", dates=(day, day + timedelta(days=1)))])
    assert s.routes_for(GET_LISTING, "08", day)
    assert not s.routes_for(GET_LISTING, "08", day - timedelta(days=1))
    assert not s.routes_for(GET_LISTING, "08", day + timedelta(days=1))
    assert s.is_permitted("se2321000016-1177", GET_LISTING.upper(), "08", day + timedelta(1))
    assert not s.is_permitted("SE2321000016-1177", GET_LISTING, "08", day + timedelta(2))


def test_fault_format_for_every_code():
    for code, (side, _) in CODES.items():
        root = etree.fromstring(fault_body(VpError(code, "why <&>"), "vp-1"))
        fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
        assert fault.findtext("faultcode") == side
        assert fault.findtext("faultstring") == f"{code} [vp-1] why <&>"
        assert fault.findtext("detail/detailString")
