"""Checks on what goes into the catalogue, each failing with one readable sentence."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from interactions.identifiers import check_hsa_id, counties
from routing.snapshot import today_in_sweden

FOREVER = date(9999, 12, 31)
PROFILES = ("RIVTABP21", "RIVTABP20")


class CatalogueError(ValueError):
    """A refused catalogue change or an unknown entry; ``str()`` is one readable line."""


def hsa_id(value: str) -> str:
    v = (value or "").strip()
    problem = check_hsa_id(v)
    if problem:
        raise CatalogueError(f"{value!r} is not an HSA-id: {problem}")
    return v


def county_code(value: str) -> str:
    """A two-digit county code of the spec's list (the logical address of a region)."""
    v = (value or "").strip()
    if v not in counties():
        raise CatalogueError(f"{value!r} is not a county code; the counties are "
                             f"{', '.join(counties())}")
    return v


def region_name(code: str) -> str | None:
    found = counties().get(code)
    return found.region_name if found else None


def logical_address(value: str) -> str:
    v = (value or "").strip()
    if not v or len(v) > 128 or any(c.isspace() for c in v):
        raise CatalogueError(f"logical address {value!r} must be 1-128 characters without spaces")
    return v


def url(value: str) -> str:
    v = (value or "").strip()
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CatalogueError(f"producer URL {value!r} must be an http:// or https:// URL")
    return v


def profile(value: str) -> str:
    v = (value or "").strip().upper()
    if v not in PROFILES:
        raise CatalogueError(f"RIV profile {value!r} must be one of {', '.join(PROFILES)}")
    return v


def period(from_date: date | None, to_date: date | None) -> tuple[date, date]:
    """Inclusive local dates; the default is from today (Europe/Stockholm) for ever."""
    start = from_date or today_in_sweden()
    end = to_date or FOREVER
    if start > end:
        raise CatalogueError(f"the period {start}–{end} ends before it starts")
    return start, end


def overlaps(a: tuple[date, date], b: tuple[date, date]) -> bool:
    """Inclusive periods overlap when they share at least one day (touching is fine)."""
    return a[0] <= b[1] and b[0] <= a[1]


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CatalogueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
