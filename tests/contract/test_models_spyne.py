"""The compiled models inside a real spyne Application, called over WSGI in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from spyne import ServiceBase
from spyne.server.wsgi import WsgiApplication

from interactions.contracts import SOAP11_ENV, all_contracts, by_element
from interactions.models import from_element, message_class, to_element, type_class
from interactions.spyne_glue import (
    logical_address,
    riv_application,
    riv_operation,
    riv_wsgi_application,
)
from interactions.validation import read_envelope, validate_element
from interactions.xmlload import parse_bytes, parse_file

EXAMPLES = Path(__file__).resolve().parents[2] / "interactions" / "examples"
GLC_NS = "urn:riv:supportprocess:logistics:carelisting:GetListingCountyResponder:2"
COUNTY_OID = "1.2.752.129.2.2.1.18"

REQUEST = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}"
    xmlns:add="urn:riv:itintegration:registry:1" xmlns:urn="{GLC_NS}"
    xmlns:core="urn:riv:supportprocess:logistics:carelisting:2">
  <soapenv:Header><add:LogicalAddress>08</add:LogicalAddress></soapenv:Header>
  <soapenv:Body>
    <urn:GetListingCounty>
      <urn:actor>
        <core:actorId><core:root>1.2.752.129.2.1.3.1</core:root>
          <core:extension>198503142468</core:extension></core:actorId>
        <core:actorType>CITIZEN</core:actorType>
      </urn:actor>
      <urn:personId><core:root>1.2.752.129.2.1.3.1</core:root>
        <core:extension>198503142468</core:extension></urn:personId>
      <x:channel xmlns:x="urn:example:region-extras">1177</x:channel>
    </urn:GetListingCounty>
  </soapenv:Body>
</soapenv:Envelope>"""

seen: list[Any] = []


class GetListingCountyService(ServiceBase):
    @riv_operation("GetListingCounty")
    def GetListingCounty(ctx, request):  # spyne's rpc: no self, ctx first
        seen.append(request)
        if request.personId.extension == "000000000000":
            return "not a response"  # a producer bug
        II = type_class("IIType")
        return message_class("GetListingCountyResponse")(
            listingCounties=[II(root=COUNTY_OID, extension=logical_address(ctx))],
            resultCode="OK")


def call(app: Callable[..., Any], data: bytes) -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
        "PATH_INFO": "/", "QUERY_STRING": "", "SCRIPT_NAME": "", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "HTTP_SOAPACTION": f'"{GLC_NS}:GetListingCounty"',
    }
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


@pytest.fixture(scope="module")
def wsgi() -> WsgiApplication:
    return riv_wsgi_application([GetListingCountyService])


def fault(body: bytes) -> tuple[str, str]:
    payload = read_envelope(parse_bytes(body)).payload
    assert payload.tag == f"{{{SOAP11_ENV}}}Fault"
    return payload.findtext("faultcode"), payload.findtext("faultstring")


def test_riv_request_is_dispatched_on_the_body_qname_and_answered_schema_valid(wsgi) -> None:
    seen.clear()
    status, body = call(wsgi, REQUEST.encode())
    assert status.startswith("200")
    payload = read_envelope(parse_bytes(body)).payload
    # The contract's own root element, no spyne wrapper around or inside it.
    assert payload.tag == f"{{{GLC_NS}}}GetListingCountyResponse"
    assert validate_element(payload) == []
    resp = from_element(payload)
    assert resp.resultCode == "OK"
    assert [(c.root, c.extension) for c in resp.listingCounties] == [(COUNTY_OID, "08")]
    (request,) = seen
    assert type(request) is message_class("GetListingCounty")
    assert request.actor.actorType == "CITIZEN"
    assert [etree.QName(e).localname for e in request.any_] == ["channel"]


def test_missing_logical_address_is_a_client_fault(wsgi) -> None:
    data = REQUEST.replace("<add:LogicalAddress>08</add:LogicalAddress>", "").encode()
    status, body = call(wsgi, data)
    assert status.startswith("500")
    code, text = fault(body)
    assert code.endswith("Client.LogicalAddressMissing") and "LogicalAddress" in text


def test_schema_invalid_request_is_a_client_fault_naming_the_problem(wsgi) -> None:
    status, body = call(wsgi, REQUEST.replace("CITIZEN", "KING").encode())
    assert status.startswith("500")
    code, text = fault(body)
    assert code.endswith("Client.SchemaValidationError") and "KING" in text


def test_doctype_is_a_soap_fault_not_an_html_page(wsgi) -> None:
    data = REQUEST.replace('<?xml version="1.0" encoding="UTF-8"?>',
                           '<!DOCTYPE x [<!ENTITY a "b">]>').encode()
    status, body = call(wsgi, data)
    assert status.startswith("500")
    code, _text = fault(body)
    assert code.endswith("Client.XmlInputError.doctype")


def test_a_wrong_return_value_is_a_server_fault(wsgi) -> None:
    status, body = call(wsgi, REQUEST.replace("198503142468</core:extension></urn:personId>",
                                              "000000000000</core:extension></urn:personId>")
                        .encode())
    assert status.startswith("500")
    code, _text = fault(body)
    assert code.endswith("Server")


def canonical(el: etree._Element) -> str:
    return etree.canonicalize(el, strip_text=True, rewrite_prefixes=True)


def _echo_service(contract: str, response_path: Path) -> type[ServiceBase]:
    """A service answering ``contract`` with a stored example response, recording requests."""
    response = from_element(read_envelope(parse_file(response_path)).payload)

    def handler(ctx, request):
        seen.append((request, logical_address(ctx)))
        return response

    handler.__name__ = contract
    return type(f"{contract}Service", (ServiceBase,), {contract: riv_operation(contract)(handler)})


def test_every_example_request_through_one_application() -> None:
    """Every contract with examples, served by one Application: requests arrive intact."""
    services, responses = [], {}
    for folder in sorted(EXAMPLES.glob("*/valid")):
        contract = folder.parent.name
        answers = sorted(folder.glob("response-*.xml"))
        if contract in all_contracts() and answers:
            services.append(_echo_service(contract, answers[0]))
            responses[contract] = read_envelope(parse_file(answers[0])).payload
    assert services, "no examples yet"
    app = WsgiApplication(riv_application(services))
    sent = 0
    for path in sorted(EXAMPLES.glob("*/valid/request-*.xml")):
        contract = path.parent.parent.name
        if contract not in responses:
            continue
        env = read_envelope(parse_file(path))
        seen.clear()
        status, body = call(app, path.read_bytes())
        assert status.startswith("200"), (path, body[:500])
        (request, address), = seen
        assert address == env.logical_address
        assert canonical(to_element(request)) == canonical(env.payload), path
        out = read_envelope(parse_bytes(body)).payload
        assert by_element(out.tag) == (all_contracts()[contract], True)
        assert canonical(out) == canonical(responses[contract]), path
        sent += 1
    assert sent >= len(services)
    print(f"{sent} requests for {len(services)} contracts")


def test_body_over_the_size_cap_is_refused() -> None:
    small = riv_wsgi_application([GetListingCountyService], max_bytes=1024)
    padded = REQUEST.replace("<urn:personId>", "<!--" + "x" * 2000 + "--><urn:personId>")
    status, body = call(small, padded.encode())
    assert status.startswith("500")
    code, _text = fault(body)
    assert code.endswith("Client.RequestTooLong")
