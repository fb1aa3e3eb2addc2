"""Robustness analysis: the perturbation's norm and support, FGM vs no perturbation,
ε = 0 against the saved scores, and the `infomtl analyze robustness` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infomtl.analysis.common import load_eval_split
from infomtl.analysis.robustness import perturbation, perturbed_outputs, robust_scores
from infomtl.artifacts.run_folder import load_run
from infomtl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.mark.parametrize("kind", ["random", "fgm"])
def test_perturbation_has_norm_eps_per_example_and_zero_on_padding(kind):
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(3, 5, 4, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    grad = torch.randn(3, 5, 4, generator=gen) if kind == "fgm" else None
    for eps in (0.5, 2.0):
        r = perturbation(kind, eps, emb, mask, grad=grad, generator=gen)
        assert r.shape == emb.shape
        assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((3,), eps), atol=1e-5)
        assert torch.all(r[mask == 0] == 0)
    if kind == "fgm":  # the direction is the gradient's on the real tokens
        r = perturbation(kind, 1.0, emb, mask, grad=grad)
        g = grad[1].flatten()
        assert torch.allclose(r[1].flatten(), g / g.norm(), atol=1e-6)


def test_perturbation_rejects_unknown_kind_and_fgm_without_grad():
    emb, mask = torch.zeros(1, 2, 3), torch.ones(1, 2)
    with pytest.raises(ValueError):
        perturbation("nope", 1.0, emb, mask)
    with pytest.raises(ValueError):
        perturbation("fgm", 1.0, emb, mask)


def test_fgm_increases_the_task_loss(tiny_run):
    run = load_run(tiny_run)
    splits = load_eval_split(run, "test")
    _, clean = perturbed_outputs(run, splits, "fgm", 0.0)
    _, fgm = perturbed_outputs(run, splits, "fgm", 1.0)
    assert np.mean(fgm) > np.mean(clean)
    for a, b in zip(fgm, clean, strict=True):
        assert a > b


def test_eps_zero_reproduces_saved_test_scores(tiny_run):
    run = load_run(tiny_run)
    saved = json.loads((tiny_run / "results.json").read_text())["test"]
    res = robust_scores(run, "test", strengths=(0.0, 1.0), kinds=("random", "fgm"))
    clean = res["kinds"]["random"]["0"]
    assert clean["avg"] == pytest.approx(saved["avg"], abs=1e-6)
    for task, score in saved["scores"].items():
        assert clean["scores"][task] == pytest.approx(score, abs=1e-6)
    assert res["kinds"]["fgm"]["0"] is clean
    assert set(res["kinds"]["fgm"]) == {"0", "1"}


def test_cli_robustness_writes_files(tiny_run, tmp_path, capsys):
    out = tmp_path / "an"
    code = main(["analyze", "robustness", str(tiny_run), "--reference", str(tiny_run),
                 "--strengths", "0,1", "--max-examples", "8", "--out", str(out)])
    assert code == 0
    for name in ("robustness.json", "robustness.csv", "robustness.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "robustness.json").read_text())
    assert set(data["results"][tiny_run.name]["kinds"]) == {"random", "fgm"}
    printed = capsys.readouterr().out
    assert "fgm perturbation" in printed and "ε=1" in printed


def test_cli_robustness_bad_run_dir(tmp_path, capsys):
    code = main(["analyze", "robustness", str(tmp_path / "missing")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
