"""Every resultCode of the contract has its own clear Swedish heading on the e-service."""

from __future__ import annotations

from lxml import etree

import schemas
from consumers.eservice.texts import RESULTS, result_info

XS = "{http://www.w3.org/2001/XMLSchema}"


def _result_codes() -> list[str]:
    domain = sorted(schemas.DIR.glob("supportprocess_logistics_carelisting_2.*[0-9].xsd"))[-1]
    tree = etree.parse(str(domain))
    enum = tree.find(f".//{XS}simpleType[@name='ResultCodeEnum']")
    assert enum is not None, f"no ResultCodeEnum in {domain.name}"
    return [e.get("value") for e in enum.iter(f"{XS}enumeration")]


def test_every_result_code_has_its_own_heading() -> None:
    codes = _result_codes()
    assert "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED" in codes
    headings = {}
    for code in codes:
        assert code in RESULTS, f"{code} has no Swedish heading in consumers/eservice/texts.py"
        info = result_info(code)
        assert info.done == (code in ("OK", "INFO"))
        assert info.fallback, f"{code} has no fallback text"
        headings[code] = info.heading
    assert len(set(headings.values())) == len(headings), "one heading per code"


def test_an_unknown_code_reads_as_not_done() -> None:
    assert result_info("ERROR_SOMETHING_NEW").done is False
