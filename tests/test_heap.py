"""infomtl.inference.heap: freed heap memory goes back to the system once it has grown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infomtl.inference.heap import HeapTrimmer

# Run in a fresh process, whose heap holds nothing else: 64 MiB in blocks under glibc's mmap
# threshold (so on the heap) are freed while small blocks between them stay alive. These are
# holes the heap cannot give back by itself, what the activations of many shapes leave behind.
SCENARIO = """
import ctypes, ctypes.util, json
from infomtl.inference.heap import HeapTrimmer, resident_bytes

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
trimmer = HeapTrimmer(growth_mib=8)
trimmer.after_batch()
seen = {"active": trimmer.active, "trims_at_start": trimmer.trims, "before": resident_bytes()}
blocks, pins = [], []
for _ in range(2048):
    blocks.append(libc.malloc(32 * 1024))
    ctypes.memset(blocks[-1], 1, 32 * 1024)
    pins.append(libc.malloc(256))
seen["grown"] = resident_bytes()
for block in blocks:
    libc.free(block)
seen["freed"] = resident_bytes()
trimmer.after_batch()
seen["trims"], seen["after"] = trimmer.trims, resident_bytes()
trimmer.after_batch()
seen["trims_again"] = trimmer.trims
print(json.dumps(seen))
"""


def test_memory_freed_on_the_heap_is_given_back_once_the_growth_passes_the_mark() -> None:
    if not HeapTrimmer().active:
        pytest.skip("no glibc malloc_trim or /proc/self/statm here")
    proc = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 2**20
    assert seen["active"] and seen["trims_at_start"] == 0  # nothing had grown
    assert seen["grown"] - seen["before"] > 48 * mib
    assert seen["freed"] > seen["grown"] - 16 * mib  # freed, still resident
    assert seen["trims"] == 1 and seen["after"] < seen["freed"] - 32 * mib  # given back
    assert seen["trims_again"] == 1  # the mark moved to the trimmed size


def test_a_trimmer_below_its_mark_does_nothing() -> None:
    trimmer = HeapTrimmer(growth_mib=10_000)
    trimmer.after_batch()
    assert trimmer.trims == 0
