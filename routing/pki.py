"""The test PKI: a CA and certificates whose subject SERIALNUMBER is the party's HSA-id.

The national platform identifies a caller by the HSA-id in the SERIALNUMBER attribute
(OID 2.5.4.5) of its TLS client certificate; the pilot and the tests make their own CA and
certificates the same way. Every certificate can serve both as a TLS server and a client
(the regions are producers and consumers at once). Keys are written 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"


@dataclass(frozen=True)
class Identity:
    """A party's certificate and key on disk."""

    name: str
    hsa_id: str | None
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(directory: Path, common_name: str = "Listning Test CA", days: int = 3650) -> Identity:
    """Make a CA in ``directory`` (ca.pem, ca.key) unless one is already there."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{CA_NAME}.pem", directory / f"{CA_NAME}.key"
    if cert_path.exists() and key_path.exists():
        return Identity(CA_NAME, None, cert_path, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Listning pilot")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(CA_NAME, None, cert_path, key_path)


def issue(
    directory: Path,
    name: str,
    hsa_id: str | None,
    *,
    hostnames: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 825,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    ca: Identity | None = None,
) -> Identity:
    """Issue ``name``.pem/.key signed by the CA in ``directory`` (made if missing).

    ``hsa_id`` goes into the subject SERIALNUMBER; ``None`` makes a certificate without one
    (for tests of VP002). ``not_before``/``not_after`` override validity (expired certificates).
    """
    ca = ca or create_ca(directory)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Listning pilot")]
    if hsa_id:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, hsa_id))
    sans: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    start = not_before or (_now() - dt.timedelta(minutes=5))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or (start + dt.timedelta(days=days)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(name, hsa_id, cert_path, key_path)


def load_identity(directory: Path, name: str) -> Identity | None:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    if not (cert.exists() and key.exists()):
        return None
    return Identity(name, hsa_id_of(cert.read_bytes()), cert, key)


def hsa_id_of(cert_pem_or_der: bytes) -> str | None:
    """The subject SERIALNUMBER of a certificate (PEM or DER), or None."""
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(cert_pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(cert_pem_or_der)
    found = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(found[0].value) if found else None


def ensure(directory: Path, name: str, hsa_id: str | None, **kwargs) -> Identity:
    """The identity ``name`` in ``directory``, issued on first use (reused after that)."""
    return load_identity(directory, name) or issue(directory, name, hsa_id, **kwargs)


# --- `listning pki init DIR [--party NAME=HSAID ...]` ---

def register(subparsers: argparse._SubParsersAction) -> None:
    pki = subparsers.add_parser("pki", help="the test PKI for the pilot and the tests")
    sub = pki.add_subparsers(dest="pki_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("init", help="create a CA and certificates with HSA-ids in SERIALNUMBER")
    p.add_argument("directory", type=Path)
    p.add_argument("--party", action="append", default=[], metavar="NAME=HSAID",
                   help="issue a certificate for NAME with HSA-id HSAID (repeatable)")
    p.set_defaults(handler=_run_init)


def _run_init(args: argparse.Namespace) -> int:
    ca = create_ca(args.directory)
    print(f"CA          {ca.cert}")
    for spec in args.party:
        name, sep, hsa = spec.partition("=")
        if not sep or not name or not hsa:
            print(f"error: --party wants NAME=HSAID, got {spec!r}")
            return 2
        ident = ensure(args.directory, name, hsa, ca=ca)
        print(f"{name:<11} {ident.cert}  (SERIALNUMBER={hsa})")
    return 0
