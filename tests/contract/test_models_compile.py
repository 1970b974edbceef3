"""The compiled message models: every element of the XSDs, with its occurrence and facets."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from lxml import etree
from spyne.model.complex import ComplexModelBase
from spyne.model.primitive import Boolean, DateTime, Integer32, Unicode

from interactions.contracts import (
    DOMAIN_EXT_NS,
    DOMAIN_NS,
    SCHEMAS_DIR,
    all_contracts,
    producer_contracts,
)
from interactions.models import (
    MessageError,
    UnknownModelError,
    from_element,
    message_class,
    to_element,
    type_class,
)
from interactions.validation import validate_element
from interactions.xsd_compile import compile_release

XS = "{http://www.w3.org/2001/XMLSchema}"
GLC_NS = "urn:riv:supportprocess:logistics:carelisting:GetListingCountyResponder:2"
GL_NS = "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2"


def field_names(cls: type) -> list[str]:
    return [f.attr for f in cls._riv_fields]


def xsd_sequence(xsd_path, type_name: str) -> list[str]:
    """The child names of a complex type, read straight from the XSD file with lxml."""
    doc = etree.parse(str(xsd_path))
    (ct,) = doc.getroot().findall(f"{XS}complexType[@name='{type_name}']")
    names = []
    for particle in ct.find(f"{XS}sequence"):
        if particle.tag == f"{XS}element":
            names.append(particle.get("name"))
        elif particle.tag == f"{XS}any":
            names.append("any_")
    return names


def ext_elements_for(type_name: str) -> list[str]:
    doc = etree.parse(str(SCHEMAS_DIR / "supportprocess_logistics_carelisting_2.1_ext.xsd"))
    return [el.get("name") for el in doc.getroot().findall(f"{XS}element")
            if (el.findtext(f"{XS}annotation/{XS}appinfo") or "").strip() == type_name]


@pytest.mark.parametrize("contract", sorted(all_contracts()), ids=str)
def test_every_contract_folder_has_request_and_response_classes(contract: str) -> None:
    c = all_contracts()[contract]
    for element, qname in ((c.name, c.request_qname), (f"{c.name}Response", c.response_qname)):
        cls = message_class(element)
        assert issubclass(cls, ComplexModelBase)
        assert cls._riv_qname == qname
        type_name = etree.parse(str(c.xsd)).getroot().find(
            f"{XS}element[@name='{element}']").get("type")
        # No element of the XSD is dropped and none is invented, in schema order.
        assert field_names(cls) == xsd_sequence(c.xsd, type_name)


def test_producer_contracts_include_ping_and_the_seven_domain_contracts() -> None:
    names = {c.name for c in producer_contracts()}
    assert "PingForConfiguration" in names and len(names) == 8
    for name in names:
        assert message_class(name) is not message_class(f"{name}Response")


def test_message_class_takes_a_full_qname_too() -> None:
    assert message_class(f"{{{GLC_NS}}}GetListingCounty") is message_class("GetListingCounty")


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(UnknownModelError, match="GetListingCountyResponse"):
        message_class("GetListingCountyRespons")
    with pytest.raises(UnknownModelError, match="IIType"):
        type_class("IIRype")


def test_domain_types_carry_their_2_0_elements_then_the_2_1_extensions_then_any() -> None:
    domain_xsd = SCHEMAS_DIR / "supportprocess_logistics_carelisting_2.1.xsd"
    for name in ("IIType", "CVType", "ActorType", "HealthcareFacilityType",
                 "HealthcarePersonnelType", "ListingHealthcareFacilityType"):
        own = [n for n in xsd_sequence(domain_xsd, name) if n != "any_"]
        assert field_names(type_class(name)) == [*own, *ext_elements_for(name), "any_"]
    facility = {f.attr: f for f in type_class("HealthcareFacilityType")._riv_fields}
    assert facility["queueLength"].qname == f"{{{DOMAIN_EXT_NS}}}queueLength"
    assert facility["estimatedWaitInQueue"].qname == f"{{{DOMAIN_EXT_NS}}}estimatedWaitInQueue"
    listing = {f.attr: f for f in type_class("ListingHealthcareFacilityType")._riv_fields}
    # The 2.0 element of the same local name stays in the domain namespace.
    assert listing["estimatedWaitInQueue"].qname == f"{{{DOMAIN_NS}}}estimatedWaitInQueue"
    assert listing["remainingChanges"].qname == f"{{{DOMAIN_EXT_NS}}}remainingChanges"


def test_occurrence_and_nillable_are_the_xsds_not_spynes_defaults() -> None:
    ti = message_class("CreateListing")._type_info
    assert ti["actor"].Attributes.min_occurs == 1
    assert ti["actor"].Attributes.nillable is False
    assert ti["healthcarePersonnel"].Attributes.min_occurs == 0
    listings = message_class("GetListingResponse")._type_info["listings"]
    assert listings.Attributes.max_occurs == float("inf")
    assert message_class("GetListingResponse")._type_info["resultCode"].Attributes.max_occurs == 1


def test_simple_types_and_facets() -> None:
    facility = type_class("HealthcareFacilityType")._type_info
    assert issubclass(facility["hasQueue"], Boolean)
    assert issubclass(facility["queueLength"], Integer32)
    hsa = message_class("CreateListing")._type_info["healthcareFacilityHSAId"]
    assert issubclass(hsa, Unicode)
    assert hsa.Attributes.max_len == 31
    assert hsa.Attributes.pattern == "[Ss][Ee]([0-9]{10}|[0-9]{12})-[A-Za-z0-9]+"
    actor_type = type_class("ActorType")._type_info["actorType"]
    assert "GUARDIAN" in actor_type.Attributes.values and len(actor_type.Attributes.values) == 6
    valid_from = type_class("ListingHealthcareFacilityType")._type_info["validFromDate"]
    assert issubclass(valid_from, DateTime)
    # An anonymous simple type (spyne's own XSD reader drops such elements).
    ping = message_class("PingForConfigurationResponse")._type_info["pingDateTime"]
    assert issubclass(ping, Unicode) and ping.Attributes.pattern == "[0-9]{14}"


def test_keyword_construction_lists_and_none() -> None:
    ii = type_class("IIType")(root="1.2.752.129.2.1.3.1", extension="191212121212")
    assert (ii.root, ii.extension, ii.any_) == ("1.2.752.129.2.1.3.1", "191212121212", [])
    resp = message_class("GetListingCountyResponse")(resultCode="OK")
    assert resp.listingCounties == [] and resp.resultText is None
    with pytest.raises(TypeError, match="extention"):
        type_class("IIType")(root="x", extention="y")  # a typo is not silently dropped


def test_compiled_once() -> None:
    assert compile_release() is compile_release()
    assert compile_release().seconds < 10


def test_to_element_writes_the_root_element_schema_valid() -> None:
    II = type_class("IIType")
    resp = message_class("GetListingCountyResponse")(
        listingCounties=[II(root="1.2.752.129.2.2.1.18", extension="01"),
                         II(root="1.2.752.129.2.2.1.18", extension="08")],
        resultCode="OK")
    el = to_element(resp)
    assert el.tag == f"{{{GLC_NS}}}GetListingCountyResponse"
    assert validate_element(el) == []
    assert [c.findtext(f"{{{DOMAIN_NS}}}extension") for c in el] == ["01", "08", None]


def test_datetimes_are_naive_whole_seconds_and_without_zone() -> None:
    CV, HF = type_class("CVType"), type_class("HealthcareFacilityType")
    listing = type_class("ListingHealthcareFacilityType")(
        validFromDate=dt.datetime(2024, 8, 15, 9, 30, 0, 123456),
        validToDate=dt.datetime(2025, 1, 1),
        listingType=CV(code="PV", codeSystem="1.2.752.129.5.1.27"),
        healthcareFacility=HF(id="SE2321000073-4D5F", name="VC", hasQueue=False,
                              supportsHealthcarePersonnel=True),
        isInQueue=False)
    el = to_element(message_class("GetListingResponse")(listings=[listing], resultCode="OK"))
    assert el.findtext(f".//{{{DOMAIN_NS}}}validFromDate") == "2024-08-15T09:30:00"
    assert el.findtext(f".//{{{DOMAIN_NS}}}validToDate") == "2025-01-01T00:00:00"
    assert validate_element(el) == []
    back = from_element(el).listings[0]
    assert back.validFromDate == dt.datetime(2024, 8, 15, 9, 30)
    assert back.validFromDate.tzinfo is None


def test_writing_refuses_what_the_schema_would_refuse() -> None:
    Resp = message_class("GetListingCountyResponse")
    with pytest.raises(ValueError, match="resultCode is required"):
        to_element(Resp())
    with pytest.raises(ValueError, match=r"'DONE'.*allowed: OK"):
        to_element(Resp(resultCode="DONE"))
    with pytest.raises(TypeError, match="listingCounties repeats"):
        to_element(Resp(resultCode="OK", listingCounties=type_class("IIType")(root="x")))
    with pytest.raises(TypeError, match="must be a IIType"):
        to_element(Resp(resultCode="OK", listingCounties=[type_class("CVType")(code="x")]))
    with pytest.raises(TypeError, match="message instance"):
        to_element(type_class("IIType")(root="x"))


def _get_listing_county_response(children: str) -> etree._Element:
    return etree.fromstring(
        f'<r:GetListingCountyResponse xmlns:r="{GLC_NS}" xmlns:c="{DOMAIN_NS}">'
        f"{children}</r:GetListingCountyResponse>")


def test_reading_matches_children_by_full_qname() -> None:
    # Right local name, other namespace: spyne would take it as resultText; it is wildcard
    # content (the domain namespace is ##other to the Responder schema).
    el = _get_listing_county_response(
        "<r:resultCode>OK</r:resultCode><c:resultText>x</c:resultText>")
    resp = from_element(el)
    assert resp.resultText is None
    assert [e.tag for e in resp.any_] == [f"{{{DOMAIN_NS}}}resultText"]
    # A misspelt element in the contract's own namespace is an error, not silently dropped.
    el = _get_listing_county_response("<r:resultCode>OK</r:resultCode><r:resultTxt>x</r:resultTxt>")
    with pytest.raises(MessageError, match="resultTxt is not allowed"):
        from_element(el)


def test_reading_reports_missing_required_and_bad_values() -> None:
    with pytest.raises(MessageError, match=r"required element .*resultCode is missing"):
        from_element(_get_listing_county_response("<r:resultText>x</r:resultText>"))
    bad_bool = etree.fromstring(
        f'<GetListingResponse xmlns="{GL_NS}" xmlns:c="{DOMAIN_NS}"><listings>'
        "<c:listingType><c:code>PV</c:code><c:codeSystem>1</c:codeSystem></c:listingType>"
        "<c:healthcareFacility><c:id>SE2321000073-4D5F</c:id><c:name>VC</c:name>"
        "<c:hasQueue>yes</c:hasQueue><c:supportsHealthcarePersonnel>true"
        "</c:supportsHealthcarePersonnel></c:healthcareFacility><c:isInQueue>false</c:isInQueue>"
        "</listings><resultCode>OK</resultCode></GetListingResponse>")
    with pytest.raises(MessageError, match="hasQueue: 'yes'"):
        from_element(bad_bool)
    with pytest.raises(MessageError, match=re.escape("no message model for element {urn:x}Nope")):
        from_element(etree.fromstring('<Nope xmlns="urn:x"/>'))


def test_message_errors_are_spyne_client_faults() -> None:
    with pytest.raises(MessageError) as info:
        from_element(_get_listing_county_response(""))
    assert info.value.faultcode == "Client.ValidationError"
    assert info.value.line == 1
