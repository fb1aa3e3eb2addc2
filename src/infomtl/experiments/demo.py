"""``infomtl demo``: a short EW vs InfoMTL comparison that runs on a fresh offline install.

Without ``data_dir`` it trains on the built-in synthetic multi-task text set with
the ``tiny`` backbone; with ``data_dir`` it trains on small TweetEval slices.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.loading import load_benchmark
from infomtl.logs import quieted
from infomtl.metrics import delta_p
from infomtl.tables import markdown_table
from infomtl.tasks import TWEETEVAL_TASKS
from infomtl.training import train

log = logging.getLogger(__name__)


def demo_configs(
    data_dir: str | None, backbone: str, epochs: int | None, seed: int, output_dir: Path, progress: bool | None,
    threads: int | None = None,
) -> dict[str, TrainConfig]:
    """The two runs of the demo (EW and InfoMTL, same everything else).

    ``threads`` (None: the default): the ``tiny`` encoder's operations are too small to
    gain from several threads, and on a machine that other processes keep busy more
    threads make them many times slower, so its runs use one; other backbones use
    :func:`~infomtl.threads.default_threads`.
    """
    if threads is None and backbone == "tiny":
        threads = 1
    common: dict[str, Any] = dict(backbone=backbone, seed=seed, progress=progress, patience=0, regime="mixed",
                                  threads=threads)
    if data_dir is None:
        common.update(benchmark="synthetic", max_length=32, batch_size=16, epochs=epochs or 10,
                      lr=2e-3 if backbone == "tiny" else 5e-5, head_dropout=0.1, pooling="mean")
    else:
        common.update(benchmark="tweeteval", data_dir=data_dir, tasks=["emotion", "irony", "stance"],
                      max_train_examples=600, max_eval_examples=300, max_length=64, batch_size=32,
                      epochs=epochs or 2, lr=1e-3 if backbone == "tiny" else 5e-5)
    return {
        name: TrainConfig(method=name, output_dir=str(output_dir / name), **common).validate()
        for name in ("ew", "infomtl")
    }


def run_demo(
    data_dir: str | None = None,
    backbone: str = "tiny",
    epochs: int | None = None,
    seed: int = 0,
    output_dir: str | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> str:
    """Train both runs and return the comparison table (test split) as text (progress
    bars: on when stderr is a terminal, unless ``progress`` says otherwise)."""
    root = Path(output_dir) if output_dir else Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    results = {}
    for name, config in demo_configs(data_dir, backbone, epochs, seed, root, progress, threads).items():
        with quieted("infomtl.training", logging.ERROR):  # one line per run, and its final collapses
            results[name] = train(config).results
        log.info("trained %s: test Avg %.2f", name, results[name]["test"]["avg"])
        for message in results[name].get("collapse", []):
            log.warning("warning: %s: %s", name, message)
    tasks = _tasks(results["ew"])
    headers = ["method", *(t.name for t in tasks), "Avg", "Δp vs EW (%)"]
    rows = []
    for name, res in results.items():
        test = res["test"]
        dp = delta_p(tasks, test["tasks"], results["ew"]["test"]["tasks"])
        rows.append([name, *(test["scores"][t.name] for t in tasks), test["avg"], f"{dp:+.2f}"])
    data = "synthetic tasks" if data_dir is None else "TweetEval slices"
    return (
        f"\nEW vs InfoMTL on {data}, backbone {backbone}, seed {seed} (test split, official metrics):\n\n"
        + markdown_table(headers, rows)
        + f"\n\nrun folders: {root}"
    )


def _tasks(result: dict):
    names = list(result["test"]["tasks"])
    if all(n in TWEETEVAL_TASKS for n in names):
        return [TWEETEVAL_TASKS[n] for n in names]
    synthetic = {t.name: t for t in load_benchmark("synthetic").tasks}
    return [synthetic[n] for n in names]
