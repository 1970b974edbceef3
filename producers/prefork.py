"""``listning region serve --processes N``: one region's producer in N processes.

Why: the GIL lets one Python process use one core; the producer's thread pool only overlaps
database waits. N processes of one region use N cores. They can share the work only when the
database serialises them: PostgreSQL does (a resident's row lock, a unit's advisory lock,
``FOR UPDATE SKIP LOCKED`` for the outbox). SQLite has one writer at a time, so more processes
would only queue for its lock: a SQLite region is refused with N > 1.

How (a pre-fork server):

1. The parent checks what it can (files, configuration, TLS, the database URL), migrates the
   database once, binds the port (``--port 0``: a free one) and loads the serving stack, so
   the children share those pages.
2. It forks N children. Each opens its own connection pool, builds the region and listens on
   its own socket bound to the same address with ``SO_REUSEPORT`` (``ProducerServer(sock=
   ...)``): the kernel spreads new connections evenly over the processes. (One shared
   listening socket would not: an asyncio server accepts every waiting connection at once,
   so one process took most of a client's keep-alive connections.) Only child 0 runs the
   outbox worker and the population-feed worker (and takes back orphaned outbox leases at
   start). The parent keeps its own socket bound, not listening, to hold the port.
3. Once every child serves, the parent prints ``region <county> listening on <URL>`` (the
   line the single-process server prints) and supervises:
   - SIGINT/SIGTERM: passed on as SIGTERM; each child stops as the single-process server
     does (stops listening, lets running requests finish their transaction, lets the
     workers finish their pass); after ``GRACE_SECONDS`` what is left is killed. Exit 0.
   - A child that exits by itself (a crash, killed): the others are stopped the same way and
     the parent exits 1 (2 if it happened before every child served), for the service
     manager to restart the whole region — the workers are never left without their process.
   - The parent killed with SIGKILL: each child gets SIGTERM from the kernel
     (``PR_SET_PDEATHSIG``) and stops cleanly; no orphans.

The parent binds the first address ``--host`` resolves to (the single-process server binds
every address of a name such as ``localhost``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from producers.config import ConfigError, load_config, resolve_database_url

log = logging.getLogger("producers.serve")

GRACE_SECONDS = 90.0  # a child's own stop waits up to 30 s for requests, 60 s for a worker
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PreforkChild:
    """What ``serve_cli.serve`` needs to know when it is one of several processes."""

    index: int
    sock: socket.socket
    ready: Callable[[], None]

    @property
    def runs_workers(self) -> bool:
        return self.index == 0


class _StartupError(Exception):
    pass


def serve_processes(args: argparse.Namespace) -> int:
    """Run ``args.processes`` producer processes for one region; returns the exit status."""
    if args.processes < 1:
        print(f"error: --processes {args.processes}: give 1 or more", file=sys.stderr)
        return 2
    try:
        county, sock = _prepare(args)
    except _StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = f"https://{args.host}:{sock.getsockname()[1]}"
    # Block the signals the parent handles before forking: a child unblocks them at once, and
    # the parent takes them with sigtimedwait (no handler runs between fork and supervise).
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    children: dict[int, int] = {}
    gc.freeze()  # what the parent loaded is shared with the children, untouched by their GC
    for index in range(args.processes):
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(ready_r)
            os._exit(_child(args, index, sock, ready_w, parent))
        children[pid] = index
    os.close(ready_w)
    try:
        return _supervise(children, ready_r, args.processes, county, url)
    finally:
        sock.close()


def _prepare(args: argparse.Namespace) -> tuple[str, socket.socket]:
    """Check, migrate, bind; returns the county and the bound socket."""
    from producers.server import tls_context
    from producers.storage import open_database

    for option in ("cert", "key", "ca"):
        path = getattr(args, option)
        if not path.is_file():
            raise _StartupError(f"--{option} {path}: no such file")
    try:
        config = load_config(args.config)
        url = resolve_database_url(config, args.db, args.data_dir)
        tls_context(args.cert, args.key, args.ca)
    except (ConfigError, OSError, ssl.SSLError, ValueError) as exc:
        raise _StartupError(str(exc)) from None
    if url.startswith("sqlite"):
        raise _StartupError(
            f"--processes {args.processes} needs PostgreSQL: this region's database is SQLite, "
            "which lets one process write at a time, so more processes would only wait for "
            "each other. Serve a SQLite region with one process (leave out --processes), or "
            "give a PostgreSQL database with --db.")
    try:
        open_database(url).dispose()  # migrations, once, before any child opens it
    except Exception as exc:
        raise _StartupError(f"cannot open the database: {type(exc).__name__}: {exc}") from None
    # The serving stack, loaded once here and shared by the children (models take seconds).
    import producers.spyne_services  # noqa: F401
    from interactions.xsd_compile import compile_release
    compile_release()
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = _port_socket(family, kind, proto)
        sock.bind(address)  # port 0: the kernel picks one; the children bind the same
    except OSError as exc:
        raise _StartupError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    return config.county, sock


def _port_socket(family: int, kind: int, proto: int) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _child(args: argparse.Namespace, index: int, parent_sock: socket.socket, ready_w: int,
           parent: int) -> int:
    """One serving process (after fork): its exit status."""
    from producers.serve_cli import StartupError, serve

    try:
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before prctl took effect
            return 1
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        try:
            sock = _port_socket(parent_sock.family, parent_sock.type, parent_sock.proto)
            sock.bind(parent_sock.getsockname())
        except OSError as exc:
            raise StartupError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
        parent_sock.close()

        def ready() -> None:
            os.write(ready_w, bytes([index % 256]))
            os.close(ready_w)

        log.info("process %d of %d (pid %d) starting%s", index + 1, args.processes,
                 os.getpid(), " with the outbox and feed workers" if index == 0 else "")
        return asyncio.run(serve(args, PreforkChild(index, sock, ready)))
    except StartupError as exc:
        print(f"error: process {index + 1}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's orderly stop still applies
        pass


def _supervise(children: dict[int, int], ready_r: int, n: int, county: str, url: str) -> int:
    """Wait for the children to serve, then for a signal or a child's exit; stop them all."""
    os.set_blocking(ready_r, False)
    ready = 0
    status = 0
    stop_at: float | None = None  # when the children were told to stop

    def stop_all(why: str) -> None:
        nonlocal stop_at
        if stop_at is None:
            log.info("stopping %d process(es): %s", len(children), why)
            stop_at = time.monotonic()
            _signal(children, signal.SIGTERM)

    while children:
        got = signal.sigtimedwait(_SIGNALS, 0.5)
        if got is not None and got.si_signo in (signal.SIGINT, signal.SIGTERM):
            stop_all(f"signal {signal.Signals(got.si_signo).name}")
        if ready < n:
            with contextlib.suppress(BlockingIOError):
                ready += len(os.read(ready_r, 64))
            if ready >= n and stop_at is None:
                log.info("region %s: %d processes serving %s", county, n, url)
                print(f"region {county} listening on {url}", flush=True)
        for pid, code in _reap():
            index = children.pop(pid, None)
            if index is None:
                continue
            if stop_at is None:  # nobody asked it to stop
                log.error("process %d of %d (pid %d) ended with status %d; stopping the "
                          "region", index + 1, n, pid, code)
                status = 2 if ready < n else 1
                stop_all("a process ended")
            elif code != 0 and status == 0:
                log.warning("process %d of %d (pid %d) stopped with status %d", index + 1, n,
                            pid, code)
                status = 1
        if stop_at is not None and children and time.monotonic() - stop_at > GRACE_SECONDS:
            log.warning("%d process(es) did not stop within %.0f s; killing them",
                        len(children), GRACE_SECONDS)
            _signal(children, signal.SIGKILL)
            stop_at = time.monotonic()  # wait for them to be reaped
    os.close(ready_r)
    log.info("stopped")
    return status


def _signal(children: dict[int, int], sig: signal.Signals) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap() -> list[tuple[int, int]]:
    """Children that have ended: (pid, exit status; -N for a signal)."""
    done = []
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        done.append((pid, os.waitstatus_to_exitcode(wait_status)))
    return done
