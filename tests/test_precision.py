"""The bf16-on-a-CPU-without-bf16 warning (infomtl.precision)."""

from __future__ import annotations

from pathlib import Path

from infomtl.precision import cpu_has_bf16, slow_bf16_warning

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    assert cpu_has_bf16(_cpuinfo(tmp_path, AVX2)) is False
    assert cpu_has_bf16(_cpuinfo(tmp_path, SAPPHIRE)) is True
    assert cpu_has_bf16(_cpuinfo(tmp_path, ARM)) is True
    assert cpu_has_bf16(_cpuinfo(tmp_path, "processor\t: 0\n")) is None  # no flags line: unknown
    assert cpu_has_bf16(tmp_path / "missing") is None


def test_warned_only_for_bf16_on_a_cpu_without_it(tmp_path: Path) -> None:
    avx2, amx = _cpuinfo(tmp_path, AVX2), tmp_path / "amx"
    amx.write_text(SAPPHIRE)
    warning = slow_bf16_warning("bf16", "cpu", avx2)
    assert warning is not None and "--mixed-precision no" in warning and "\n" not in warning
    assert slow_bf16_warning("bf16", "cpu", amx) is None
    assert slow_bf16_warning("no", "cpu", avx2) is None
    assert slow_bf16_warning("bf16", "cuda", avx2) is None
    assert slow_bf16_warning("bf16", "cpu", tmp_path / "missing") is None
