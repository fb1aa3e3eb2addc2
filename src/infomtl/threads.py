"""How many CPU threads a run gives torch's operators (``--threads``).

By default, what the machine can give this process without oversubscription: the CPUs
of its affinity mask (``taskset``, ``numactl``, a job scheduler's binding), capped by a
container's CPU quota (cgroup ``cpu.max``, or ``cpu.cfs_quota_us`` under cgroup v1)
and by ``$OMP_NUM_THREADS`` when it is set (``torchrun`` sets it to 1 per process).
More threads than that only make the threads wait for each other: on a 2-core machine
shared with another job, 2 threads can be many times slower than 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Where the CPU quota of this process's container is read (cgroup v2, then v1).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_quota(root: Path | None = None) -> int | None:
    """CPUs allowed by the cgroup CPU quota under ``root`` (default :data:`CGROUP_ROOT`),
    rounded up; None: no quota, or no cgroup."""
    root = CGROUP_ROOT if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        count = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(count, quota) if quota else count)


def default_threads() -> int:
    """The default of ``--threads``: :func:`available_cpus`, at most ``$OMP_NUM_THREADS``
    when that is a positive integer."""
    cpus = available_cpus()
    try:
        omp = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cpus
    return min(cpus, omp) if omp >= 1 else cpus


def busy_note(threads: int) -> str | None:
    """A note when other processes keep so many of the machine's CPUs busy that ``threads``
    threads oversubscribe them, naming a count that would not; None when they do not (or
    where the load is unknown).

    The busy CPUs are the 1-minute load average less one (this process), over the whole
    machine (``os.cpu_count()``). The default stays the same on a busy machine, so that
    a rerun computes the same numbers (the thread count changes float rounding); the
    note says what to pass instead.
    """
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows; no /proc/loadavg
        return None
    cpus = os.cpu_count() or 1
    others = max(0.0, load - 1.0)
    free = max(1, cpus - math.floor(others + 0.5))
    if threads <= free:
        return None
    return (f"note: other processes keep about {others:.1f} of this machine's {cpus} CPUs busy (load average "
            f"{load:.1f}); {threads} threads may run many times slower than --threads {free}")


@contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Within the block, torch's operators use ``threads`` threads (None:
    :func:`default_threads`); yields the number; the previous setting is restored after."""
    import torch  # local: the command line's parser stays light

    wanted = threads if threads is not None else default_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)
