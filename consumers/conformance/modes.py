"""The mock producer's answer modes and options (kept light: ``--help`` loads no SOAP stack)."""

from __future__ import annotations

import argparse
from pathlib import Path

MODE_HEADER = "x-mock-response"

# mode -> (what it does, resultCode for the contract responses or None)
MODES: dict[str, tuple[str, str | None]] = {
    "ok": ("resultCode OK with typical content (the default)", "OK"),
    "empty": ("resultCode OK and no content (no listings, units, counties ...)", "OK"),
    "info": ("resultCode INFO with a resultText to show the resident", "INFO"),
    "error": ("resultCode ERROR with a resultText", "ERROR"),
    "error-cap": ("ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT (unit full, no queue)",
                  "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT"),
    "error-changes": ("ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED (change limit reached)",
                      "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED"),
    "error-consent": ("ERROR_GUARDIAN_CONSENT_NEEDED", "ERROR_GUARDIAN_CONSENT_NEEDED"),
    "error-age": ("ERROR_AGE_LIMIT", "ERROR_AGE_LIMIT"),
    "fault": ("a SOAP 1.1 fault (soap:Server), HTTP 500: a technical error", None),
    "slow": ("the ok answer after --slow-seconds (for timeout and retry tests)", None),
    "invalid": ("a schema-invalid response (an unknown resultCode)", None),
    "html": ("an HTML error page with HTTP 500 (what a broken proxy returns)", None),
}

TEXTS = {
    "INFO": "Din listning är registrerad. Observera att vårdgarantin kan påverkas.",
    "ERROR": "Tekniskt fel hos regionen. Försök igen senare.",
    "ERROR_MAXIMUM_CITIZEN_REACHED_ON_CAREUNIT": "Vårdcentralen tar inte emot fler patienter "
                                                 "just nu. Du kan välja att ställa dig i kö.",
    "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED": "Du har redan bytt vårdcentral två gånger de "
                                             "senaste tolv månaderna.",
    "ERROR_GUARDIAN_CONSENT_NEEDED": "Båda vårdnadshavarna behöver godkänna valet.",
    "ERROR_AGE_LIMIT": "Du kan inte göra valet själv på grund av din ålder.",
}


def modes_help() -> str:
    lines = [f"The {MODE_HEADER} request header chooses the answer:"]
    lines += [f"  {name:<14} {what}" for name, (what, _) in MODES.items()]
    lines.append("PingForConfiguration answers its ok response to the resultCode modes.")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--county", required=True, help="the county code this mock answers for "
                   "(requests must carry it as LogicalAddress)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8600, help="0 picks a free port (printed)")
    p.add_argument("--cert", type=Path, help="server certificate (PEM): serve HTTPS")
    p.add_argument("--key", type=Path, help="its private key")
    p.add_argument("--ca", type=Path, help="require client certificates issued by this CA")
    p.add_argument("--slow-seconds", type=float, default=3.0, metavar="SECONDS",
                   help="delay of the slow mode")
