"""Shared fixtures: where the benchmark data lives, and small real slices of it.

The suite leaves the user's home folder alone: before anything runs, ``HOME``,
``XDG_CACHE_HOME``, ``MPLCONFIGDIR`` and ``HF_HOME`` point into a temporary folder
(subprocesses inherit them; ``HF_DATASETS_OFFLINE=1`` keeps datasets off the network), and
the session fails if anything under the real ``~/.cache/infomtl`` changed.

Inference runs in fp32 in this process whatever the CPU (:func:`fp32_cpu`): the tests compare
predictions with a run's fp32 ones, and ``precision="auto"`` would pick bf16 on a CPU with
bf16 instructions; ``tests/test_quantize.py`` tests that choice itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "infomtl"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (ns)."""
    if not folder.is_dir():
        return {}
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in folder.rglob("*") if f.is_file()}


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="infomtl-test-home-"))
    config._infomtl_cache_before = _snapshot(REAL_CACHE)  # type: ignore[attr-defined]
    os.environ["HOME"] = str(home)
    os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
    os.environ["MPLCONFIGDIR"] = str(home / ".config" / "matplotlib")
    # Hugging Face datasets: a cache of the suite's own, and never the network
    os.environ["HF_HOME"] = str(home / ".cache" / "huggingface")
    os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_infomtl_cache_before", None)
    if before is not None and _snapshot(REAL_CACHE) != before:
        print(f"\nerror: the test suite wrote into the user's cache folder {REAL_CACHE}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def fp32_cpu(tmp_path_factory) -> Iterator[None]:
    """``infomtl.precision`` reads the flags of an AVX2 CPU (no bf16 instructions) for the session."""
    cpuinfo = tmp_path_factory.mktemp("cpu") / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("infomtl.precision.CPUINFO", cpuinfo)
        yield


def _data_root() -> Path | None:
    env = os.environ.get("INFOMTL_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if (path / "tweeteval").is_dir():
            return path.resolve()  # tests run subprocesses from other folders
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``tweeteval/`` and ``affecteval/`` (``$INFOMTL_DATA``)."""
    root = _data_root()
    if root is None:
        pytest.skip("benchmark data not found: set INFOMTL_DATA to the folder holding tweeteval/")
    return root


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread, and ``OMP_NUM_THREADS=1`` so that a run's default ``--threads``
    (infomtl.threads.default_threads) is 1 too; both restored afterwards."""
    import torch

    before, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for tiny-model training: faster on a shared 2-core machine."""
    with _one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A 2-epoch EW run on the synthetic benchmark with the ``tiny`` backbone (trained once)."""
    from fakes import small_config
    from infomtl.training import train

    with _one_thread():
        out = tmp_path_factory.mktemp("tiny-run") / "run"
        return train(small_config(out, epochs=2, lr=1e-3)).run_dir
