"""Mechanism tests of the probabilistic baselines on the designed synthetic set of
:mod:`mechanisms` (precomputed features, the real Method / MultiTaskModel, seconds each):

* Hierarchical MTL: the task distances ``D_ts = ‖n_t − n_s‖₁`` put two copies of one task
  closest (de Freitas et al.: related tasks get similar noise levels).
* VMTL: the Gumbel-softmax mixing weights of the A_t prior put most weight on the copy;
  the mixing weights of the latent prior (each row's prior: the nearest rows of the other
  tasks) put most weight on the task whose inputs come from the same domain.
* MT-VIB: the KL of the bottleneck falls as β rises.
* VMTL and Hierarchical MTL learn at least as well as EW (mean validation score).

Each direction holds with a margin on every one of a few seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infomtl.methods.objectives.hmtl import task_distances
from mechanisms import SynthTask, TaskSpec, fit, make_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1, 2)

#: a task, its copy (same function, fresh rows), two unrelated classification tasks and a
#: regression task
COPY_SET = [
    TaskSpec("a"),
    TaskSpec("a_copy", copy_of=0),
    TaskSpec("b"),
    TaskSpec("c", classes=2),
    TaskSpec("r", kind="regression"),
]

#: VMTL's schedule scaled to these short runs (12 steps an epoch): the weight prior mixes
#: after 10 steps, the weight KL reaches full strength after 50
VMTL_SHORT = {"latent_dim": 32, "warmup_steps": 10, "anneal_steps": 50}


def with_domains(
    tasks: list[SynthTask], domains: list[int], shift: float, seed: int
) -> list[SynthTask]:
    """Move each task's inputs (training and validation) by the offset of its domain:
    domain 0 stays at N(0, I), domain d > 0 moves to N(o_d, I), o_d ~ N(0, shift² I)."""
    gen = torch.Generator().manual_seed(1000 + seed)
    dim = tasks[0].x.shape[1]
    offsets = torch.randn(max(domains) + 1, dim, generator=gen) * shift
    offsets[0] = 0.0
    for task, domain in zip(tasks, domains, strict=True):
        task.x = task.x + offsets[domain]
        task.x_val = task.x_val + offsets[domain]
    return tasks


def _others(matrix: np.ndarray, pair: tuple[int, int]) -> list[float]:
    rows, cols = np.triu_indices(len(matrix), 1)
    return [float(matrix[i, j]) for i, j in zip(rows, cols, strict=True) if (i, j) != pair]


@pytest.mark.parametrize("seed", SEEDS)
def test_hierarchical_mtl_puts_the_two_copies_closest(seed: int) -> None:
    tasks = make_tasks(COPY_SET, seed=seed)
    result = fit(tasks, "hierarchical-mtl", epochs=30, lr=1e-2, seed=seed)
    distances = task_distances(result.method.objective.noise_logvar())
    copy_pair = float(distances[0, 1])
    # observed: 0.54–0.65 of the next smallest distance
    assert copy_pair < 0.8 * min(_others(distances, (0, 1))), distances.round(2)


@pytest.mark.parametrize("seed", SEEDS)
def test_vmtl_weight_prior_mixes_mostly_the_copy(seed: int) -> None:
    tasks = make_tasks(COPY_SET, seed=seed)
    result = fit(tasks, "vmtl", VMTL_SHORT, epochs=30, lr=1e-2, seed=seed)
    mix = result.logs[-1]["vmtl"]["mix_a"]
    for task, copy in (("a", "a_copy"), ("a_copy", "a")):
        weights = dict(mix[task])
        on_copy = weights.pop(copy)
        # observed: at least 0.65 on the copy, at most 0.31 on another task
        assert on_copy > max(weights.values()) + 0.3, mix[task]
        assert on_copy > 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_vmtl_latent_prior_mixes_mostly_the_task_of_the_same_domain(seed: int) -> None:
    # all rows are drawn alike in COPY_SET, so nothing there tells the latent prior which
    # task is related; here "a" and "a_near" (another function) share a domain
    specs = [TaskSpec("a"), TaskSpec("a_near"), TaskSpec("b"), TaskSpec("c", classes=2),
             TaskSpec("r", kind="regression")]
    tasks = with_domains(make_tasks(specs, seed=seed), [0, 0, 1, 2, 3], shift=2.0, seed=seed)
    result = fit(tasks, "vmtl", VMTL_SHORT, epochs=30, lr=1e-2, seed=seed)
    mix = result.logs[-1]["vmtl"]["mix_z"]
    for task, near in (("a", "a_near"), ("a_near", "a")):
        weights = dict(mix[task])
        on_near = weights.pop(near)
        # observed: at least 0.69 on the same-domain task, at most 0.27 on another
        assert on_near > max(weights.values()) + 0.3, mix[task]


@pytest.mark.parametrize("seed", SEEDS)
def test_mtvib_kl_falls_as_beta_rises(seed: int) -> None:
    tasks = make_tasks(COPY_SET, seed=seed)
    kls = []
    for beta in (1e-4, 1e-2, 1.0):
        result = fit(tasks, "mt-vib", {"vib_beta": beta, "bottleneck_dim": 32}, seed=seed)
        kls.append(result.components[-1][("kl", None)])
    # observed: about 135, 22, 12
    assert kls[1] < 0.5 * kls[0] and kls[2] < 0.75 * kls[1], kls


@pytest.fixture(scope="module")
def ew_scores() -> list[float]:
    return [_mean_score("ew", None, seed) for seed in SEEDS]


def _mean_score(method: str, args: dict | None, seed: int) -> float:
    result = fit(make_tasks(COPY_SET, seed=seed), method, args, seed=seed)
    return float(np.mean(result.scores()))


@pytest.mark.parametrize(
    ("method", "args"),
    [("vmtl", {"latent_dim": 64, "warmup_steps": 10, "anneal_steps": 50}),
     ("hierarchical-mtl", None)],
)
def test_probabilistic_baselines_learn_at_least_as_well_as_ew(ew_scores, method, args) -> None:
    scores = [_mean_score(method, args, seed) for seed in SEEDS]
    # observed (mean over seeds): EW 81.9, VMTL 86.6, Hierarchical MTL 82.6
    assert np.mean(scores) >= np.mean(ew_scores) - 2.0, (scores, ew_scores)
