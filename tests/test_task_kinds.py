"""Regression (D = 1 and D = 3) and multi-label (C = 5) tasks with every method.

Small synthetic task folders (read by the generic reader) hold one classification,
two regression and one multi-label task whose targets are functions of the words of
each text. Every registered method (computed at collection time) and two
compositions train a few steps in-process on all four at once; each run must give a
finite loss, every metric of every task in ``results.json`` and prediction files in
each kind's format. Then the kind-specific rules: the KL reduction of InfoMTL and
VIP-MTL falls back to the mean for float labels, UW's regression form, DTP's
regression and multi-label KPIs, and the probabilistic baselines' output widths.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import fake_batch
from infomtl.config import TrainConfig
from infomtl.data import load_task_folders
from infomtl.data.encoding import Batch
from infomtl.methods import LossTerms, Method, method_names, resolve_method
from infomtl.methods.weightings.common import task_kpi
from infomtl.modeling.heads import HeadOutput
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import TaskKind
from infomtl.training import train

CASES = [*method_names(), "infomtl+uw", "vipmtl+pcgrad"]
WORDS = ["red", "blue", "happy", "sad", "fast", "slow", "big", "small", "calm", "loud"]
ML_LABELS = ["colour", "mood", "speed", "size", "sound"]  # word index // 2
SIZES = {"train": 48, "val": 16, "test": 16}
D = 8

pytestmark = pytest.mark.usefixtures("one_thread")


def _targets(words: list[str]) -> dict[str, object]:
    count = {w: words.count(w) for w in WORDS}
    return {
        "topic": WORDS.index(words[0]) % 3,
        "score": float(count["happy"] - count["sad"]),
        "vad": [float(count["happy"] - count["sad"]), float(count["fast"] - count["slow"]),
                float(count["big"]) / 2.0],
        "tags": sorted({ML_LABELS[WORDS.index(w) // 2] for w in words}),
    }


@pytest.fixture(scope="module")
def task_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("kinds")
    specs = {
        "topic": None,
        "score": "kind: regression\n",
        "vad": "kind: regression\ntargets: [V, A, D]\n",
        "tags": "kind: multilabel\nlabels: [" + ", ".join(ML_LABELS) + "]\n",
    }
    rng = random.Random(0)
    rows = {
        split: [rng.choices(WORDS, k=rng.randint(3, 6)) for _ in range(n)]
        for split, n in SIZES.items()
    }
    for name, spec in specs.items():
        folder = root / name
        folder.mkdir()
        if spec:
            (folder / "task.yaml").write_text(spec, encoding="utf-8")
        key = "labels" if name == "tags" else "label"
        for split, split_rows in rows.items():
            lines = [json.dumps({"text": " ".join(w), key: _targets(w)[name]}) for w in split_rows]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [root / name for name in specs]


@pytest.fixture(scope="module")
def tasks(task_dirs):
    data = load_task_folders(task_dirs)
    kinds = [t.kind for t in data.tasks]
    assert kinds == [TaskKind.CLASSIFICATION, TaskKind.REGRESSION, TaskKind.REGRESSION,
                     TaskKind.MULTILABEL]
    assert [t.num_outputs for t in data.tasks] == [3, 1, 3, 5]
    return data.tasks


# --------------------------------------------------------------------------- #
# every method, end to end
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("case", CASES)
def test_every_method_trains_on_regression_and_multilabel_tasks(case, task_dirs, tasks, tmp_path) -> None:
    method, _, weighting = case.partition("+")
    config = TrainConfig(
        task_dirs=[str(p) for p in task_dirs], backbone="tiny", max_length=32, batch_size=16,
        epochs=1, max_steps=3, lr=1e-3, progress=False, output_dir=str(tmp_path / "run"),
        method=method, weighting=weighting or None,
    )
    result = train(config)
    run = result.run_dir
    for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert math.isfinite(record["train"]["loss"]), case
        assert math.isfinite(record["val"]["loss"]), case
    saved = json.loads((run / "results.json").read_text(encoding="utf-8"))
    expected = {
        "topic": {"macro_f1"},
        "score": {"pearson", "spearman"},
        "vad": {f"{m}_{t}" for m in ("pearson", "spearman") for t in "VAD"},
        "tags": {"macro_f1"},
    }
    for split in ("val", "test"):
        scores = saved[split]["tasks"]
        assert {name: set(values) for name, values in scores.items()} == expected, case
        assert all(math.isfinite(v) for values in scores.values() for v in values.values()), case
        assert math.isfinite(saved[split]["avg"]) and math.isfinite(saved[split]["loss"]), case
    folder = run / "predictions" / "test"
    n = SIZES["test"]
    topic = (folder / "topic.txt").read_text(encoding="utf-8").splitlines()
    assert len(topic) == n and all(0 <= int(v) < 3 for v in topic)
    score = (folder / "score.txt").read_text(encoding="utf-8").splitlines()
    assert len(score) == n and all("\t" not in v and math.isfinite(float(v)) for v in score)
    vad = (folder / "vad.txt").read_text(encoding="utf-8").splitlines()
    assert len(vad) == n
    assert all(len(v.split("\t")) == 3 and all(math.isfinite(float(x)) for x in v.split("\t"))
               for v in vad)
    tags = (folder / "tags.txt").read_text(encoding="utf-8").splitlines()
    assert len(tags) == n
    assert all(0 <= int(x) < 5 for v in tags if v for x in v.split(","))


# --------------------------------------------------------------------------- #
# the kind-specific rules
# --------------------------------------------------------------------------- #


def _batch(tasks, rows_per_task=(4, 3, 5, 4), seed: int = 0) -> tuple[torch.Tensor, Batch]:
    return fake_batch(tasks, rows_per_task, D, seed)

def _method(tasks, name: str, weighting: str | None = None, **args) -> Method:
    return Method(resolve_method(name, weighting, args), list(tasks), D, [48] * len(tasks))


@pytest.mark.parametrize("name", ["infomtl", "vipmtl"])
def test_kl_reduction_falls_back_to_the_mean_for_float_labels(name, tasks) -> None:
    method = _method(tasks, name, kl_reduction="class_balanced").train()
    h, batch = _batch(tasks)
    heads, extras = method.build_decoder()(h, batch.rows)
    terms = method.objective.loss_terms(ModelOutput(h, None, heads, extras), batch)
    for t, task in enumerate(tasks):
        o = heads[t]
        mu, logvar = getattr(o, "raw_mean", o.mean), getattr(o, "raw_logvar", o.logvar)
        kl_rows = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).mean(dim=1).detach()
        if task.kind is TaskKind.CLASSIFICATION:
            y = batch.labels[t]
            expected = sum(float(kl_rows[y == c].mean()) for c in y.unique().tolist())
        else:
            expected = float(kl_rows.mean())
        assert float(terms.components[("kl", t)]) == pytest.approx(expected, rel=1e-5), task.name
        assert math.isfinite(float(terms.task_losses[t].detach()))


def test_uw_uses_the_halved_gaussian_form_for_regression_tasks(tasks) -> None:
    method = _method(tasks, "uw")
    s = torch.tensor([0.0, 0.0, math.log(4.0), 0.5])
    with torch.no_grad():
        method.weighting.s.copy_(s)
    values = [2.0, 2.0, 3.0, 1.5]
    losses = {t: torch.tensor(v, requires_grad=True) for t, v in enumerate(values)}
    total, weights = method.weighting.combine(LossTerms(losses))
    c = [1.0, 0.5, 0.5, 1.0]  # classification, regression, regression, multi-label
    # the default balance is the mean over the 4 tasks of the rule's per-task terms
    expected = sum(c[t] * math.exp(-float(s[t])) * values[t] + 0.5 * float(s[t]) for t in range(4)) / 4
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)
    assert weights.tolist() == pytest.approx([c[t] * math.exp(-float(s[t])) / 4 for t in range(4)])
    total.backward()
    # ℓ = 2, s = 0: regression ½e^{−s}ℓ + ½s = 1.0 with dL/ds = (−½e^{−s}ℓ + ½) / 4 = −0.125
    assert float(method.weighting.s.grad[1]) == pytest.approx(-0.5 / 4)
    assert float(method.weighting.s.grad[0]) == pytest.approx(-1.5 / 4)


def test_dtp_kpis_for_regression_and_multilabel_tasks(tasks) -> None:
    gen = torch.Generator().manual_seed(1)
    score, vad, tags = tasks[1], tasks[2], tasks[3]
    y1 = torch.randn(6, 1, generator=gen)
    assert float(task_kpi(score, y1.clone(), y1)) == pytest.approx(1.0)  # perfect fit
    y3 = torch.randn(6, 3, generator=gen)
    assert float(task_kpi(vad, y3.mean(0, keepdim=True).expand(6, 3), y3)) == pytest.approx(0.0, abs=1e-5)
    half = y3.clone()
    half[:, 0] = y3[:, 0].mean()  # R² 0 on V, 1 on A and D
    assert float(task_kpi(vad, half, y3)) == pytest.approx(2 / 3, abs=1e-5)
    yl = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]])
    logits = torch.tensor([[5.0, -5, -5, -5, -5], [-5, 5, 5, -5, -5]])  # 8 of 10 cells right
    assert float(task_kpi(tags, logits, yl)) == pytest.approx(0.8)
    # the KPIs reach DTP through every objective; DTP updates κ̄ with them
    method = _method(tasks, "dtp").train()
    h, batch = _batch(tasks, seed=2)
    heads, _ = method.build_decoder()(h, batch.rows)
    terms = method.objective.loss_terms(ModelOutput(h, None, heads), batch)
    assert set(terms.kpis) == {0, 1, 2, 3}
    assert all(0.0 <= float(v) <= 1.0 for v in terms.kpis.values())
    terms.kpis = {0: torch.tensor(1.0), 1: torch.tensor(1.0), 2: torch.tensor(0.0), 3: torch.tensor(0.8)}
    total, _ = method.weighting.combine(terms)  # κ̄ = 0.9 · 0.5 + 0.1 · κ
    assert math.isfinite(float(total.detach()))
    assert method.weighting.kpi.tolist() == pytest.approx([0.55, 0.55, 0.45, 0.53])


@pytest.mark.parametrize(
    ("name", "args"),
    [("mt-vib", {"bottleneck_dim": 6}), ("hierarchical-mtl", {"latent_dim": 5}),
     ("vmtl", {"latent_dim": 7, "samples": 2}), ("infomtl", {}), ("vipmtl", {})],
)
def test_probabilistic_objectives_output_one_value_per_target(name, args, tasks) -> None:
    method = _method(tasks, name, **args)
    decoder = method.build_decoder()
    h, batch = _batch(tasks, seed=3)
    for training in (True, False):
        decoder.train(training)
        method.train(training)
        heads, extras = decoder(h, batch.rows)
        for t, task in enumerate(tasks):
            o: HeadOutput = heads[t]
            shape = (len(batch.rows[t]), task.num_outputs)
            assert o.mean.shape == shape, (name, task.name)
            assert (o.sample is not None) is training
            if training:
                assert o.sample.shape == shape
        terms = method.objective.loss_terms(ModelOutput(h, None, heads, extras), batch)
        assert all(np.isfinite(float(v.detach())) for v in terms.task_losses.values())
