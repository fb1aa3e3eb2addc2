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
            return path
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``tweeteval/`` and ``affecteval/`` (``$INFOMTL_DATA``)."""
    root = _data_root()
    if root is None:
        pytest.skip("benchmark data not found: set INFOMTL_DATA to the folder holding tweeteval/")
    return root
