"""Small builders for the request values the carelisting contracts share.

zeep takes nested dicts keyed by XSD element names; these keep callers from spelling OIDs and
code systems by hand (``person("191212121212")`` picks the personnummer or samordningsnummer
OID from the number itself).
"""

from __future__ import annotations

from interactions.identifiers import (
    COUNTY_OID,
    LISTING_TYPE_CODE_SYSTEM,
    LISTING_TYPE_PV,
    LISTING_TYPE_PV_NAME,
    personal_id_root,
)


def person(extension: str) -> dict[str, str]:
    """A personId ``IIType`` for a 12-digit personnummer or samordningsnummer."""
    return {"root": personal_id_root(extension), "extension": extension}


def county(code: str) -> dict[str, str]:
    """A county ``IIType`` (KV län) for a two-digit county code."""
    return {"root": COUNTY_OID, "extension": code}


def actor(extension: str, actor_type: str = "CITIZEN") -> dict[str, object]:
    """An ``ActorType``: who is acting (the resident themself, or a guardian, …)."""
    return {"actorId": person(extension), "actorType": actor_type}


def listing_type(
    code: str = LISTING_TYPE_PV,
    code_system: str = LISTING_TYPE_CODE_SYSTEM,
    display_name: str | None = LISTING_TYPE_PV_NAME,
) -> dict[str, str]:
    """A listing type ``CVType``; by default the national type PV (Primärvårdslistning)."""
    value = {"code": code, "codeSystem": code_system}
    if display_name is not None:
        value["displayName"] = display_name
    return value
