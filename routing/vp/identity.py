"""Who is calling: the sender's HSA-id from the TLS client certificate, or from a trusted proxy.

Over HTTPS the TLS handshake already required a certificate from our CA; the HSA-id is the
subject SERIALNUMBER (OID 2.5.4.5). Over plain HTTP (behind a TLS-terminating proxy) the
proxy forwards the client certificate as URL-encoded PEM in a header; that header is believed
only from allow-listed proxy addresses (exact address or CIDR, compared as IP networks,
never as string prefixes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID

from routing.vp.faults import VpError

DEFAULT_CERT_HEADER = "x-vp-auth-cert"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[IpNetwork, ...]:
    """'10.0.0.5' or '10.0.0.0/24' (or IPv6) → networks; a bad entry is a configuration error."""
    return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items)


@lru_cache(maxsize=1024)  # the same few proxy addresses, call after call
def is_allowed(address: str | None, networks: tuple[IpNetwork, ...]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def sender_from_peercert(peercert: dict | None) -> str:
    """The SERIALNUMBER from ``ssl.SSLObject.getpeercert()`` (a verified certificate)."""
    if peercert:
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "serialNumber" and value.strip():
                    return value.strip()
    raise VpError("VP002", "the client certificate has no SERIALNUMBER (HSA-id) in its subject")


@lru_cache(maxsize=256)  # a proxy forwards the same few certificates over and over
def sender_from_forwarded(header_value: str) -> str:
    """The SERIALNUMBER of a URL-encoded PEM certificate forwarded by a trusted proxy."""
    try:
        cert = x509.load_pem_x509_certificate(unquote(header_value).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise VpError("VP002", "the forwarded client certificate cannot be read") from None
    found = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    value = str(found[0].value).strip() if found else ""
    if not value:
        raise VpError("VP002", "the forwarded client certificate has no SERIALNUMBER (HSA-id)")
    return value
