"""The platform's settings (the CLI's options, or the Python API's arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interactions.xmlload import DEFAULT_MAX_BYTES
from routing.vp.identity import DEFAULT_CERT_HEADER


@dataclass
class PlatformConfig:
    catalogue: str  # http(s) URL of the catalogue, or a snapshot JSON file
    cert: Path | None = None  # the platform's own certificate: HTTPS listener and producer calls
    key: Path | None = None
    ca: Path | None = None  # client certificates (and producers) must chain to this CA
    host: str = "127.0.0.1"
    port: int | None = 0  # the mutual-TLS listener (0 = a free port; None = none)
    http_port: int | None = None  # plain HTTP behind a TLS-terminating proxy (None = none)
    ops_host: str = "127.0.0.1"
    ops_port: int = 0
    state_dir: Path | None = None  # where the last good snapshot is kept
    instance_name: str = "vp"
    trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs allowed to forward a certificate
    cert_header: str = DEFAULT_CERT_HEADER
    original_consumer_allowed: tuple[str, ...] = ()  # HSA-ids that may set the original consumer
    max_body: int = DEFAULT_MAX_BYTES
    default_timeout: float = 30.0  # producer timeout when the catalogue names none for a contract
    connect_timeout: float = 2.0
    catalogue_retry: float = 5.0  # seconds between attempts while not loaded from the catalogue
    # seconds between checks for a newly published snapshot (0 = only on /resetcache)
    catalogue_poll: float = 0.0
    # tamper-evident message log (routing.msglog), signed with ``key``; None = none
    message_log: Path | None = None
    message_log_sign_every: int = 1000  # records between signatures (busy platform)
    message_log_sign_interval: float = 60.0  # seconds between signatures (quiet platform)
