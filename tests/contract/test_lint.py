"""`listning contract lint`: passes on our contract files, and each rule catches its own defect.

Every rule has one case: a copy of the contract files with exactly one thing broken, which must
make the real command exit 1 with a finding naming that rule (and, for most, only that rule).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from interactions.contracts import SCHEMAS_DIR, producer_contracts
from interactions.lint import RULES, NotADomainFolder, lint_folder
from listning.cli import main

GL = "interactions/GetListingInteraction"
GL_XSD = f"{GL}/GetListingResponder_2.1.xsd"
GL_WSDL = f"{GL}/GetListingInteraction_2.1_RIVTABP21.wsdl"
DOMAIN_XSD = "schemas/supportprocess_logistics_carelisting_2.1.xsd"
GL_NS = "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2"


@dataclass(frozen=True)
class Break:
    """One seeded defect: text replacements (file, old, new) and renames (old path, new path)."""

    rule: str
    edits: tuple[tuple[str, str, str], ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    also: frozenset[str] = field(default_factory=frozenset)  # rules that may fire along with it


BREAKS = [
    Break("well-formed", edits=((GL_XSD, "</xs:schema>", ""),)),
    Break("folder-name", renames=((GL, "interactions/GetListingsInteraction"),)),
    Break("file-name", renames=((GL_WSDL, f"{GL}/GetListingInteraction_2.1.wsdl"),)),
    Break("core-namespace", edits=(
        ("schemas/itintegration_monitoring_1.0.xsd", "urn:riv:itintegration:monitoring:1",
         "urn:riv:itintegration:monitor:1"),
        ("interactions/PingForConfigurationInteraction/PingForConfigurationResponder_1.0.xsd",
         "urn:riv:itintegration:monitoring:1", "urn:riv:itintegration:monitor:1"),
    )),
    # A minor version in the namespace, consistently in both files: only the form is wrong.
    Break("responder-namespace", edits=(
        (GL_XSD, f"{GL_NS}\"", f"{GL_NS}.1\""),
        (GL_WSDL, f"{GL_NS}\"", f"{GL_NS}.1\""),
        (GL_WSDL, f"{GL_NS}:GetListing\"", f"{GL_NS}.1:GetListing\""),
    )),
    Break("root-elements", edits=(
        (GL_XSD, '<xs:element name="GetListingResponse" type="GetListingResponseType"/>', ""),
    )),
    Break("root-types", edits=(
        (GL_XSD, 'type="GetListingType"', 'type="GetListingRequestType"'),
        (GL_XSD, 'name="GetListingType"', 'name="GetListingRequestType"'),
    )),
    Break("venetian-blind", edits=((
        GL_XSD, '<xs:element name="GetListing" ',
        '<xs:element name="personId" type="core:IIType"/>\n  <xs:element name="GetListing" '),
    )),
    Break("wsdl-namespace", edits=(
        (GL_WSDL, "GetListing:2:rivtabp21", "GetListing:2.1:rivtabp21"),
    )),
    Break("types-namespace", edits=((
        GL_WSDL,
        '<xs:schema targetNamespace="urn:riv:supportprocess:logistics:carelisting:'
        'GetListing:2:rivtabp21">', "<xs:schema>"),
    )),
    Break("wsdl-names", edits=((GL_WSDL, "GetListingResponderService", "GetListingService"),)),
    Break("message-names", edits=((GL_WSDL, "GetListingRequest", "GetListingIn"),)),
    Break("body-part", edits=(
        (GL_WSDL, '<wsdl:part name="parameters" element="tjsr:GetListing"/>',
         '<wsdl:part name="body" element="tjsr:GetListing"/>'),
        (GL_WSDL, 'parts="parameters"', 'parts="body"'),
    )),
    Break("logical-address-header", edits=(
        (GL_WSDL, '<soap:header use="literal" message="tns:GetListingRequest" '
         'part="LogicalAddress"/>', ""),
    )),
    Break("soap-action", edits=(
        (GL_WSDL, f'soapAction="{GL_NS}:GetListing"', 'soapAction="GetListing"'),
    )),
    Break("one-operation", edits=((
        GL_WSDL, "</wsdl:portType>",
        '  <wsdl:operation name="GetListings">\n'
        '      <wsdl:input message="tns:GetListingRequest"/>\n'
        '    </wsdl:operation>\n  </wsdl:portType>'),
    ), also=frozenset({"wsdl-names"})),  # the second operation cannot be named GetListing too
    Break("soap-binding", edits=(
        (GL_WSDL, '<soap:binding style="document"', '<soap:binding style="rpc"'),
    )),
    # In a core component, to show that core components are checked too.
    Break("trailing-any", edits=(
        (DOMAIN_XSD, 'processContents="lax"', 'processContents="strict"'),
    )),
    Break("schema-version", edits=((GL_XSD, 'version="2.1"', 'version="2.0"'),)),
    Break("form-default", edits=((DOMAIN_XSD, 'elementFormDefault="qualified"',
                                  'elementFormDefault="unqualified"'),)),
    Break("national-characters", edits=((DOMAIN_XSD, '"GUARDIAN"', '"VÅRDNADSHAVARE"'),)),
    Break("import-resolves", edits=((GL_WSDL, "itintegration_registry_1.0.xsd",
                                     "itintegration_registry_1.1.xsd"),)),
    Break("xsd-compiles", edits=((GL_XSD, 'type="core:IIType"', 'type="core:IdType"'),)),
]


def copy_domain(dest: Path) -> Path:
    """Our contract files in this repository's layout: core components and producer contracts."""
    (dest / "schemas").mkdir(parents=True)
    for xsd in SCHEMAS_DIR.glob("*.xsd"):
        shutil.copy(xsd, dest / "schemas")
    for c in producer_contracts():
        shutil.copytree(c.folder, dest / "interactions" / c.folder.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def seed(dest: Path, brk: Break) -> None:
    for rel, old, new in brk.edits:
        path = dest / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, f"the seed no longer matches {rel}: {old!r}"  # keep the case honest
        path.write_text(text.replace(old, new, 1 if brk.rule == "trailing-any" else -1),
                        encoding="utf-8")
    for old, new in brk.renames:
        (dest / old).rename(dest / new)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["contract", "lint", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_rule_has_a_seeded_case() -> None:
    assert sorted(b.rule for b in BREAKS) == sorted(RULES)


def test_lint_passes_on_our_contract_files_through_the_installed_command() -> None:
    exe = Path(sys.executable).with_name("listning")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "listning"]
    proc = subprocess.run([*cmd, "contract", "lint"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no findings" in proc.stdout
    assert "[" not in proc.stdout  # no finding lines at all


def test_unmodified_copy_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, str(copy_domain(tmp_path / "domain")))
    assert code == 0, out
    assert "8 interaction folders and 5 core components" in out


@pytest.mark.parametrize("brk", BREAKS, ids=[b.rule for b in BREAKS])
def test_seeded_defect_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                brk: Break) -> None:
    domain = copy_domain(tmp_path / "domain")
    seed(domain, brk)
    code, out, _ = run_cli(capsys, str(domain))
    assert code == 1, out
    findings = [line for line in out.splitlines() if ": [" in line]
    fired = {line.split("[", 1)[1].split("]", 1)[0] for line in findings}
    assert brk.rule in fired, out
    assert fired <= {brk.rule, *brk.also}, f"unrelated findings:\n{out}"
    assert out.splitlines()[-1].startswith(f"lint: {len(findings)} finding")
    # FILE:LINE: [rule] message, with the file inside the checked folder
    path, line, _ = findings[0].split(":", 2)
    assert (Path(path) if Path(path).is_absolute() else Path.cwd() / path).is_relative_to(domain)
    assert line.isdigit()


def test_national_characters_in_comments_and_documentation_are_fine(tmp_path: Path) -> None:
    domain = copy_domain(tmp_path / "domain")
    seed(domain, Break("national-characters", edits=((
        GL_XSD, '<xs:complexType name="GetListingType">',
        '<!-- Vårdval: välj vårdcentral -->\n  <xs:complexType name="GetListingType">\n'
        '    <xs:annotation><xs:documentation>Invånarens listningar, även utomläns.'
        '</xs:documentation></xs:annotation>'),
    )))
    assert lint_folder(domain) == []


def test_finding_points_at_the_file_and_line(tmp_path: Path) -> None:
    domain = copy_domain(tmp_path / "domain")
    seed(domain, next(b for b in BREAKS if b.rule == "soap-action"))
    [finding] = lint_folder(domain)
    wsdl = domain / GL_WSDL
    line = next(i for i, text in enumerate(wsdl.read_text().splitlines(), 1)
                if 'soapAction="GetListing"' in text)
    assert (finding.rule, finding.file, finding.line) == ("soap-action", wsdl, line)
    assert f"{GL_NS}:GetListing" in finding.message  # says what it should be


def test_release_layout_is_recognised(tmp_path: Path) -> None:
    root = tmp_path / "release"
    copy_domain(tmp_path / "repo")
    (root / "schemas").mkdir(parents=True)
    (tmp_path / "repo" / "schemas").rename(root / "schemas" / "core_components")
    (tmp_path / "repo" / "interactions").rename(root / "schemas" / "interactions")
    # Still this repository's ../../schemas/ locations: every import must be reported unresolved.
    findings = lint_folder(root)
    assert findings
    assert {f.rule for f in findings} == {"import-resolves"}


@pytest.mark.parametrize("make", ["missing", "a-file", "empty", "no-interactions"])
def test_unusable_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              make: str) -> None:
    target = tmp_path / "x"
    if make == "a-file":
        target.write_text("not a folder")
    elif make != "missing":
        target.mkdir()
    if make == "no-interactions":
        (target / "schemas").mkdir()
        (target / "interactions").mkdir()
    code, out, err = run_cli(capsys, str(target))
    assert code == 2
    assert f"{target} is not a service-domain folder" in err
    assert out == ""
    with pytest.raises(NotADomainFolder):
        lint_folder(target)
