"""Robustness to perturbations of the word embeddings at test time.

A forward hook on the encoder's word-embedding module
(``encoder.get_input_embeddings()``) adds ``r`` to its output ``e``:

* random: ``r = ε · n / ‖n‖₂``, ``n ~ N(0, I)``;
* adversarial (FGM): ``r = ε · g / ‖g‖₂``, ``g = ∇_e L`` with the true labels, model
  in eval mode, ``L`` the task loss (:func:`infomtl.modeling.losses.task_loss`) on the head means.

``n`` and ``g`` are zeroed on padding positions and the norm is taken per example
over its non-padding tokens, so every example's perturbation has norm exactly ε.
Scores are each task's official metrics on the perturbed inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from infomtl.analysis.common import load_eval_split, pad_id, pyplot, task_batches
from infomtl.artifacts.evaluation import score_predictions
from infomtl.artifacts.run_folder import LoadedRun
from infomtl.errors import InfomtlError
from infomtl.modeling.losses import predict, task_loss

if TYPE_CHECKING:
    from transformers import PreTrainedModel

KINDS = ("random", "fgm")
DEFAULT_STRENGTHS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # FGM bites at ε ≈ 0.1–0.5, random noise at 2–4


def perturbation(
    kind: str,
    eps: float,
    embeddings: torch.Tensor,
    mask: torch.Tensor,
    grad: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``r`` ``(B, L, d)`` with ``‖r_b‖₂ = ε`` over example b's non-padding tokens and 0 on padding.

    ``kind`` ``"random"`` draws the direction from N(0, I) (with ``generator``, on the
    CPU); ``"fgm"`` uses ``grad`` (∇_e L, same shape as ``embeddings``). An example
    whose direction is all zero gets ``r = 0``.
    """
    if kind == "random":
        direction = torch.randn(embeddings.shape, generator=generator, dtype=torch.float32)
        direction = direction.to(embeddings.device)
    elif kind == "fgm":
        if grad is None:
            raise ValueError("fgm needs the gradient of the loss w.r.t. the embeddings")
        direction = grad.detach().float()
    else:
        raise ValueError(f"unknown perturbation {kind!r}; expected one of {', '.join(KINDS)}")
    direction = direction * mask.to(direction.dtype).unsqueeze(-1)
    norm = direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (eps * direction / norm).to(embeddings.dtype)


class _EmbeddingHook:
    """Adds ``self.delta`` (if set) to the word-embedding output."""

    def __init__(self) -> None:
        self.delta: torch.Tensor | None = None

    def __call__(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output if self.delta is None else output + self.delta


def _word_embeddings(run: LoadedRun) -> torch.nn.Embedding:
    """The input word embeddings of the run's (transformers) encoder."""
    return cast(torch.nn.Embedding, cast("PreTrainedModel", run.model.encoder).get_input_embeddings())


@contextmanager
def _hooked(run: LoadedRun):
    model = run.model
    embed = _word_embeddings(run)
    hook = _EmbeddingHook()
    handle = embed.register_forward_hook(hook)
    # one padded forward per batch (no length chunks, no packed rows): the hook sees (B, L, d)
    chunk_tokens, model.chunk_tokens = model.chunk_tokens, 0
    pack_base, model.pack_base = model.pack_base, None
    try:
        yield hook
    finally:
        handle.remove()
        model.chunk_tokens, model.pack_base = chunk_tokens, pack_base


def _loss_and_means(run: LoadedRun, t: int, batch) -> tuple[torch.Tensor, torch.Tensor]:
    out = run.model(batch, views=1)
    mean = out.heads[t].mean
    return task_loss(run.tasks[t], mean, batch.labels[t]), mean


def perturbed_outputs(
    run: LoadedRun,
    splits: list,
    kind: str,
    eps: float,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Per task: predictions on the perturbed inputs (input order) and the mean task loss."""
    device = device or torch.device("cpu")
    run.model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    preds, losses = [], []
    dim = _word_embeddings(run).embedding_dim
    with _hooked(run) as hook:
        for t in range(len(run.tasks)):
            rows, loss_sum, n = [], 0.0, 0
            for idx, batch in task_batches(splits, t, batch_size, pad_id(run), device):
                mask = batch.attention_mask
                shape = (len(batch), mask.shape[1], dim)
                hook.delta = None
                if eps > 0 and kind == "fgm":
                    # ∇_e L = ∇_δ L at δ = 0 (works whether or not the embeddings require grad)
                    zero = torch.zeros(shape, device=device, requires_grad=True)
                    hook.delta = zero
                    with torch.enable_grad():
                        loss, _ = _loss_and_means(run, t, batch)
                        (grad,) = torch.autograd.grad(loss, zero)
                    hook.delta = perturbation(kind, eps, zero.detach(), mask, grad)
                elif eps > 0:
                    hook.delta = perturbation(kind, eps, torch.empty(shape, device=device), mask, generator=gen)
                with torch.no_grad():
                    loss, mean = _loss_and_means(run, t, batch)
                hook.delta = None
                rows.append(predict(run.tasks[t], mean).cpu())
                loss_sum += float(loss) * len(idx)
                n += len(idx)
            pred = torch.cat(rows).numpy()
            order = np.argsort(splits[t].lengths, kind="stable")
            restored = np.empty_like(pred)
            restored[order] = pred
            preds.append(restored)
            losses.append(loss_sum / max(1, n))
    return preds, losses


def robust_scores(
    run: LoadedRun,
    split: str = "test",
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    kinds: Sequence[str] = KINDS,
    seed: int = 0,
    max_examples: int | None = None,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """``{"split", "strengths", "kinds": {kind: {str(ε): {"tasks", "scores", "avg", "loss"}}}}``:
    each task's official metrics (and task score, Avg, mean task loss) under each perturbation."""
    for kind in kinds:
        if kind not in KINDS:
            raise InfomtlError(f"unknown perturbation {kind!r}; expected one of {', '.join(KINDS)}")
    if any(e < 0 or not math.isfinite(e) for e in strengths):
        raise InfomtlError("strengths must be finite and >= 0")
    splits = load_eval_split(run, split, max_examples)
    golds = [s.labels for s in splits]
    out: dict[str, Any] = {"run": str(run.folder), "split": split, "strengths": list(strengths), "kinds": {}}
    clean = None
    for kind in kinds:
        per_eps = {}
        for eps in strengths:
            if eps == 0 and clean is not None:
                per_eps[_key(eps)] = clean
                continue
            preds, losses = perturbed_outputs(run, splits, kind, float(eps), batch_size, seed, device)
            scored = score_predictions(run.tasks, golds, preds)
            scored["loss"] = {t.name: v for t, v in zip(run.tasks, losses, strict=True)}
            per_eps[_key(eps)] = scored
            if eps == 0:
                clean = scored
        out["kinds"][kind] = per_eps
    return out


def _key(eps: float) -> str:
    return f"{float(eps):g}"


def average_increase(result: dict[str, Any], reference: dict[str, Any], kind: str) -> float:
    """Mean over tasks and strengths ε > 0 of (score − reference score)."""
    diffs = []
    for key, scored in result["kinds"].get(kind, {}).items():
        ref = reference["kinds"].get(kind, {}).get(key)
        if float(key) <= 0 or ref is None:
            continue
        diffs += [v - ref["scores"][t] for t, v in scored["scores"].items() if t in ref["scores"]]
    return float(np.mean(diffs)) if diffs else math.nan


def rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """CSV rows: run, kind, strength, task (or Avg), score."""
    out = []
    for label, res in results.items():
        for kind, per_eps in res["kinds"].items():
            for key, scored in per_eps.items():
                for task, score in scored["scores"].items():
                    out.append([label, kind, float(key), task, score])
                out.append([label, kind, float(key), "Avg", scored["avg"]])
    return out


def plot(results: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Score vs strength: a row of subplots per kind, a column per task (+ Avg), a line per run."""
    plt = pyplot()
    if plt is None:
        return None
    first = next(iter(results.values()))
    kinds = list(first["kinds"])
    tasks = [*next(iter(first["kinds"][kinds[0]].values()))["scores"], "Avg"]
    fig, axes = plt.subplots(len(kinds), len(tasks), figsize=(3.2 * len(tasks), 2.8 * len(kinds)), squeeze=False)
    for i, kind in enumerate(kinds):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            for label, res in results.items():
                per_eps = res["kinds"].get(kind, {})
                xs = [float(k) for k in per_eps]
                ys = [s["avg"] if task == "Avg" else s["scores"].get(task, math.nan) for s in per_eps.values()]
                ax.plot(xs, ys, marker="o", label=label)
            ax.set_title(f"{task} ({kind})", fontsize=9)
            ax.set_xlabel("perturbation strength ε")
            if j == 0:
                ax.set_ylabel("score (official metric)")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
