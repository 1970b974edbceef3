"""The region's SOAP producer: one spyne operation per contract, each calling ``Region.handle``.

Built on interactions.spyne_glue, which parses requests with the hardened loader, validates
them against the release's XSDs, requires the LogicalAddress header and dispatches on the body
element's QName. What this module adds:

- a ``CallContext`` from the HTTP request (``call_context``): the caller is the consumer the
  platform vouches for (see ``caller_of``), with the correlation id the platform sent;
- the LogicalAddress must be this region's county code. A request for another county is a
  ``soap:Client`` fault ``Client.WrongLogicalAddress``, not an ERROR result: the contracts keep
  ``resultCode`` for business outcomes, and a misaddressed call is a routing (technical) error
  that repeating cannot fix — consumers such as consumers.client do not retry Client faults.
  PingForConfiguration ignores the address's value (it must still be there, as the glue
  requires for every RIV-TA BP 2.1 call);
- every response is validated with libxml2 against the XSDs before it leaves: a response that
  breaks the contract is our own bug, answered as a ``Server`` fault and logged at ERROR;
- any other exception from the business logic (a database outage, a bug) is a ``Server``
  fault with the correlation id to quote and nothing else (no personal data in the fault).

The front end (producers.server) puts what it learnt from TLS into the WSGI environ under
``ENV_PEER_HSA_ID``; spyne hands the environ to the operation as ``ctx.transport.req_env``.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import spyne.const
from spyne import ServiceBase
from spyne.error import Fault
from spyne.server.wsgi import WsgiApplication

from interactions.contracts import producer_contracts
from interactions.spyne_glue import (
    keep_written,
    logical_address,
    riv_operation,
    riv_wsgi_application,
    write_response,
)
from interactions.validation import validate_element
from interactions.xmlload import DEFAULT_MAX_BYTES
from producers.context import CallContext
from producers.region import Region
from producers.sender import current_correlation_id

log = logging.getLogger(__name__)

ENV_PEER_HSA_ID = "listning.peer_hsa_id"  # HSA-id in the TLS client certificate (SERIALNUMBER)
ENV_CORRELATION = "HTTP_X_SKLTP_CORRELATION_ID"
ENV_ORIGINAL_CONSUMER = "HTTP_X_RIVTA_ORIGINAL_SERVICECONSUMER_HSAID"
ENV_SENDER = "HTTP_X_VP_SENDER_ID"
PING = "PingForConfiguration"

# spyne runs a full gc.collect() when a request closes, at most once a second (to return file
# descriptors of uploads, which we never take). With the compiled models and SQLAlchemy in the
# heap one collection took 200-500 ms on the 2-core box: a latency spike on a request every
# second. Python's own generational collector is enough.
spyne.const.MIN_GC_INTERVAL = float("inf")
# spyne logs every Client fault raised in an operation with a traceback at ERROR: the caller's
# mistake, not ours (the fault tells the caller). ``answer`` logs a one-line INFO instead.
logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)


_NUMBER = re.compile(r"(?<![0-9])[0-9]{6,8}[-+]?[0-9]{4}(?![0-9])")


def redact(text: str) -> str:
    """Blank out anything shaped like a personnummer (10 or 12 digits): error texts from
    libxml2 or the database quote values from the message."""
    return _NUMBER.sub("<number>", text)


def caller_of(env: dict[str, Any]) -> tuple[str | None, str | None]:
    """(caller, original consumer) for a request that came in over mutual TLS.

    Only the platform's certificate gets this far (producers.server checks it), so the TLS
    peer is always the platform. The consumer behind it is what the platform tells us: its
    sender id (``x-vp-sender-id``, sent to plain-HTTP producers) or otherwise
    ``x-rivta-original-serviceconsumer-hsaid``, which the platform sets to the sender's HSA-id
    unless an allow-listed aggregator set it. The handlers need the consumer (UpdateListing
    reads the sending region's county from it), not the platform's own id, which is only the
    last resort.
    """
    # Capped at the access log's column width (an HSA-id is at most 31 characters).
    original = (env.get(ENV_ORIGINAL_CONSUMER) or "").strip()[:64] or None
    sender = (env.get(ENV_SENDER) or "").strip()[:64] or None
    return sender or original or env.get(ENV_PEER_HSA_ID), original


def call_context(ctx: Any, region: Region) -> CallContext:
    env = getattr(ctx.transport, "req_env", None) or {}
    caller, original = caller_of(env)
    correlation = (env.get(ENV_CORRELATION) or "").strip()[:64]  # the access log's width
    kwargs: dict[str, Any] = {"correlation_id": correlation} if correlation else {}
    return CallContext(caller_hsa_id=caller, original_consumer=original, now=region.clock(),
                       **kwargs)


def answer(region: Region, contract: str, ctx: Any, request: Any) -> Any:
    """Check the address, run the business logic, check the response against the XSDs."""
    address = logical_address(ctx)
    if contract != PING and address != region.county:
        log.info("%s for logical address %r refused: this is %s", contract, address,
                 region.county)
        raise Fault("Client.WrongLogicalAddress",
                    f"logical address {address!r} is not served here: this is the listing "
                    f"system of {region.config.name}, logical address {region.county}")
    call = call_context(ctx, region)
    token = current_correlation_id.set(call.correlation_id)
    try:
        response = region.handle(request, call)
    except Fault:
        raise
    except Exception as exc:
        # The traceback, and the error's text without numbers (SQL errors quote parameters).
        log.error("%s failed (correlation id %s): %s: %s\n%s", contract, call.correlation_id,
                  type(exc).__name__, redact(str(exc))[:2000],
                  "".join(traceback.format_tb(exc.__traceback__)))
        raise Fault("Server.TechnicalError",
                    f"technical error in {region.config.name}'s listing system; quote "
                    f"correlation id {call.correlation_id}") from None
    finally:
        current_correlation_id.reset(token)
    try:
        element = write_response(ctx, response)
        problems = [str(p) for p in validate_element(element)]
    except (TypeError, ValueError) as exc:
        problems = [f"cannot be written: {exc}"]
    if problems:
        # Our own bug: never send a response that breaks the contract. No body in the log.
        log.error("%s response does not follow the contract (correlation id %s): %s",
                  contract, call.correlation_id, redact("; ".join(problems[:3])))
        raise Fault("Server.InvalidResponse",
                    f"the producer built a {contract}Response that does not follow the "
                    f"contract; quote correlation id {call.correlation_id}")
    keep_written(ctx, response, element)  # sent as checked, not written a second time
    return response


def service_class(region: Region) -> type[ServiceBase]:
    """One spyne service with an operation for every contract the region produces."""
    members: dict[str, Any] = {}
    for contract in producer_contracts():
        name = contract.name

        def operation(ctx: Any, request: Any, _name: str = name) -> Any:
            return answer(region, _name, ctx, request)

        operation.__name__ = operation.__qualname__ = name
        members[name] = riv_operation(name)(operation)
    return type(f"Region{region.county}Producer", (ServiceBase,), members)


def wsgi_application(region: Region, *, max_bytes: int = DEFAULT_MAX_BYTES) -> WsgiApplication:
    """The region's producer as a WSGI callable (every path; producers.server routes)."""
    return riv_wsgi_application([service_class(region)], max_bytes=max_bytes,
                                name=f"Region{region.county}")
