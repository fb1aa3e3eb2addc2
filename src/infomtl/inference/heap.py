"""Giving freed heap memory back to the system during long inference.

A predictor pads each chunk to its own longest row, so a server meets batches of many
shapes; glibc's allocator keeps the memory of the freed activations in its arenas, and the
process grows with every new shape (MiniLM on tweets, batches of 1–32 random texts:
+180 MiB fp32 and +550 MiB bf16 after 300 batches, ``benchmarks/RESULTS.md``) although
nothing is alive. ``malloc_trim(0)`` returns those pages; it costs about 2 ms with a
MiniLM model loaded, so :class:`HeapTrimmer` calls it only when the resident size has grown
by :data:`GROWTH_MIB` since its last call, which bounds the growth at that. Elsewhere than on
glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

#: resident growth (MiB) since the last trim that triggers the next one
GROWTH_MIB = 48

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def resident_bytes() -> int | None:
    """This process's resident size from ``/proc/self/statm`` (Linux), or None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Call :meth:`after_batch` after each batch of predictions (module docstring)."""

    def __init__(self, growth_mib: float = GROWTH_MIB) -> None:
        self.growth = int(growth_mib * 2**20)
        self._trim = _libc_trim()
        self._mark = resident_bytes()
        #: how many times memory was given back
        self.trims = 0

    @property
    def active(self) -> bool:
        return self._trim is not None and self._mark is not None

    def after_batch(self) -> None:
        if not self.active:
            return
        rss = resident_bytes()
        if rss is None or self._mark is None or rss - self._mark < self.growth:
            return
        self._trim(0)
        self.trims += 1
        self._mark = resident_bytes()
