"""The contract files themselves: they compile, zeep reads every WSDL, and the release zip works.

What a region integrator does with the release is exactly this: unzip it, compile the XSDs and
generate a client from each WSDL. Every check runs on our folder and on the unzipped release.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import xmlschema
from lxml import etree
from zeep import Client, Settings

from interactions import package
from interactions.contracts import REGISTRY_NS, SCHEMAS_DIR, all_contracts, producer_contracts
from interactions.lint import lint_folder
from interactions.xmlload import parse_file

HARDENED = Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                    xml_huge_tree=False)
RELEASED = {
    "CreateListing", "GetAvailableHealthcareFacilities", "GetAvailableHealthcarePersonnel",
    "GetListingCounty", "GetListing", "GetListingTypes", "UpdateListing", "PingForConfiguration",
}
CORE_IN_ZIP = "schemas/core_components"
INTERACTIONS_IN_ZIP = "schemas/interactions"

OUR_XSDS = sorted([*SCHEMAS_DIR.glob("*.xsd"), *(c.xsd for c in all_contracts().values())])


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the zip, the folder it was unzipped into)."""
    out = tmp_path_factory.mktemp("zip")
    target = package.write_zip(out)
    unzipped = tmp_path_factory.mktemp("release")
    with zipfile.ZipFile(target) as zf:
        zf.extractall(unzipped)
    return target, unzipped


def released_wsdl(unzipped: Path, name: str) -> Path:
    c = all_contracts()[name]
    return unzipped / INTERACTIONS_IN_ZIP / c.folder.name / c.wsdl.name


def compile_both(xsd: Path) -> None:
    """Compile with libxml2 (the request path) and xmlschema (tools); either raises if broken."""
    root = parse_file(xsd)
    root.getroottree().docinfo.URL = str(xsd)  # so relative schemaLocations resolve
    etree.XMLSchema(root.getroottree())
    xmlschema.XMLSchema(str(xsd), allow="local", defuse="always")


def check_wsdl(wsdl: Path, name: str) -> None:
    """zeep, hardened, finds one operation with the contract's soapAction, header and body."""
    c = all_contracts()[name]
    client = Client(str(wsdl), settings=HARDENED)
    ops = [op for b in client.wsdl.bindings.values() for op in b.all().values()]
    assert len(ops) == 1, f"{wsdl.name}: {len(ops)} operations"
    op = ops[0]
    assert op.name == name
    assert op.soapaction == c.soap_action
    assert op.soapaction == f"{c.namespace}:{name}"
    header_elements = op.input.header.type.elements
    assert [(n, el.qname.text) for n, el in header_elements] == [
        ("LogicalAddress", f"{{{REGISTRY_NS}}}LogicalAddress")
    ]
    assert op.input.body.qname.text == f"{{{c.namespace}}}{name}"
    assert op.output.body.qname.text == f"{{{c.namespace}}}{name}Response"
    [service] = client.wsdl.services.values()
    [port] = service.ports.values()
    assert port.binding_options["address"].endswith(c.path)  # /Contract/major/rivtabp21


def test_the_release_is_the_seven_carelisting_contracts_and_ping() -> None:
    assert {c.name for c in producer_contracts()} == RELEASED


@pytest.mark.parametrize("xsd", OUR_XSDS, ids=[p.name for p in OUR_XSDS])
def test_every_xsd_compiles(xsd: Path) -> None:
    compile_both(xsd)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_zeep_loads_each_wsdl(name: str) -> None:
    check_wsdl(all_contracts()[name].wsdl, name)


def test_zip_holds_the_release_layout(release: tuple[Path, Path]) -> None:
    target, _ = release
    assert target.name == "ServiceContracts_supportprocess_logistics_carelisting_2.1.zip"
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
        readme = zf.read("README.txt").decode()
    expected = {f"{CORE_IN_ZIP}/{p.name}" for p in SCHEMAS_DIR.glob("*.xsd")}
    for c in producer_contracts():
        expected |= {f"{INTERACTIONS_IN_ZIP}/{c.folder.name}/{p.name}" for p in (c.xsd, c.wsdl)}
    assert set(names) == expected | {"README.txt"}
    assert names == sorted(names)
    assert not any("GetLogicalAddresseesByServiceContract" in n for n in names)
    assert "must also serve" in readme and "PingForConfiguration" in readme


def test_zip_changes_only_the_schema_locations(release: tuple[Path, Path]) -> None:
    _, unzipped = release
    for xsd in SCHEMAS_DIR.glob("*.xsd"):
        assert (unzipped / CORE_IN_ZIP / xsd.name).read_bytes() == xsd.read_bytes()
    for c in producer_contracts():
        for src in (c.xsd, c.wsdl):
            got = (unzipped / INTERACTIONS_IN_ZIP / c.folder.name / src.name).read_bytes()
            assert b"../../schemas/" not in got
            assert got == src.read_bytes().replace(b'"../../schemas/', b'"../../core_components/')


def test_zip_is_byte_identical_across_runs(tmp_path: Path, release: tuple[Path, Path]) -> None:
    again = package.write_zip(tmp_path)
    assert again.read_bytes() == release[0].read_bytes()
    with zipfile.ZipFile(again) as zf:
        assert {i.date_time for i in zf.infolist()} == {package.FIXED_TIME}


def test_lint_passes_on_the_unzipped_release(release: tuple[Path, Path]) -> None:
    _, unzipped = release
    assert lint_folder(unzipped) == []


def test_every_xsd_in_the_release_compiles(release: tuple[Path, Path]) -> None:
    _, unzipped = release
    xsds = sorted(unzipped.rglob("*.xsd"))
    assert len(xsds) == len(list(SCHEMAS_DIR.glob("*.xsd"))) + len(RELEASED)
    for xsd in xsds:
        compile_both(xsd)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_zeep_loads_each_wsdl_from_the_release(release: tuple[Path, Path], name: str) -> None:
    check_wsdl(released_wsdl(release[1], name), name)


def test_zip_command_prints_where_it_wrote(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from listning.cli import main

    assert main(["contract", "zip", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    target = tmp_path / "out" / "ServiceContracts_supportprocess_logistics_carelisting_2.1.zip"
    assert target.is_file()
    assert str(target) in out
    (tmp_path / "file").write_text("x")
    assert main(["contract", "zip", "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
