"""Where a report reads from: a region's configuration and its database, opened read-only.

The database is found the way ``listning region serve`` finds it
(``producers.config.resolve_database_url``: ``--db``, the TOML's ``database_url``, SQLite in the
data directory): the region's TOML file from ``--config``, from the pilot's data directory
(``--data-dir DIR --region NN``: ``DIR/endpoints.json`` or ``DIR/regions/NN``, which stands for
the region's data directory), or for a shipped region from ``--region NN`` alone.

Reports never take the region's write lock: on SQLite they open the file read-only with a
deferred transaction (WAL readers do not block the region's writers); on PostgreSQL they read
in a ``REPEATABLE READ, READ ONLY`` transaction, so every part of one report sees the same
snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from interactions import identifiers as ids
from listning.runtime import engine_url
from producers.config import (
    REGIONS_DIR,
    ConfigError,
    RegionConfig,
    load_config,
    resolve_database_url,
    shipped_config,
)


class ReportError(Exception):
    """A problem the user can fix (unknown region, bad month, missing database): one line."""


def shown_url(url: str) -> str:
    """A database URL fit to print: never a password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _config_error(exc: ConfigError) -> ReportError:
    return ReportError(f"{exc.path}: " + "; ".join(exc.problems))


def shipped_regions() -> list[str]:
    return sorted(p.stem for p in REGIONS_DIR.glob("[0-9][0-9].toml"))


def _check_county(code: str) -> str:
    if not ids.is_county_code(code):
        raise ReportError(f"unknown region {code!r}: not a two-digit county code "
                          f"(01, 03, ... 25)")
    return code


def resolve(*, region: str | None = None, config: str | Path | None = None,
            db: str | None = None, data_dir: str | Path | None = None
            ) -> tuple[RegionConfig, str]:
    """The region's configuration and database URL, from the command-line choices; the URL
    as ``region serve`` finds it (``resolve_database_url``), the pilot's region directory
    standing in for its ``--data-dir``."""
    if data_dir is not None:
        if not region:
            raise ReportError("--data-dir needs --region NN (which of the pilot's regions)")
        code = _check_county(region)
        d = Path(data_dir)
        if not d.is_dir():
            raise ReportError(f"no pilot data directory at {d}")
        cfg_path: Path | None = Path(config) if config else None
        region_dir = d / "regions" / code
        endpoints = d / "endpoints.json"
        if endpoints.is_file():
            try:
                info = json.loads(endpoints.read_text(encoding="utf-8"))
                regions = info.get("regions", {})
            except (OSError, ValueError, AttributeError) as exc:
                raise ReportError(f"{endpoints}: cannot read it ({exc})") from None
            if code not in regions:
                raise ReportError(f"unknown region {code!r}: the pilot in {d} runs regions "
                                  f"{', '.join(sorted(regions)) or '(none)'}")
            cfg_path = cfg_path or Path(regions[code]["config"])
            region_dir = Path(regions[code].get("data_dir", region_dir))
        elif not region_dir.is_dir():
            present = sorted(p.name for p in (d / "regions").glob("[0-9][0-9]"))
            raise ReportError(f"unknown region {code!r}: no data for it in {d / 'regions'} "
                              f"(present: {', '.join(present) or 'none'})")
        try:
            cfg = load_config(cfg_path) if cfg_path else shipped_config(code)
        except ConfigError as exc:
            raise _config_error(exc) from None
        if cfg.county != code:
            raise ReportError(f"{cfg.source} is region {cfg.county}, not {code}")
        return cfg, resolve_database_url(cfg, db, region_dir)
    if config is not None:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise _config_error(exc) from None
        if region and region != cfg.county:
            raise ReportError(f"{config} is region {cfg.county}, not {region}")
        return cfg, resolve_database_url(cfg, db)
    if not region:
        raise ReportError("say which region: --region NN (a shipped region), --config FILE, "
                          "or --data-dir DIR --region NN for the pilot")
    code = _check_county(region)
    if code not in shipped_regions():
        raise ReportError(f"unknown region {code!r}: no configuration shipped for it "
                          f"(shipped: {', '.join(shipped_regions())}); give --config FILE")
    try:
        cfg = shipped_config(code)
    except ConfigError as exc:
        raise _config_error(exc) from None
    return cfg, resolve_database_url(cfg, db)


# --- read-only access ---------------------------------------------------------------------------

def read_engine(url: str) -> Engine:
    """An engine that reads without taking the region's write lock (see the module text)."""
    u = engine_url(url)
    if u.get_backend_name() == "sqlite":
        path = u.database or ""
        if not path or path == ":memory:":
            raise ReportError("a report needs the region's database file, not :memory:")
        p = Path(path)
        if not p.is_file():
            raise ReportError(f"no region database at {p} (has the region run? give --db URL)")
        uri = f"file:{quote(str(p.resolve()))}?mode=ro&uri=true"
        engine = create_engine(f"sqlite:///{uri}", connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no lock for writers

        return engine
    return create_engine(u, pool_pre_ping=True, pool_size=2, max_overflow=2).execution_options(
        isolation_level="REPEATABLE READ", postgresql_readonly=True)


@dataclass
class Source:
    """One region's configuration and a read-only view of its database."""

    config: RegionConfig
    url: str
    engine: Engine
    owns_engine: bool = True

    @property
    def county(self) -> str:
        return self.config.county

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read transaction: every query of a report sees the same data."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()

    def check_schema(self) -> None:
        try:
            tables = set(inspect(self.engine).get_table_names())
        except Exception as exc:
            raise ReportError(f"cannot open the region database {shown_url(self.url)}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        missing = {"listings", "home_records", "persons"} - tables
        if missing:
            raise ReportError(f"{shown_url(self.url)} is not a region database (no "
                              f"{', '.join(sorted(missing))} tables; run `listning region "
                              f"init-db`)")


def open_source(*, region: str | None = None, config: str | Path | None = None,
                db: str | None = None, data_dir: str | Path | None = None) -> Source:
    cfg, url = resolve(region=region, config=config, db=db, data_dir=data_dir)
    source = Source(cfg, url, read_engine(url))
    try:
        source.check_schema()
    except ReportError:
        source.close()
        raise
    return source


def source_for(config: RegionConfig, engine: Engine) -> Source:
    """A source on the region application's own engine (the operator port's sub-app)."""
    if engine.dialect.name == "sqlite":
        url = engine.url.render_as_string(hide_password=False)
        return Source(config, url, read_engine(url))
    return Source(config, engine.url.render_as_string(hide_password=False),
                  engine.execution_options(isolation_level="REPEATABLE READ",
                                           postgresql_readonly=True), owns_engine=False)
