"""Representation quality (InfoMTL, Table 5 protocol) on a split.

* uniformity of the shared representation: ``log mean_{i<j} exp(−2‖ĥ_i − ĥ_j‖²)``
  over the L2-normalised ``h`` of every row of every task (lower = more uniform);
* per classification task: k-means (k = C_t, ``n_init=10``) on the task outputs (head
  means), then the adjusted Rand index (ARI) of those clusters against the gold
  labels and their silhouette coefficient (on the task outputs).

Regression and multi-label tasks have no single gold class: they get no ARI or
silhouette (reported as ``null`` / "-"); the pooled numbers average over the
classification tasks. A degenerate case (fewer rows than clusters, or one cluster
found) gives NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from infomtl.analysis.common import load_eval_split, pad_id, task_batches
from infomtl.artifacts.run_folder import LoadedRun
from infomtl.tasks import TaskKind


def uniformity(h: torch.Tensor | np.ndarray, t: float = 2.0) -> float:
    """``log mean_{i<j} exp(−t ‖ĥ_i − ĥ_j‖²)`` of the L2-normalised rows of ``h`` (NaN for < 2 rows)."""
    x = torch.as_tensor(np.asarray(h) if isinstance(h, np.ndarray) else h).double()
    if x.shape[0] < 2:
        return math.nan
    x = torch.nn.functional.normalize(x, dim=1)
    d2 = torch.pdist(x).pow(2)
    return float(torch.logsumexp(-t * d2, dim=0) - math.log(d2.numel()))


def cluster_scores(outputs: np.ndarray, gold: np.ndarray, k: int, seed: int = 0) -> dict[str, float]:
    """``{"ari", "silhouette"}`` of KMeans(k) clusters of ``outputs`` against ``gold``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    outputs = np.asarray(outputs, dtype=np.float64)
    if len(outputs) < max(2, k):
        return {"ari": math.nan, "silhouette": math.nan}
    with warnings.catch_warnings():  # fewer distinct points than k: silhouette becomes NaN below
        warnings.simplefilter("ignore")
        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(outputs)
    ari = float(adjusted_rand_score(np.asarray(gold), clusters))
    found = len(np.unique(clusters))
    sil = float(silhouette_score(outputs, clusters)) if 2 <= found <= len(outputs) - 1 else math.nan
    return {"ari": ari, "silhouette": sil}


@torch.no_grad()
def collect(
    run: LoadedRun, splits: list, batch_size: int = 64, device: torch.device | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``h`` of every row of every task (stacked) and each task's head means (input order)."""
    device = device or torch.device("cpu")
    run.model.to(device).eval()
    hs, outputs = [], []
    for t in range(len(run.tasks)):
        idx_all, means = [], []
        for idx, batch in task_batches(splits, t, batch_size, pad_id(run), device):
            out = run.model(batch, views=1)
            hs.append(out.h.float().cpu())
            means.append(out.heads[t].mean.float().cpu())
            idx_all.append(idx)
        mean = torch.cat(means).numpy()
        restored = np.empty_like(mean)
        restored[np.concatenate(idx_all)] = mean
        outputs.append(restored)
    return torch.cat(hs).numpy(), outputs


def representation_quality(
    run: LoadedRun,
    split: str = "test",
    max_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """``{"uniformity", "tasks": {task: {"ari", "silhouette"}}, "mean": {"ari", "silhouette"},
    "skipped": [non-classification tasks]}``."""
    splits = load_eval_split(run, split, max_examples)
    h, outputs = collect(run, splits, batch_size, device)
    tasks, skipped = {}, []
    for task, out, s in zip(run.tasks, outputs, splits, strict=True):
        if task.kind is not TaskKind.CLASSIFICATION:
            skipped.append(task.name)
            continue
        tasks[task.name] = cluster_scores(out, s.labels, task.num_outputs, seed)
    mean = {
        key: float(np.mean(vals)) if (vals := [v[key] for v in tasks.values() if not math.isnan(v[key])]) else math.nan
        for key in ("ari", "silhouette")
    }
    return {"run": str(run.folder), "split": split, "rows": int(len(h)), "uniformity": uniformity(h),
            "tasks": tasks, "mean": mean, "skipped": skipped}


def table(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows (a row per run): uniformity, per-task ARI and silhouette, mean."""
    names = list(dict.fromkeys(n for r in results.values() for n in r["tasks"]))
    headers = ["run", "uniformity ↓"]
    for n in [*names, "mean"]:
        headers += [f"{n} ARI", f"{n} Sil."]
    rows = []
    for label, r in results.items():
        row: list[Any] = [label, r["uniformity"]]
        for n in names:
            cell = r["tasks"].get(n, {})
            row += [cell.get("ari", math.nan), cell.get("silhouette", math.nan)]
        row += [r["mean"]["ari"], r["mean"]["silhouette"]]
        rows.append(row)
    return headers, rows
