"""Files others can read: a run folder, its checkpoints, the feature cache and an export get the
permissions of an ordinary file under the umask, model files (written owner-only by
safetensors) included."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fakes import small_config
from infomtl.cli import main
from infomtl.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _modes(*folders: Path) -> dict[str, int]:
    """The permission bits of every file and folder under ``folders``, by path."""
    return {str(p): stat.S_IMODE(p.stat().st_mode) for f in folders for p in [f, *f.rglob("*")]}


def _expected(modes: dict[str, int], umask: int) -> dict[str, int]:
    return {p: (0o777 if os.path.isdir(p) else 0o666) & ~umask for p in modes}


def test_a_run_folder_has_the_umask_modes(tiny_run) -> None:
    umask = os.umask(0)
    os.umask(umask)
    modes = _modes(tiny_run)
    assert any(p.endswith("model.safetensors") for p in modes)
    assert modes == _expected(modes, umask)


def test_another_umask_is_respected_by_runs_the_cache_and_exports(tmp_path) -> None:
    run, cache, out = tmp_path / "run", tmp_path / "cache", tmp_path / "export"
    previous = os.umask(0o007)  # group may read and write, others nothing
    try:
        train(small_config(run, epochs=1, freeze_backbone=True, feature_cache=str(cache)))
        assert main(["export", str(run), str(out)]) == 0
    finally:
        os.umask(previous)
    modes = _modes(run, cache, out)
    assert sum(p.endswith(".safetensors") for p in modes) >= 6  # weights, training state, features, export
    assert modes == _expected(modes, 0o007)
