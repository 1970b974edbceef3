"""The servers give the memory of large request bodies back when they are done with them
(``listning.runtime.return_large_blocks_to_the_os``, set by the producer and the platform at
start). Checked in a child process with the C library's own malloc and free, as libxml2 uses
them for a parsed body: after one large body has been freed, glibc by default serves the next
ones from its heap and keeps them resident."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, ctypes.util, sys
from listning.runtime import return_large_blocks_to_the_os
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "set" and not return_large_blocks_to_the_os():
    sys.exit(3)

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmRSS"))

def body(n):  # a block written through, as a parser fills it
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    return p

start = rss_mib()
libc.free(body(8 << 20))  # one 8 MB body, freed
bodies, kept = [], []
for _ in range(20):  # then twenty 4 MB bodies at once, small objects made in between stay
    bodies.append(body(4 << 20))
    kept.append(body(4000))
peak = rss_mib()
for p in bodies:
    libc.free(p)
print(start, peak, rss_mib())
"""


def _run(mode: str) -> tuple[int, int, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          timeout=60)
    if done.returncode == 3:
        pytest.skip("not glibc: there is no mmap threshold to set")
    assert done.returncode == 0, done.stderr
    start, peak, end = map(int, done.stdout.split())
    assert peak - start >= 70, (start, peak)  # the bodies were resident while in use
    return start, peak, end


def test_large_bodies_are_given_back_once_freed() -> None:
    start, _, end = _run("set")
    assert end - start < 10, f"{end - start} MiB still resident after the bodies were freed"


def test_without_the_setting_they_would_stay() -> None:
    """The control: what the setting is for (glibc's default, as on the project's machines)."""
    start, _, end = _run("default")
    assert end - start >= 70, "glibc gave the memory back by itself: the setting is moot here"


def test_an_operators_own_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from listning.runtime import return_large_blocks_to_the_os

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4194304")
    assert return_large_blocks_to_the_os() is False  # not set: the environment's stands
