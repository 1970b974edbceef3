"""The real UpdateListing sender: region → service platform → region, over mutual TLS.

``PlatformSender`` is the ``producers.outbox.Sender`` a served region uses: it posts the
request model through the platform with consumers.client (presenting the region's own
certificate, so the platform identifies the region by the HSA-id in it) and returns the
response as a model again.

The outbox needs to know whether a failed send certainly did not reach the receiver
(``NotDelivered``: a region configured to refuse may then take the listing back) or might
have (any other exception: outcome unknown, the listing stays and the outbox retries).
Certainly not delivered:

- the platform could not be reached at all (no TCP connection, TLS handshake failed);
- a platform fault raised before it forwards the call (VP001–VP008, VP010–VP015), and VP009
  when the platform says it could not connect to the producer or TLS with it failed;
- the request could not even be built (our bug; nothing was sent).

Everything else — a timeout, a reset after sending, VP009 for a late or unreadable answer,
a producer's own SOAP fault — is unknown. The client itself does not retry (``retries=0``):
the outbox is the retry loop, with exponential back-off that survives restarts, and a
CreateListing waiting for the home region's answer must not sit through client back-offs.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from consumers.client import (
    ClientTimeout,
    InvalidRequest,
    ListingClient,
    SoapFault,
    TransportError,
    zeep_client,
)
from interactions.models import from_element, to_element
from interactions.validation import validate_element
from producers.outbox import NotDelivered

log = logging.getLogger(__name__)

# The correlation id of the call being handled (set by producers.spyne_services): an
# UpdateListing sent while answering a CreateListing carries the same id, so the platform's
# call log ties the two together. The outbox worker, outside any call, gets a new one.
current_correlation_id: ContextVar[str | None] = ContextVar("current_correlation_id",
                                                            default=None)

# Platform faults raised before the call is forwarded (service-platform.md, routing/vp/).
_BEFORE_FORWARDING = frozenset({f"VP{n:03d}" for n in range(1, 16)} - {"VP009"})
_VP009_NOT_SENT = ("cannot connect to the producer", "TLS with the producer failed")


def zeep_body(request: Any) -> dict[str, Any]:
    """The request model as zeep keyword arguments (extension elements in ``_value_1``)."""
    el = to_element(request)
    problems = validate_element(el)
    if problems:
        raise ValueError("the request does not follow the contract: "
                         + "; ".join(map(str, problems[:3])))
    contract = etree.QName(el).localname
    client = zeep_client(contract)
    value = client.get_element(el.tag).parse(el, client.wsdl.types)
    return {name: value[name] for name in value}


def _connection_never_made(exc: TransportError) -> bool:
    """True when requests failed before anything was sent (no TCP connection, no TLS)."""
    cause = exc.__context__
    if isinstance(cause, requests.exceptions.SSLError | requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError):
        text = repr(cause.args[0] if cause.args else cause)
        return "NewConnectionError" in text or "ConnectionRefused" in text
    return False


def classify(exc: Exception) -> Exception:
    """``NotDelivered`` for a failure that certainly did not reach the receiver, else ``exc``."""
    if isinstance(exc, InvalidRequest | ValueError):
        return NotDelivered(f"the request could not be built: {exc}")
    if isinstance(exc, SoapFault):
        code = exc.vp_code
        if code in _BEFORE_FORWARDING or (
                code == "VP009" and any(s in exc.faultstring for s in _VP009_NOT_SENT)):
            return NotDelivered(exc.faultstring)
        return exc
    if isinstance(exc, TransportError) and not isinstance(exc, ClientTimeout) \
            and _connection_never_made(exc):
        return NotDelivered(exc.message)
    if isinstance(exc, ClientTimeout) and isinstance(exc.__context__,
                                                     requests.exceptions.ConnectTimeout):
        return NotDelivered(exc.message)
    return exc


class PlatformSender:
    """``send(to_county, UpdateListing model) -> UpdateListingResponse model`` via the platform.

    One client (one keep-alive pool) for the sender's lifetime; requests' sessions are safe
    enough for the outbox worker and request threads sharing it (each call is one POST).
    """

    def __init__(self, platform_url: str, *, cert: Path | str, key: Path | str,
                 ca: Path | str, timeout: float = 10.0, connect_timeout: float = 2.0) -> None:
        self.client = ListingClient(platform_url, cert=cert, key=key, ca=ca, timeout=timeout,
                                    connect_timeout=connect_timeout, retries=0)

    def __call__(self, to_county: str, request: Any) -> Any:
        try:
            body = zeep_body(request)
            result = self.client.update_listing(
                to_county, correlation_id=current_correlation_id.get(), **body)
        except Exception as exc:  # sorted into "certainly not sent" and "outcome unknown"
            failure = classify(exc)
            log.info("UpdateListing to %s failed (%s): %s", to_county,
                     "not delivered" if isinstance(failure, NotDelivered) else "unknown",
                     str(failure)[:300])
            if failure is exc:
                raise
            raise failure from exc
        log.debug("UpdateListing to %s: %s, correlation id %s", to_county,
                  result.result_code, result.correlation_id)
        assert result.payload is not None  # the client always keeps the validated element
        return from_element(result.payload)

    def close(self) -> None:
        self.client.close()
