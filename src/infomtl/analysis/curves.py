"""Training curves from runs' ``log.jsonl``: per-task training loss (``train.ce``, or
the task loss when an objective logs no ``ce``), validation loss and Avg, each task's
validation score, and the task weights of weighting methods, per epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from infomtl.analysis.common import pyplot
from infomtl.analysis.logs import read_log
from infomtl.errors import InfomtlError
from infomtl.fileio import read_json
from infomtl.metrics import task_score
from infomtl.tasks import Task


def read_curves(run_dir: str | Path) -> dict[str, Any]:
    """``{"run", "epochs", "train_loss", "val_loss", "val_avg", "tasks": {task: {"train_ce", "val_score"}},
    "weights": {task: [w per epoch]}}`` (``weights`` empty when none were logged)."""
    folder = Path(run_dir)
    records = read_log(folder)
    if not records:
        raise InfomtlError(f"{folder / 'log.jsonl'}: no epochs logged")
    meta = read_json(folder / "run.json") if (folder / "run.json").is_file() else {}
    tasks = {t["name"]: Task.from_dict(t) for t in meta.get("tasks", [])}
    names = list(tasks) or list(records[0].get("val", {}).get("tasks", {}))
    nan = math.nan
    out: dict[str, Any] = {
        "run": str(folder),
        "epochs": [r.get("epoch", i) for i, r in enumerate(records)],
        "train_loss": [r.get("train", {}).get("loss", nan) for r in records],
        "val_loss": [r.get("val", {}).get("loss", nan) for r in records],
        "val_avg": [r.get("val", {}).get("avg", nan) for r in records],
        "tasks": {},
        "weights": {},
    }
    for name in names:
        ce = [r.get("train", {}).get("ce", {}).get(name, nan) for r in records]
        val = []
        for r in records:
            scores = r.get("val", {}).get("tasks", {}).get(name)
            val.append(task_score(tasks[name], scores) if scores and name in tasks else nan)
        out["tasks"][name] = {"train_ce": ce, "val_score": val}
        out["weights"][name] = [r.get("train", {}).get("weights", {}).get(name, nan) for r in records]
    logged = {w for series in out["weights"].values() for w in series if not math.isnan(w)}
    if len(logged) <= 1:  # EW's one constant weight (1/T, or 1 per step) is not a curve
        out["weights"] = {}
    return out


def rows(curves: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """CSV rows: run, epoch, series (train_loss, val_loss, val_avg, train_ce, val_score, weight), task, value."""
    out = []
    for label, c in curves.items():
        for i, epoch in enumerate(c["epochs"]):
            for series in ("train_loss", "val_loss", "val_avg"):
                out.append([label, epoch, series, "", c[series][i]])
            for task, s in c["tasks"].items():
                out.append([label, epoch, "train_ce", task, s["train_ce"][i]])
                out.append([label, epoch, "val_score", task, s["val_score"][i]])
            for task, w in c["weights"].items():
                out.append([label, epoch, "weight", task, w[i]])
    return out


def plot(curves: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """``curves.png`` (per task: training CE and validation score; plus val loss and Avg) and,
    when any run logged task weights, ``weights.png``."""
    plt = pyplot()
    if plt is None:
        return []
    names = list(dict.fromkeys(n for c in curves.values() for n in c["tasks"]))
    cols = len(names) + 1
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 5.6), squeeze=False)
    for label, c in curves.items():
        for j, n in enumerate(names):
            if n not in c["tasks"]:
                continue
            axes[0][j].plot(c["epochs"], c["tasks"][n]["train_ce"], marker="o", label=label)
            axes[1][j].plot(c["epochs"], c["tasks"][n]["val_score"], marker="o", label=label)
        axes[0][-1].plot(c["epochs"], c["val_loss"], marker="o", label=label)
        axes[1][-1].plot(c["epochs"], c["val_avg"], marker="o", label=label)
    for j, n in enumerate(names):
        axes[0][j].set_title(f"{n}: train loss", fontsize=9)
        axes[1][j].set_title(f"{n}: val score", fontsize=9)
    axes[0][-1].set_title("val loss (all tasks)", fontsize=9)
    axes[1][-1].set_title("val Avg", fontsize=9)
    for ax in axes.flat:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("loss")
    axes[1][0].set_ylabel("score")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    written = [folder / "curves.png"]
    fig.savefig(written[0], dpi=120)
    plt.close(fig)
    weighted = {label: c for label, c in curves.items() if c["weights"]}
    if weighted:
        fig, axes = plt.subplots(1, len(weighted), figsize=(4 * len(weighted), 3.2), squeeze=False)
        for ax, (label, c) in zip(axes[0], weighted.items(), strict=True):
            for task, w in c["weights"].items():
                ax.plot(c["epochs"], w, marker="o", label=task)
            ax.set_title(f"{label}: task weights", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("mean weight")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(folder / "weights.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written
