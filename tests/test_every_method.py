"""Every method the CLI accepts trains a few steps on real TweetEval slices (tiny backbone).

The cases are computed at collection time from the registry, so a method registered
later is covered too, plus the single-task baselines and two compositions of InfoMTL.
Each case checks: a finite logged training loss, changed encoder parameters (unchanged
for a frozen backbone), changed head parameters, and a checkpoint that reloads and
reproduces the saved test scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from infomtl.artifacts.evaluation import evaluate_run
from infomtl.artifacts.run_folder import load_run
from infomtl.config import TrainConfig
from infomtl.methods import method_names
from infomtl.training import Trainer, train

TASKS = ["emotion", "irony", "stance"]
CASES = [*method_names(), "stl", "stl-cnn", "infomtl+uw", "infomtl+pcgrad"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(case: str, data_root: Path, output_dir: Path) -> TrainConfig:
    method, _, weighting = case.partition("+")
    return TrainConfig(
        benchmark="tweeteval", data_dir=str(data_root), tasks=TASKS, backbone="tiny",
        max_length=32, batch_size=16, epochs=2, max_steps=3, lr=1e-3,
        max_train_examples=48, max_eval_examples=24, method=method, weighting=weighting or None,
        progress=False, output_dir=str(output_dir),
    )


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("case", CASES)
def test_method_trains_changes_parameters_and_reloads(case, data_root, tmp_path, monkeypatch) -> None:
    initial: list[dict[str, torch.Tensor]] = []
    setup = Trainer.setup

    def recording_setup(self: Trainer, total_steps: int) -> None:
        initial.append(_snapshot(self.model))  # the weights right before the first step
        setup(self, total_steps)

    monkeypatch.setattr(Trainer, "setup", recording_setup)
    result = train(_config(case, data_root, tmp_path / "run"))

    single_task = case in ("stl", "stl-cnn")
    runs = [result.run_dir / t for t in TASKS] if single_task else [result.run_dir]
    assert len(initial) == len(runs)
    for run_dir, before in zip(runs, initial, strict=True):
        for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines():
            assert math.isfinite(json.loads(line)["train"]["loss"]), run_dir
        run = load_run(run_dir)
        after = run.model.state_dict()
        encoder = [k for k in after if k.startswith("encoder.")]
        decoder = [k for k in after if k.startswith("decoder.")]
        assert encoder and decoder
        changed = {k for k in encoder + decoder if not torch.equal(after[k], before[k])}
        if run.config.model.freeze_backbone:
            assert not changed & set(encoder), "a frozen backbone changed"
        else:
            assert changed & set(encoder), "the shared encoder did not change"
        assert changed & set(decoder), "no head parameter changed"
        heads = getattr(run.model.decoder, "heads", None)
        if heads is not None:  # every task's head learned something
            for t in range(len(heads)):
                prefix = f"decoder.heads.{t}."
                assert any(k.startswith(prefix) for k in changed), f"head {t} did not change"

    saved = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))["test"]
    scored = evaluate_run(result.run_dir, "test")
    assert set(scored["scores"]) == set(TASKS)
    assert scored["scores"] == pytest.approx(saved["scores"])
    assert scored["avg"] == pytest.approx(saved["avg"])


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for every fast-mode case (features are computed once)."""
    return tmp_path_factory.mktemp("features")


def _pooled(method: str) -> bool:
    from infomtl.methods.registry import OBJECTIVES, resolve_method

    return not OBJECTIVES[resolve_method(method, None, {}).objective].token_states


#: Methods whose heads read the pooled h (token-state heads run the frozen encoder instead).
FAST_CASES = [*filter(_pooled, method_names()), "infomtl+pcgrad"]


@pytest.mark.parametrize("case", FAST_CASES)
def test_method_trains_on_cached_features(case, data_root, tmp_path, feature_cache, monkeypatch) -> None:
    """Frozen-backbone fast mode: only the shared MLP and the heads train, the checkpoint
    holds no encoder weights, and scoring the reloaded run from the texts (encoder + MLP)
    reproduces the scores computed from the cached features during training."""
    initial: list[dict[str, torch.Tensor]] = []
    setup = Trainer.setup

    def recording_setup(self: Trainer, total_steps: int) -> None:
        initial.append(_snapshot(self.model))
        setup(self, total_steps)

    monkeypatch.setattr(Trainer, "setup", recording_setup)
    config = _config(case, data_root, tmp_path / "run")
    config.model.freeze_backbone, config.model.mlp_width, config.model.feature_cache = True, 24, str(feature_cache)
    result = train(config)

    from safetensors import safe_open

    with safe_open(str(result.run_dir / "checkpoint" / "model.safetensors"), "pt") as fh:
        assert not [k for k in fh.keys() if k.startswith("encoder.")]
    run = load_run(result.run_dir)
    after, before = run.model.state_dict(), initial[0]
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert not [k for k in changed if k.startswith("encoder.")], "the frozen encoder changed"
    assert [k for k in changed if k.startswith("shared_mlp.")], "the shared MLP did not change"
    assert [k for k in changed if k.startswith("decoder.")], "no head parameter changed"
    saved = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))["test"]
    scored = evaluate_run(result.run_dir, "test")
    assert scored["scores"] == pytest.approx(saved["scores"], abs=1e-6)
