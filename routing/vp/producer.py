"""The call to the producer: one pooled keep-alive client session for the whole platform.

Timeouts: the contract's producer timeout for the whole exchange, 2 s to connect. At most one
retry, and only when the TCP connection could not be made (so the request was never sent); a
failure after that could mean the producer acted on it, and a second send would duplicate it.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from routing.vp.envelope import is_soap_envelope
from routing.vp.faults import VpError


@dataclass(slots=True)
class ProducerAnswer:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    round_trip_ms: float


class Upstream:
    def __init__(self, client_ssl: ssl.SSLContext | None, connect_timeout: float,
                 max_bytes: int) -> None:
        self.client_ssl = client_ssl
        self.connect_timeout = connect_timeout
        self.max_bytes = max_bytes
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # one per contract timeout

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bodies pass through as the producer sent them
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    async def call(self, url: str, body: bytes, headers: CIMultiDict[str],
                   timeout: float) -> ProducerAnswer:
        assert self.session is not None
        tls = url[:6].lower() == "https:"
        if tls and self.client_ssl is None:
            raise VpError("VP012", "the platform has no client certificate for HTTPS producers")
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = aiohttp.ClientTimeout(total=timeout, sock_connect=self.connect_timeout)
            self._timeouts[timeout] = limits
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                async with self.session.post(url, data=body, headers=headers, timeout=limits,
                                             ssl=self.client_ssl if tls else True,
                                             allow_redirects=False) as resp:
                    if (resp.content_length or 0) > self.max_bytes:
                        raise VpError("VP009", "the producer's answer is larger than the limit")
                    data = await resp.read()
                    answer = ProducerAnswer(resp.status, CIMultiDict(resp.headers), data,
                                            (time.perf_counter() - started) * 1000)
                break
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError,
                    aiohttp.ClientSSLError) as exc:
                raise VpError("VP009", f"TLS with the producer failed: {_reason(exc)}") from None
            except aiohttp.ClientConnectorError as exc:
                # not connected, so nothing was sent: the one case where a retry is safe
                if attempt == 2 or time.perf_counter() - started >= timeout:
                    raise VpError("VP009", f"cannot connect to the producer: "
                                           f"{_reason(exc)}") from None
            except TimeoutError:
                raise VpError("VP009", f"the producer did not answer within {timeout:g} s"
                              ) from None
            except aiohttp.ClientError as exc:
                raise VpError("VP009", f"error contacting the producer: {_reason(exc)}") from None
        if not answer.body.strip():
            raise VpError("VP009", f"the producer answered HTTP {answer.status} with no body")
        if not is_soap_envelope(answer.body):
            raise VpError("VP009", f"the producer answered HTTP {answer.status} without a SOAP "
                                   "envelope")
        return answer


def _reason(exc: BaseException) -> str:
    return type(exc).__name__ + (f" ({exc.os_error.strerror})"
                                 if getattr(exc, "os_error", None) is not None
                                 and getattr(exc.os_error, "strerror", None) else "")
