"""The platform's own errors (VP001–VP015) and the SOAP 1.1 fault that carries them.

Code, fault side and meaning follow the national platform's table in
shared/spec/service-platform.md; the consumer sees ``faultstring`` "<CODE> [<instance>] <message>"
and an English explanation in ``detail/detailString``, always with HTTP 500 (except an
oversized body: HTTP 413, see ``too_large``).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

CLIENT, SERVER = "soap:Client", "soap:Server"

# code -> (faultcode, explanation shown in detail/detailString)
CODES: dict[str, tuple[str, str]] = {
    "VP001": (CLIENT, "The RIV-TA version of the call is missing or not supported."),
    "VP002": (CLIENT, "No usable client certificate: the platform could not read the caller's "
                      "HSA-id (subject SERIALNUMBER)."),
    "VP003": (CLIENT, "The logical address is missing in the SOAP header."),
    "VP004": (CLIENT, "No route is valid today for this logical address and service contract."),
    "VP005": (CLIENT, "The producer does not support the RIV-TA version of the call."),
    "VP006": (SERVER, "More than one route matches this logical address and service contract "
                      "(a catalogue misconfiguration)."),
    "VP007": (SERVER, "The consumer is not permitted to call this service contract at this "
                      "logical address."),
    "VP008": (SERVER, "The platform has no catalogue data (none loaded and no local copy)."),
    "VP009": (SERVER, "Error contacting the producer."),
    "VP010": (SERVER, "The route's producer address is empty."),
    "VP011": (CLIENT, "The caller is not on the allow-list for header-based identity."),
    "VP012": (SERVER, "The platform lacks a resource it needs for this call."),
    "VP013": (CLIENT, "The sender may not set x-rivta-original-serviceconsumer-hsaid."),
    "VP014": (SERVER, "Routing loop detected between chained platforms."),
    "VP015": (CLIENT, "The request cannot be read as a SOAP 1.1 envelope with a body element."),
}


class VpError(Exception):
    """Raised by a processor to end the call with the platform fault ``code``."""

    def __init__(self, code: str, message: str, *, http_status: int = 500) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


def too_large(limit: int) -> VpError:
    """An oversized body: VP015 (cannot be read), but HTTP 413 so a client does not retry."""
    return VpError("VP015", f"the request body is larger than the limit of {limit} bytes",
                   http_status=413)


def fault_body(error: VpError, instance: str) -> bytes:
    faultcode, detail = CODES[error.code]
    text = escape(f"{error.code} [{instance}] {error.message}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"<soap:Fault><faultcode>{faultcode}</faultcode><faultstring>{text}</faultstring>"
        f"<detail><detailString>{escape(detail)}</detailString></detail>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()
