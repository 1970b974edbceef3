"""What every Listning command and server shares, whichever folder it lives in: a database URL
as a user types it, and stopping a server on SIGINT/SIGTERM.

``routing/``, ``producers/`` and ``consumers/`` import this module and nothing else from
``listning/``; it imports only the standard library (and SQLAlchemy when it parses a URL), so
those folders stay independent of each other and of the command line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


log = logging.getLogger(__name__)

# glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD)
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 1024 * 1024


def return_large_blocks_to_the_os(threshold: int = LARGE_BLOCK) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more from its own mmap, so
    that freeing it gives the memory back to the system at once. For a server that parses
    request bodies of up to several MB (the producers and the platform, hostile bodies
    included). By default glibc raises this threshold each time such a block is freed (up to
    32 MB), after which big bodies come from the heap and stay resident: a producer's RSS rose
    by 60-110 MB over the first rounds of hostile input and swung by 70 MB from round to round;
    with a fixed 1 MB threshold it holds level (tests/security/test_hostile_input.py). Normal
    messages (a few kB) never reach the threshold, so they cost nothing more.

    Written by hand: no library sets malloc parameters, and the environment variable
    (``MALLOC_MMAP_THRESHOLD_``) must be set before the process starts — this works for a
    server however it is started. Call it before threads start. False where the C library is
    not glibc (the setting does not exist there), or when the operator has set
    ``MALLOC_MMAP_THRESHOLD_`` (their choice stands)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    import ctypes.util  # here, not at the top: every command imports this module (~10 ms)

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - present only in glibc
    except (OSError, AttributeError, TypeError):
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if not done:
        log.warning("could not set glibc's mmap threshold; large request bodies may stay "
                    "resident after they are freed")
    return done


# --- database URLs ------------------------------------------------------------------------------

def with_driver(url: URL) -> URL:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when that is what
    is installed (the project's ``postgres`` extra installs psycopg2-binary)."""
    if url.drivername != "postgresql":
        return url
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        return url.set(drivername="postgresql+psycopg2")
    return url


def engine_url(url: str | URL) -> URL:
    """A database URL from a user (``--db``, a region's ``database_url``, $LISTNING_TAK_DB) as
    SQLAlchemy should open it: every place that makes an engine from one goes through here, so
    a bare ``postgresql://user@host/db`` works everywhere. Raises SQLAlchemy's
    ``ArgumentError`` when ``url`` is not a URL."""
    from sqlalchemy.engine import make_url

    return with_driver(make_url(url))



def pg_reachable(url: str, timeout: int = 3) -> bool:
    """Whether a PostgreSQL server answers at ``url`` (benchmarks skip their PostgreSQL rows
    when it does not)."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(engine_url(url), connect_args={"connect_timeout": timeout})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # any failure to connect means: not reachable here
        return False

# --- stopping a server --------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_event() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets, on the running loop, instead of ending the
    process. Make it before starting to listen, so that a signal during start-up still ends
    in a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_until_stopped(cleanup: Callable[[], Awaitable[object]]) -> None:
    """Wait for SIGINT or SIGTERM, then ``await cleanup()`` (also when the wait is cancelled):
    the end of every ``... serve`` command whose server is already listening."""
    stop = stop_event()
    try:
        await stop.wait()
    finally:
        await cleanup()
