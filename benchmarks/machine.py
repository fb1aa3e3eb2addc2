"""The machine under the benchmark: cores, CPU/GPU model, matmul peak, peak memory.

* :func:`physical_cores`: distinct (socket, core) pairs of ``/proc/cpuinfo`` among the
  CPUs this process may run on (hyper-threads count once), capped by a cgroup CPU
  quota (:func:`infomtl.threads.cpu_quota`); ``os.cpu_count()`` where ``/proc`` is not there.
* :func:`measure_peak`: the dense matmul peak in the training dtype, with the thread
  count already set: ``C = A @ B`` for square ``n × n`` matrices costs ``2n³`` FLOPs;
  after ``warmup`` untimed products the best of ``reps`` timed ones is the peak
  (best, not mean: the denominator of MFU should be what the machine can do).
* Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` (reset per method); on the
  CPU the process's peak resident set size ``VmHWM``, reset per method by writing ``5``
  to ``/proc/self/clear_refs`` after a garbage collection and ``malloc_trim`` (Linux
  ≥ 4.0). Where that reset is not possible the value is the process-wide maximum
  (``getrusage``), which only grows from method to method: :func:`reset_peak_memory`
  says which.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from infomtl.threads import cpu_quota


def physical_cores() -> int:
    """Physical cores this process may use (see the module doc)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cores: set[tuple[str, str]] = set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for block in text.strip().split("\n\n"):
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines())
        )
        if "processor" not in fields:
            continue
        if allowed is not None and int(fields["processor"]) not in allowed:
            continue
        cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
    count = len(cores) or (len(allowed) if allowed else os.cpu_count() or 1)
    quota = cpu_quota()
    return max(1, min(count, quota)) if quota else count


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device, threads: int) -> dict[str, object]:
    """The machine as a dict for the header and the JSON."""
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


@dataclass
class Peak:
    """Measured dense matmul peak: ``flops_per_s`` from the best of ``reps`` timed products."""

    flops_per_s: float
    size: int
    dtype: str
    reps: int

    def describe(self) -> str:
        return (f"{self.flops_per_s / 1e9:.1f} GFLOP/s ({self.dtype} torch.matmul {self.size}×{self.size}, "
                f"best of {self.reps} after warm-up)")


def measure_peak(dtype: torch.dtype, device: torch.device, size: int, reps: int = 5, warmup: int = 2) -> Peak:
    """``2n³ / t_best`` of ``torch.matmul`` on ``n × n`` matrices of ``dtype`` (see module doc)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(warmup):
        torch.matmul(a, b)
    best = math.inf
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    name = str(dtype).removeprefix("torch.").replace("float32", "fp32").replace("bfloat16", "bf16")
    return Peak(2 * size**3 / best, size, name, reps)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _malloc_trim() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def current_rss_mib() -> float | None:
    return _status_mib("VmRSS")


def _status_mib(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak-memory window; False where only a process-wide maximum exists."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return True
    _malloc_trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_mib("VmHWM") is not None


def peak_memory_mib(device: torch.device) -> float:
    """Peak since :func:`reset_peak_memory`: device allocations (GPU) or process RSS (CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _status_mib("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
