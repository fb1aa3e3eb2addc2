"""Shared fixtures: where the benchmark data lives, and small real slices of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for tiny-model training: faster on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A 2-epoch EW run on the synthetic benchmark with the ``tiny`` backbone (trained once)."""
    import torch

    from fakes import small_config
    from infomtl.training import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("tiny-run") / "run"
        return train(small_config(out, epochs=2, lr=1e-3), echo=lambda *a: None).run_dir
    finally:
        torch.set_num_threads(before)
