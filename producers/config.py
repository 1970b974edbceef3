"""A region listing system's configuration: one TOML file per region.

Everything regional lives here — units, staff, listing types and the rules that differ between
regions — so that the same code serves every region. ``load_config`` validates the whole file
and raises ``ConfigError`` naming the file and the key of every problem it finds.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interactions import identifiers as ids

TAKES_EFFECT = ("same_day", "next_day", "first_of_next_month")
HOME_UNREACHABLE = ("refuse", "outbox")
REGIONS_DIR = Path(__file__).resolve().parent / "regions"
DEFAULT_DATA_DIR = "region-data"


class ConfigError(ValueError):
    """One or more problems in a region file; ``problems`` holds "key: message" lines."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{self.path}: " + "; ".join(problems))

    def __str__(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path}: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class Staff:
    hsa_id: str
    name: str
    title: str | None = None


@dataclass(frozen=True)
class ListingType:
    code: str
    code_system: str
    display_name: str
    shared: bool  # offered to residents of other regions (by agreement)

    @property
    def national(self) -> bool:
        return self.code_system == ids.LISTING_TYPE_CODE_SYSTEM


@dataclass(frozen=True)
class Unit:
    hsa_id: str  # normalised (upper case)
    name: str
    municipality: str
    latitude: float
    longitude: float
    cap: int
    queue_allowed: bool
    fixed_doctor_contact: bool
    listing_types: tuple[str, ...]  # codes of the region's listing types offered here
    staff: tuple[Staff, ...] = ()
    days_per_queue_place: int = 14  # for estimatedWaitInQueue

    def staff_member(self, hsa_id: str) -> Staff | None:
        return next((s for s in self.staff if ids.same_hsa_id(s.hsa_id, hsa_id)), None)


@dataclass(frozen=True)
class Rules:
    changes_per_12_months: int = 2
    queue_at_cap: bool = True
    guardian_may_act_below_age: int = 13
    citizen_may_act_from_age: int = 13
    both_guardians_must_consent: bool = False
    guardian_consent_valid_days: int = 30
    takes_effect: str = "same_day"
    passive_listing: bool = False
    passive_listing_grace_days: int = 14  # wait this long for the old home region's handover
    home_unreachable: str = "refuse"


@dataclass(frozen=True)
class RegionConfig:
    county: str
    name: str
    hsa_id: str
    database_url: str  # [region] database_url as written; "" = SQLite in data_dir
    units: tuple[Unit, ...]
    listing_types: tuple[ListingType, ...]  # always includes the national PV first
    rules: Rules = field(default_factory=Rules)
    source: str = "<memory>"
    data_dir: str = DEFAULT_DATA_DIR  # [region] data_dir

    def unit(self, hsa_id: str | None) -> Unit | None:
        if not hsa_id:
            return None
        return next((u for u in self.units if ids.same_hsa_id(u.hsa_id, hsa_id)), None)

    def listing_type(self, code: str, code_system: str) -> ListingType | None:
        return next((t for t in self.listing_types
                     if t.code == code and t.code_system == code_system), None)


# --- loading -----------------------------------------------------------------------------------

_PV = ListingType(ids.LISTING_TYPE_PV, ids.LISTING_TYPE_CODE_SYSTEM, ids.LISTING_TYPE_PV_NAME, True)


class _Reader:
    """Reads typed values from the TOML tree, collecting problems instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(self, table: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...],
            default: Any = ..., *, required: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in table:
            if required or default is ...:
                self.problems.append(f"{full}: missing")
                return None
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML `true` must not pass as a number
        if isinstance(value, bool) and bool not in kinds:
            value = None
        if value is None or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.problems.append(f"{full}: expected {names}, got {table[key]!r}")
            return None if default is ... else default
        return value

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")


def default_database_url(county: str, data_dir: str | Path = DEFAULT_DATA_DIR) -> str:
    """The region's SQLite file in ``data_dir``: ``region-NN.sqlite``."""
    return f"sqlite:///{Path(data_dir) / f'region-{county}.sqlite'}"


def resolve_database_url(config: RegionConfig, db: str | None = None,
                         data_dir: str | Path | None = None) -> str:
    """The database every command opens for a region (serve, init-db, the reports), the first
    that is given: ``db`` from the command line (``--db``, ``--database-url``); the TOML's
    ``database_url``; SQLite ``region-NN.sqlite`` in ``data_dir`` from the command line
    (``--data-dir``), else in the TOML's ``data_dir`` (relative paths: from the working
    directory)."""
    if db:
        return db
    if config.database_url:
        return config.database_url
    return default_database_url(config.county, config.data_dir if data_dir is None else data_dir)


def _check_database_url(url: str) -> str | None:
    """Why ``url`` cannot be a region's database, or None (never echoes it: a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        backend = None
    if backend not in ("sqlite", "postgresql"):
        return ("expected a database URL: sqlite:///path/region.sqlite or "
                "postgresql://user@host/dbname")
    return None


def parse_config(data: dict[str, Any], source: str = "<memory>") -> RegionConfig:
    """Build a ``RegionConfig`` from an already-parsed TOML tree (raises ``ConfigError``)."""
    r = _Reader()
    region = r.get(data, "region", "", dict, required=True) or {}
    county = r.get(region, "county", "region", str, required=True)
    if county is not None and not ids.is_county_code(county):
        r.bad("region.county", f"{county!r} is not a two-digit county code "
                               f"({', '.join(ids.counties())})")
        county = None
    name = r.get(region, "name", "region", str, required=True)
    hsa_id = r.get(region, "hsa_id", "region", str, required=True)
    if hsa_id is not None and (why := ids.check_hsa_id(hsa_id)):
        r.bad("region.hsa_id", why)
    elif hsa_id and county and ids.county_of_hsa_id(hsa_id) != county:
        r.bad("region.hsa_id", f"{hsa_id} does not start with the HSA-id prefix of county "
                               f"{county} ({ids.region_hsa_prefix(county)}-)")
    data_dir = r.get(region, "data_dir", "region", str, DEFAULT_DATA_DIR)
    if data_dir is not None and not data_dir.strip():
        r.bad("region.data_dir", "empty; leave it out for the default "
                                 f"({DEFAULT_DATA_DIR!r})")
    url = r.get(region, "database_url", "region", str, "")
    if url and (why := _check_database_url(url)):
        r.bad("region.database_url", why)
    for key in sorted(set(region) - {"county", "name", "hsa_id", "data_dir", "database_url"}):
        r.bad(f"region.{key}", "unknown key")

    rules = _parse_rules(r, r.get(data, "rules", "", dict, {}))
    types = _parse_listing_types(r, r.get(data, "listing_types", "", list, []))
    type_codes = {t.code for t in types}
    units = _parse_units(r, r.get(data, "units", "", list, required=True) or [], type_codes)
    for key in sorted(set(data) - {"region", "rules", "listing_types", "units"}):
        r.bad(key, "unknown key")
    if r.problems:
        raise ConfigError(source, r.problems)
    return RegionConfig(county, name, ids.normalise_hsa_id(hsa_id), url, tuple(units),
                        tuple(types), rules, source, data_dir)


def load_config(path: str | Path) -> RegionConfig:
    """Read and validate a region TOML file (``ConfigError`` names the file and each key)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(p, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, [f"not valid TOML: {exc}"]) from None
    return parse_config(data, str(p))


def shipped_config(county: str) -> RegionConfig:
    """The configuration shipped in ``producers/regions/<county>.toml``."""
    return load_config(REGIONS_DIR / f"{county}.toml")


def _parse_rules(r: _Reader, t: dict[str, Any]) -> Rules:
    d = Rules()
    known = set(Rules.__dataclass_fields__)
    for key in sorted(set(t) - known):
        r.bad(f"rules.{key}", "unknown key")
    values: dict[str, Any] = {}
    for name in known:
        default = getattr(d, name)
        kind = type(default)
        values[name] = r.get(t, name, "rules", kind, default)
    for name in ("changes_per_12_months", "guardian_may_act_below_age",
                 "citizen_may_act_from_age", "passive_listing_grace_days",
                 "guardian_consent_valid_days"):
        if isinstance(values[name], int) and values[name] < 0:
            r.bad(f"rules.{name}", "must not be negative")
    if values["takes_effect"] not in TAKES_EFFECT:
        r.bad("rules.takes_effect", f"{values['takes_effect']!r} is not one of "
                                    f"{', '.join(TAKES_EFFECT)}")
    if values["home_unreachable"] not in HOME_UNREACHABLE:
        r.bad("rules.home_unreachable", f"{values['home_unreachable']!r} is not one of "
                                        f"{', '.join(HOME_UNREACHABLE)}")
    return Rules(**values)


def _parse_listing_types(r: _Reader, items: list[Any]) -> list[ListingType]:
    types = [_PV]
    for i, t in enumerate(items):
        path = f"listing_types[{i}]"
        if not isinstance(t, dict):
            r.bad(path, "expected a table")
            continue
        code = r.get(t, "code", path, str, required=True)
        system = r.get(t, "code_system", path, str, required=True)
        display = r.get(t, "display_name", path, str, required=True)
        shared = r.get(t, "shared", path, bool, False)
        for key in sorted(set(t) - {"code", "code_system", "display_name", "shared"}):
            r.bad(f"{path}.{key}", "unknown key")
        if system == ids.LISTING_TYPE_CODE_SYSTEM:
            r.bad(f"{path}.code_system", "the national code system holds only PV, which every "
                                         "region has; a regional type needs the region's own")
        elif code and any(x.code == code for x in types):
            r.bad(f"{path}.code", f"{code!r} is listed twice")
        elif code and system and display:
            types.append(ListingType(code, system, display, shared))
    return types


def _parse_units(r: _Reader, items: list[Any], type_codes: set[str]) -> list[Unit]:
    units: list[Unit] = []
    seen: set[str] = set()
    fields = {"hsa_id", "name", "municipality", "latitude", "longitude", "cap", "queue_allowed",
              "fixed_doctor_contact", "listing_types", "staff", "days_per_queue_place"}
    if not items:
        r.bad("units", "a region needs at least one unit")
    for i, u in enumerate(items):
        path = f"units[{i}]"
        if not isinstance(u, dict):
            r.bad(path, "expected a table")
            continue
        n = len(r.problems)
        hsa = r.get(u, "hsa_id", path, str, required=True)
        if hsa and (why := ids.check_hsa_id(hsa)):
            r.bad(f"{path}.hsa_id", why)
        elif hsa and ids.normalise_hsa_id(hsa) in seen:
            r.bad(f"{path}.hsa_id", f"{hsa} is used by two units")
        name = r.get(u, "name", path, str, required=True)
        muni = r.get(u, "municipality", path, str, required=True)
        if muni and muni not in ids.municipalities():
            r.bad(f"{path}.municipality", f"{muni!r} is not a municipality code")
        lat = r.get(u, "latitude", path, (float, int), required=True)
        lon = r.get(u, "longitude", path, (float, int), required=True)
        if isinstance(lat, int | float) and not 55 <= lat <= 69.1:
            r.bad(f"{path}.latitude", f"{lat} is not in Sweden")
        if isinstance(lon, int | float) and not 10.9 <= lon <= 24.2:
            r.bad(f"{path}.longitude", f"{lon} is not in Sweden")
        cap = r.get(u, "cap", path, int, required=True)
        if isinstance(cap, int) and cap < 1:
            r.bad(f"{path}.cap", "must be at least 1")
        queue = r.get(u, "queue_allowed", path, bool, False)
        fixed = r.get(u, "fixed_doctor_contact", path, bool, False)
        days = r.get(u, "days_per_queue_place", path, int, 14)
        lt = r.get(u, "listing_types", path, list, [ids.LISTING_TYPE_PV])
        for code in lt or []:
            if code not in type_codes:
                r.bad(f"{path}.listing_types", f"{code!r} is not one of the region's listing "
                                               f"types ({', '.join(sorted(type_codes))})")
        staff = _parse_staff(r, r.get(u, "staff", path, list, []), path)
        if staff and not fixed:
            r.bad(f"{path}.staff", "staff are listed but fixed_doctor_contact is false")
        for key in sorted(set(u) - fields):
            r.bad(f"{path}.{key}", "unknown key")
        if len(r.problems) == n:
            seen.add(ids.normalise_hsa_id(hsa))
            units.append(Unit(ids.normalise_hsa_id(hsa), name, muni, float(lat), float(lon), cap,
                              queue, fixed, tuple(lt), tuple(staff), days))
    return units


def _parse_staff(r: _Reader, items: list[Any], unit_path: str) -> list[Staff]:
    out: list[Staff] = []
    for j, s in enumerate(items):
        path = f"{unit_path}.staff[{j}]"
        if not isinstance(s, dict):
            r.bad(path, "expected a table")
            continue
        hsa = r.get(s, "hsa_id", path, str, required=True)
        if hsa and (why := ids.check_hsa_id(hsa)):
            r.bad(f"{path}.hsa_id", why)
        name = r.get(s, "name", path, str, required=True)
        title = r.get(s, "title", path, str, None)
        for key in sorted(set(s) - {"hsa_id", "name", "title"}):
            r.bad(f"{path}.{key}", "unknown key")
        if hsa and name:
            out.append(Staff(ids.normalise_hsa_id(hsa), name, title))
    return out
