"""The information plane (InfoMTL Figure 2): per epoch, ``Î(X; Z)`` and ``Î(Z; Z_t)``.

* ``Î(X; Z) = log B − L_NCE(h, h⁺; τ = 1)``, the InfoNCE lower bound, on the
  validation rows with two dropout views ``h, h⁺`` of the shared representation
  (model in train mode), in fixed batches of ``B`` rows (mixed across tasks, in a
  fixed order), averaged over batches. It never exceeds ``log B``.
* ``Î(Z; Z_t) ≈ mean_i KL(q(z_t | h_i) ‖ N(0, I))`` summed over the dimensions of
  task t's output, over task t's validation rows, model in eval mode. Gaussian heads
  (``HeadOutput.logvar`` set) use their ``N(μ, σ²)`` (for variance-normalised heads,
  the Gaussian before the normalisation). **Deterministic heads** (``logvar is None``)
  are treated as a unit-variance Gaussian posterior ``N(μ, I)``, so the estimate is
  ``½‖μ‖²`` (the same as a Gaussian head with ``σ = 1``).

The estimates run under a forked RNG (CPU and CUDA state saved and restored, seeded
with ``seed``), so tracking them during training leaves the training randomness, and
hence the results, unchanged. :func:`read_information` and :func:`plot` serve
``infomtl analyze information``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infomtl.analysis.common import pyplot
from infomtl.analysis.logs import read_log
from infomtl.data.encoding import EncodedSplit, collate
from infomtl.errors import InfomtlError
from infomtl.modeling.bounds import gaussian_kl, info_nce


def _batches(sizes: list[int], batch_size: int, seed: int, drop_last: bool = True,
             max_rows: int | None = None) -> list[list[np.ndarray]]:
    """Fixed mixed batches: all (task, row) pairs in a seeded order (the first ``max_rows``
    of them if given), cut into ``batch_size`` rows; a last partial batch is dropped unless
    it is the only one. Each batch is a collate ``step`` (row indices per task)."""
    pairs = np.array([(t, i) for t, n in enumerate(sizes) for i in range(n)], dtype=np.int64).reshape(-1, 2)
    pairs = pairs[np.random.default_rng(seed).permutation(len(pairs))][:max_rows]
    cuts = [pairs[s : s + batch_size] for s in range(0, len(pairs), batch_size)]
    if drop_last and len(cuts) > 1 and len(cuts[-1]) < batch_size:
        cuts.pop()
    return [[np.sort(c[c[:, 0] == t, 1]) for t in range(len(sizes))] for c in cuts]


def _kl_rows(out: Any) -> torch.Tensor:
    """Per-row ``KL(q(z_t|h) ‖ N(0, I))`` summed over dimensions; ``½‖μ‖²`` without a logvar."""
    mean = getattr(out, "raw_mean", None)
    logvar = getattr(out, "raw_logvar", None)
    if mean is None or logvar is None:
        mean, logvar = out.mean, out.logvar
    if logvar is None:
        return 0.5 * mean.float().pow(2).sum(dim=-1)
    return gaussian_kl(mean, logvar).sum(dim=-1)


def information_estimates(
    model: torch.nn.Module,
    tasks: list[Any],
    val_splits: list[EncodedSplit],
    pad_id: int,
    device: torch.device | str,
    batch_size: int = 128,
    seed: int = 0,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """``{"ixz": float, "izzt": {task: float}, "batch_size": B, "ixz_batches": [per batch]}``
    on ``val_splits``, or on ``max_rows`` of their rows drawn with ``seed`` (both estimates on
    the same rows; see the module docstring); the model's mode and the global RNG state are
    restored afterwards."""
    device = torch.device(device)
    sizes = [len(s) for s in val_splits]
    if sum(sizes) < 2:
        raise InfomtlError("information estimates need at least 2 validation rows")
    if max_rows is not None and max_rows < 2:
        raise InfomtlError(f"information estimates need at least 2 validation rows, got --information-rows {max_rows}")
    batches = _batches(sizes, batch_size, seed, max_rows=max_rows)
    b = sum(len(x) for x in batches[0])
    was_training = model.training
    devices = [device] if device.type == "cuda" else []
    ixz: list[float] = []
    kl_sum = [0.0] * len(tasks)
    kl_count = [0] * len(tasks)
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            model.train()
            decoder = getattr(model, "decoder", None)
            if isinstance(decoder, torch.nn.Module):
                decoder.eval()  # dropout views come from the encoder; heads keep their statistics
            for step in batches:
                batch = collate(val_splits, step, pad_id).to(device)
                out = model(batch, views=2)
                n = len(out.h)
                ixz.append(math.log(n) - float(info_nce(out.h, out.h_views, tau=1.0)))
            model.eval()
            for step in _batches(sizes, b, seed, drop_last=False, max_rows=max_rows):  # every row (of the subset)
                batch = collate(val_splits, step, pad_id).to(device)
                out = model(batch, views=1)
                for t, head in out.heads.items():
                    kl = _kl_rows(head)
                    kl_sum[t] += float(kl.sum())
                    kl_count[t] += len(kl)
    finally:
        model.train(was_training)
    return {
        "ixz": float(np.mean(ixz)),
        "izzt": {t.name: (kl_sum[k] / kl_count[k] if kl_count[k] else math.nan) for k, t in enumerate(tasks)},
        "batch_size": b,
        "ixz_batches": ixz,
    }


def read_information(run_dir: str | Path) -> dict[str, Any]:
    """From a run's ``log.jsonl``: ``{"run", "epochs", "ixz", "izzt": {task: [...]},
    "izzt_mean", "selected_epoch", "batch_size"}``."""
    folder = Path(run_dir)
    records = read_log(folder)
    tracked = [r for r in records if isinstance(r.get("information"), dict)]
    if not tracked:
        raise InfomtlError(f"{folder}: no information estimates in log.jsonl; train with --track-information")
    names = list(dict.fromkeys(name for r in tracked for name in r["information"].get("izzt", {})))
    izzt = {name: [float(r["information"]["izzt"].get(name, math.nan)) for r in tracked] for name in names}
    means = [float(np.nanmean([izzt[n][i] for n in names])) if names else math.nan for i in range(len(tracked))]
    best = [r.get("epoch") for r in records if r.get("best")]
    return {
        "run": str(folder),
        "epochs": [r.get("epoch", i) for i, r in enumerate(tracked)],
        "ixz": [float(r["information"]["ixz"]) for r in tracked],
        "izzt": izzt,
        "izzt_mean": means,
        "selected_epoch": best[-1] if best else None,
        "batch_size": tracked[-1]["information"].get("batch_size"),
    }


def rows(data: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """CSV rows: run, epoch, selected (0/1), ixz, task (``mean`` for the mean over tasks), izzt."""
    out = []
    for label, d in data.items():
        for i, epoch in enumerate(d["epochs"]):
            sel = int(epoch == d["selected_epoch"])
            out.append([label, epoch, sel, d["ixz"][i], "mean", d["izzt_mean"][i]])
            for task, values in d["izzt"].items():
                out.append([label, epoch, sel, d["ixz"][i], task, values[i]])
    return out


def plot(data: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """``information.png``: Î(Z;Z_t) (x) against Î(X;Z) (y), one line per run, epochs
    annotated; the mean over tasks, then one panel per task; the selected epoch dashed."""
    plt = pyplot()
    if plt is None:
        return []
    names = list(dict.fromkeys(n for d in data.values() for n in d["izzt"]))
    panels = [("mean over tasks", None)] + [(n, n) for n in names]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, task) in zip(axes[0], panels, strict=True):
        for label, d in data.items():
            xs = d["izzt_mean"] if task is None else d["izzt"].get(task)
            if xs is None:
                continue
            line = ax.plot(xs, d["ixz"], marker="o", markersize=3, label=label)[0]
            for x, y, e in zip(xs, d["ixz"], d["epochs"], strict=True):
                ax.annotate(str(e), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            if d["selected_epoch"] in d["epochs"]:
                i = d["epochs"].index(d["selected_epoch"])
                ax.axvline(xs[i], color=line.get_color(), linestyle="--", linewidth=0.8)
                ax.plot([xs[i]], [d["ixz"][i]], marker="*", markersize=10, color=line.get_color())
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Î(Z; Z_t)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Î(X; Z)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = folder / "information.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
