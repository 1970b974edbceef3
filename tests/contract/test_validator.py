"""``listning validate``: every example gets its expected verdict and rule, through the library
and through the real command line; hostile input is refused without leaking anything."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from lxml import etree

from interactions.contracts import producer_contracts
from interactions.validation import read_envelope
from interactions.validator import RULES, validate_bytes, validate_file
from interactions.xmlload import parse_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "interactions" / "examples"
CONTRACTS = [c.name for c in producer_contracts()]


def _expected(contract: str) -> dict[str, dict[str, str]]:
    return tomllib.loads((EXAMPLES / contract / "expected.toml").read_text(encoding="utf-8"))


VALID = [p for c in CONTRACTS for p in sorted((EXAMPLES / c / "valid").glob("*.xml"))]
INVALID = [(p, _expected(c)[p.name]) for c in CONTRACTS
           for p in sorted((EXAMPLES / c / "invalid").glob("*.xml"))]


def _id(p: Path) -> str:
    return f"{p.parent.parent.name}/{p.name}"


def listning(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script (``python -m listning`` when not installed)."""
    exe = Path(sys.executable).with_name("listning")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "listning"]
    return subprocess.run([*cmd, "validate", *args], input=stdin, capture_output=True,
                          cwd=REPO, timeout=120, check=False,
                          text=stdin is None)


# --- the example set itself --------------------------------------------------------------

@pytest.mark.parametrize("contract", CONTRACTS)
def test_every_producer_contract_has_enough_examples(contract: str) -> None:
    folder = EXAMPLES / contract
    valid = [p.name for p in (folder / "valid").glob("*.xml")]
    assert len([n for n in valid if n.startswith("request-")]) >= 3
    assert len([n for n in valid if n.startswith("response-")]) >= 3
    assert all(n.startswith(("request-", "response-")) for n in valid), valid
    invalid = {p.name for p in (folder / "invalid").glob("*.xml")}
    expected = _expected(contract)
    assert len(invalid) >= 5
    assert set(expected) == invalid, "expected.toml must list exactly the invalid files"
    for name, e in expected.items():
        assert e["verdict"] in ("invalid", "unusable"), name
        assert e["rule"] in RULES, name
    whys = [e["why"] for e in expected.values()]
    assert len(set(whys)) == len(whys), "each invalid example is broken for its own reason"


# --- library --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", VALID, ids=_id)
def test_valid_example_is_valid(path: Path) -> None:
    report = validate_file(path)
    assert report.problems == []
    assert report.valid and report.verdict == "valid"
    assert report.contract == path.parent.parent.name
    assert report.message_kind == path.name.split("-")[0]
    assert report.envelope is True


@pytest.mark.parametrize("path", VALID, ids=_id)
def test_valid_example_as_bare_payload_is_valid(path: Path) -> None:
    payload = etree.tostring(read_envelope(parse_file(path)).payload)
    report = validate_bytes(payload, source="payload")
    assert report.problems == []
    assert report.envelope is False  # no LogicalAddress needed without an envelope
    assert report.contract == path.parent.parent.name


@pytest.mark.parametrize(("path", "expected"), INVALID, ids=[_id(p) for p, _ in INVALID])
def test_invalid_example_gets_its_verdict_and_rule(path: Path, expected: dict[str, str]) -> None:
    report = validate_file(path)
    assert report.verdict == expected["verdict"], report.problems
    assert expected["rule"] in report.rules, report.problems
    if report.usable:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        hit = next(p for p in report.problems if p.rule == expected["rule"])
        assert hit.line is not None and 1 <= hit.line <= lines, hit


def test_a_schema_problem_points_at_the_offending_line() -> None:
    path = EXAMPLES / "CreateListing" / "invalid" / "request-element-order.xml"
    lines = path.read_text(encoding="utf-8").splitlines()
    (problem,) = validate_file(path).problems
    assert lines[problem.line - 1].strip() == "<personId>"
    assert "personId" in problem.message and "actor" in problem.message


def _variant(path: str, old: str, new: str) -> bytes:
    text = (EXAMPLES / path).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1).encode()


def test_a_listing_ending_before_it_starts_is_invalid() -> None:
    data = _variant("GetListing/valid/response-info-ending.xml",
                    "<core:validToDate>2026-11-30T23:59:59",
                    "<core:validToDate>2021-12-31T00:00:00")
    assert validate_bytes(data).rules == {"date-order"}


def test_ping_takes_any_logical_address_but_domain_contracts_take_county_codes() -> None:
    old = "<add:LogicalAddress>08</add:LogicalAddress>"
    hsa = "<add:LogicalAddress>SE2321000073-LS08</add:LogicalAddress>"
    assert validate_bytes(_variant("PingForConfiguration/valid/request-create-listing.xml",
                                   old, hsa)).valid
    assert validate_bytes(_variant("CreateListing/valid/request-samordningsnummer.xml",
                                   old, hsa)).rules == {"logical-address"}


def test_an_unknown_root_element_is_named() -> None:
    report = validate_bytes(b"<order xmlns='urn:example'><id>1</id></order>")
    assert report.usable and report.rules == {"unknown-contract"}
    assert "order" in report.problems[0].message


@pytest.mark.parametrize(("data", "rule"), [
    (b"", "empty"), (b"   \n", "empty"), (b"<a><b></a>", "malformed"), (b"not xml", "malformed"),
])
def test_unusable_input(data: bytes, rule: str) -> None:
    report = validate_bytes(data)
    assert not report.usable and report.verdict == "unusable" and report.rules == {rule}


def test_size_cap() -> None:
    data = (EXAMPLES / "CreateListing/valid/request-citizen-home-region.xml").read_bytes()
    assert validate_bytes(data, max_bytes=len(data)).valid
    report = validate_bytes(data, max_bytes=len(data) - 1)
    assert report.verdict == "unusable" and report.rules == {"too-large"}


def _xxe(secret: Path, encoding: str = "utf-8") -> bytes:
    text = (EXAMPLES / "GetListing/valid/request-citizen.xml").read_text(encoding="utf-8")
    head, rest = text.split("<soap:Envelope", 1)
    head = head.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
    dtd = f'<!DOCTYPE soap:Envelope [<!ENTITY s SYSTEM "{secret.as_uri()}">]>\n'
    rest = rest.replace("<core:extension>198503142468", "<core:extension>&s;", 1)
    return (head + dtd + "<soap:Envelope" + rest).encode(encoding)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text("TOPSECRET-4f1c9a\n")
    return p


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_xxe_is_unusable_and_never_read(secret: Path, encoding: str) -> None:
    report = validate_bytes(_xxe(secret, encoding))
    assert report.verdict == "unusable" and report.rules == {"doctype"}
    assert "TOPSECRET" not in json.dumps(report.to_dict())


def test_billion_laughs_is_refused_at_once() -> None:
    path = EXAMPLES / "GetAvailableHealthcarePersonnel/invalid/request-billion-laughs.xml"
    start = time.perf_counter()
    report = validate_file(path)
    assert report.rules == {"doctype"} and not report.usable
    assert time.perf_counter() - start < 1.0


def test_thousands_of_messages_validate_quickly() -> None:
    messages = [p.read_bytes() for p in VALID]
    rounds = 2000 // len(messages) + 1
    start = time.perf_counter()
    reports = [validate_bytes(m) for _ in range(rounds) for m in messages]
    elapsed = time.perf_counter() - start
    assert all(r.valid for r in reports)
    assert elapsed < 5.0, f"{len(reports)} messages took {elapsed:.1f} s"


# --- the real command line ------------------------------------------------------------------

def test_cli_all_valid_examples_exit_0() -> None:
    result = listning(*[str(p) for p in VALID])
    assert result.returncode == 0, result.stdout + result.stderr
    for p in VALID:
        assert f"{p}: valid ({p.parent.parent.name} " in result.stdout
    assert f"{len(VALID)} files: {len(VALID)} valid, 0 invalid, 0 unusable" in result.stdout


def test_cli_json_reports_every_invalid_example(secret: Path) -> None:
    result = listning("--json", *[str(p) for p, _ in INVALID])
    assert result.returncode == 2  # some examples are unusable
    reports = json.loads(result.stdout)
    assert len(reports) == len(INVALID)
    for report, (path, expected) in zip(reports, INVALID, strict=True):
        assert set(report) == {"source", "verdict", "usable", "valid", "contract", "kind",
                               "envelope", "problems"}
        assert report["source"] == str(path)
        assert report["verdict"] == expected["verdict"], report
        assert report["valid"] is False and report["usable"] == (expected["verdict"] == "invalid")
        assert expected["rule"] in {p["rule"] for p in report["problems"]}, report
        for p in report["problems"]:
            assert set(p) == {"rule", "line", "message"}
            assert p["line"] is None or isinstance(p["line"], int)
    hostname = Path("/etc/hostname")
    if hostname.is_file() and len(hostname.read_text().strip()) >= 8:
        # the XXE examples point at /etc/hostname: its content must never come back
        assert hostname.read_text().strip() not in result.stdout + result.stderr


def test_cli_readable_lines_name_file_line_and_rule() -> None:
    result = listning(*[str(p) for p, _ in INVALID])
    assert result.returncode == 2
    out = result.stdout
    for path, expected in INVALID:
        if expected["verdict"] == "unusable":
            assert f"{path}: unusable" in out
            assert f"[{expected['rule']}]" in out
        else:
            pattern = rf"^{re.escape(str(path))}:\d+: \[{re.escape(expected['rule'])}\] \S"
            assert re.search(pattern, out, re.MULTILINE), (path, expected)
            assert re.search(rf"^{re.escape(str(path))}: invalid \(", out, re.MULTILINE)
    # problem messages never repeat a personal identity number
    assert "191212121213" not in out and "198503142469" not in out


def test_cli_exit_1_when_invalid_but_usable_and_reads_standard_input() -> None:
    usable = [str(p) for p, e in INVALID if e["verdict"] == "invalid"][:6]
    result = listning("-", *usable, stdin=VALID[0].read_bytes())
    assert result.returncode == 1
    assert b"<stdin>: valid" in result.stdout
    assert b"7 files: 1 valid, 6 invalid, 0 unusable" in result.stdout


def test_cli_exit_2_for_missing_file_and_size_cap(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    result = listning("--max-bytes", "300", str(VALID[0]), str(missing))
    assert result.returncode == 2
    assert f"{VALID[0]}: [too-large]" in result.stdout
    assert f"{missing}: [unreadable] no such file" in result.stdout


def test_cli_hostile_input_is_unusable_and_leaks_nothing(tmp_path: Path, secret: Path) -> None:
    xxe = tmp_path / "xxe.xml"
    xxe.write_bytes(_xxe(secret))
    xxe16 = tmp_path / "xxe16.xml"
    xxe16.write_bytes(_xxe(secret, "utf-16"))
    laughs = EXAMPLES / "GetAvailableHealthcarePersonnel/invalid/request-billion-laughs.xml"
    result = listning(str(xxe), str(xxe16), str(laughs))
    assert result.returncode == 2
    assert "TOPSECRET" not in result.stdout + result.stderr
    for p in (xxe, xxe16, laughs):
        assert f"{p}: unusable" in result.stdout
    assert result.stdout.count("[doctype]") == 3
