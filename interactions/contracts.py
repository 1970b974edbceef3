"""The contracts of the release, read from the contract files themselves.

Nothing here is a second copy of the contract: names, versions and namespaces are read from
the ``<Contract>Interaction/`` folders and the WSDL/XSD files in them, so adding a contract
folder is all it takes for every tool to see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

import schemas

HERE = Path(__file__).resolve().parent
SCHEMAS_DIR = schemas.DIR

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
DOMAIN_NS = "urn:riv:supportprocess:logistics:carelisting:2"
DOMAIN_EXT_NS = "urn:riv:supportprocess:logistics:carelisting:2.1"
DOMAIN_PREFIX = "urn:riv:supportprocess:logistics:carelisting:"
PING_NS = "urn:riv:itintegration:monitoring:PingForConfigurationResponder:1"
RIV_PROFILE = "rivtabp21"

_XSD_NAME = re.compile(r"^(?P<name>[A-Za-z]+)Responder_(?P<version>\d+\.\d+)\.xsd$")


@dataclass(frozen=True)
class Contract:
    """One service contract (interaction) of the release."""

    name: str
    version: str  # "major.minor", from the file names
    folder: Path
    xsd: Path
    wsdl: Path
    namespace: str  # the Responder schema's namespace: what the platform routes on

    @property
    def major(self) -> str:
        return self.version.split(".")[0]

    @property
    def soap_action(self) -> str:
        return f"{self.namespace}:{self.name}"

    @property
    def wsdl_namespace(self) -> str:
        domain = self.namespace.rsplit(":", 2)[0]
        return f"{domain}:{self.name}:{self.major}:{RIV_PROFILE}"

    @property
    def path(self) -> str:
        """The producer URL path: contract, major version and profile, never the minor."""
        return f"/{self.name}/{self.major}/{RIV_PROFILE}"

    @property
    def request_qname(self) -> str:
        return f"{{{self.namespace}}}{self.name}"

    @property
    def response_qname(self) -> str:
        return f"{{{self.namespace}}}{self.name}Response"

    @property
    def in_domain(self) -> bool:
        """True for the carelisting contracts (not ping, not the platform's own)."""
        return self.namespace.startswith(DOMAIN_PREFIX)


def _target_namespace(xsd: Path) -> str:
    # Our own trusted contract files, parsed with the hardened loader's settings all the same.
    from interactions.xmlload import parse_file

    return parse_file(xsd).get("targetNamespace")


@cache
def all_contracts() -> dict[str, Contract]:
    """Every contract folder under interactions/, keyed by contract name."""
    found: dict[str, Contract] = {}
    for folder in sorted(HERE.glob("*Interaction")):
        for xsd in folder.glob("*Responder_*.xsd"):
            m = _XSD_NAME.match(xsd.name)
            if not m:
                continue
            name, version = m["name"], m["version"]
            wsdl = folder / f"{name}Interaction_{version}_RIVTABP21.wsdl"
            found[name] = Contract(name, version, folder, xsd, wsdl, _target_namespace(xsd))
    return found


def domain_contracts() -> list[Contract]:
    """The seven carelisting contracts."""
    return [c for c in all_contracts().values() if c.in_domain]


def producer_contracts() -> list[Contract]:
    """What a region's listing system serves: the domain's contracts plus PingForConfiguration."""
    return [*domain_contracts(), all_contracts()["PingForConfiguration"]]


def by_namespace(namespace: str) -> Contract | None:
    for c in all_contracts().values():
        if c.namespace == namespace:
            return c
    return None


def by_element(tag: str) -> tuple[Contract, bool] | None:
    """The contract a body element belongs to, and whether it is a response."""
    qn = etree.QName(tag)
    c = by_namespace(qn.namespace or "")
    if c is None:
        return None
    if qn.localname == c.name:
        return c, False
    if qn.localname == f"{c.name}Response":
        return c, True
    return None
