"""Whether ``--mixed-precision bf16`` helps on this CPU.

bf16 autocast is several times faster than fp32 on CPUs whose cores compute in bf16
(x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``); on others (e.g. AVX2-only x86)
oneDNN converts every operand and the same MiniLM step runs 5–6× *slower* than in fp32
(measured in benchmarks/RESULTS.md). The flags are read from ``/proc/cpuinfo``; where
that file does not exist the answer is unknown and nothing is said.

Inference (``infomtl predict`` / ``serve``, :func:`infomtl.load`) follows the same rule
by default (:func:`inference_precision`): bf16 autocast on a CPU with bf16 cores, fp32
elsewhere; ``--quantize int8`` is its other number format. This module imports no torch
(the command line's parser reads its settings).
"""

from __future__ import annotations

from pathlib import Path

#: CPU feature flags (``/proc/cpuinfo``) of cores that compute in bf16
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_has_bf16(cpuinfo: Path | None = None) -> bool | None:
    """True / False when ``cpuinfo`` (default: :data:`CPUINFO`) lists the CPU's flags (x86
    ``flags``, Arm ``Features``), None when it cannot be read."""
    try:
        text = (CPUINFO if cpuinfo is None else cpuinfo).read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & BF16_FLAGS) if flags else None


#: The ``precision`` settings of inference: ``auto`` (:func:`inference_precision`), or fixed.
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16")
#: The ``quantize`` settings of inference: none, or dynamic int8 of the encoder's Linear
#: layers (:mod:`infomtl.inference.quantize`).
QUANTIZE_MODES = ("none", "int8")


def inference_precision(precision: str, device_type: str, cpuinfo: Path | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: what inference computes in for ``precision`` on ``device_type``.

    ``auto`` is ``bf16`` on a CPU whose flags (``cpuinfo``, default ``/proc/cpuinfo``) name
    bf16 cores, ``fp32`` on any other CPU, on a CPU of unknown flags and on other devices;
    ``fp32`` and ``bf16`` are themselves."""
    if precision != "auto":
        return precision
    has = cpu_has_bf16(cpuinfo)
    return "bf16" if device_type == "cpu" and has else "fp32"


def slow_bf16_warning(mixed_precision: str, device_type: str, cpuinfo: Path | None = None) -> str | None:
    """The warning for bf16 autocast on a CPU without bf16 cores, else None."""
    if mixed_precision != "bf16" or device_type != "cpu" or cpu_has_bf16(cpuinfo) is not False:
        return None
    return ("--mixed-precision bf16 on a CPU without bf16 instructions (no avx512_bf16/amx_bf16 in "
            "/proc/cpuinfo): autocast emulates bf16 and runs several times slower than fp32; "
            "use --mixed-precision no")
