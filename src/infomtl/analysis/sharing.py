"""What each task learned to read (learning to share, :mod:`infomtl.modeling.sharing`), per
epoch, from a run's ``log.jsonl``: the layer weights ``softmax(w_t)`` of a layer mixture (or
the one-hot layer of a task at a layer), and the α of cross-stitch units.
:func:`read_sharing`, :func:`rows` and :func:`plot` serve ``infomtl analyze sharing``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infomtl.analysis.common import pyplot
from infomtl.analysis.logs import read_log
from infomtl.errors import InfomtlError


def read_sharing(run_dir: str | Path) -> dict[str, Any]:
    """``{"run", "epochs", "layers": {task: [[weight per layer] per epoch]}, "alpha": [[{task: {source:
    α}} per unit] per epoch]}`` (``layers`` or ``alpha`` empty when the run has none)."""
    folder = Path(run_dir)
    logged = [r for r in read_log(folder) if isinstance(r.get("sharing"), dict)]
    if not logged:
        raise InfomtlError(f"{folder}: no sharing weights in log.jsonl; train with --share or --head-layer")
    names = list(dict.fromkeys(n for r in logged for n in r["sharing"].get("layers", {})))
    return {
        "run": str(folder),
        "epochs": [r.get("epoch", i) for i, r in enumerate(logged)],
        "layers": {n: [r["sharing"].get("layers", {}).get(n) for r in logged] for n in names},
        "alpha": [r["sharing"]["alpha"] for r in logged if "alpha" in r["sharing"]],
    }


def rows(data: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """CSV rows: run, epoch, kind (``layer`` or ``alpha``), task, index (layer 0 = embeddings,
    or the unit's number), source (the task an α takes from; empty for layers), value."""
    out: list[list[Any]] = []
    for label, d in data.items():
        for task, series in d["layers"].items():
            for epoch, weights in zip(d["epochs"], series, strict=True):
                out.extend([label, epoch, "layer", task, k, "", w] for k, w in enumerate(weights or []))
        for epoch, units in zip(d["epochs"], d["alpha"], strict=False):
            for j, unit in enumerate(units):
                for task, sources in unit.items():
                    out.extend([label, epoch, "alpha", task, j, src, a] for src, a in sources.items())
    return out


def plot(data: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """``sharing.png``: per run, one panel per task of its layer weights across epochs (a line
    per layer), and the last epoch's α of each cross-stitch unit as a task × task map."""
    plt = pyplot()
    if plt is None:
        return []
    panels: list[tuple[str, str, Any]] = []
    for label, d in data.items():
        panels += [(label, task, series) for task, series in d["layers"].items() if series and series[-1]]
        if d["alpha"]:
            panels += [(label, f"cross-stitch unit {j + 1}", unit) for j, unit in enumerate(d["alpha"][-1])]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    for ax, (label, title, values) in zip(axes[0], panels, strict=True):
        if isinstance(values, dict):  # an α matrix: rows = the task that reads, columns = its sources
            names = list(values)
            image = ax.imshow([[values[t][s] for s in names] for t in names], cmap="viridis")
            ax.set_xticks(range(len(names)), names, rotation=45, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
            fig.colorbar(image, ax=ax, fraction=0.046)
        else:
            epochs = data[label]["epochs"]
            for k in range(len(values[-1])):
                ax.plot(epochs, [w[k] if w else float("nan") for w in values], marker="o", markersize=3,
                        label="embeddings" if k == 0 else f"layer {k}")
            ax.set_xlabel("epoch")
            ax.set_ylim(0, 1)
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3)
        ax.set_title(f"{label}: {title}" if len(data) > 1 else title, fontsize=8)
    fig.tight_layout()
    path = folder / "sharing.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
