"""CPU inference speed of ``infomtl predict``: the reference path, today's path and int8, in one run.

::

    INFOMTL_DATA=../shared/data python benchmarks/inference_speed.py RUN_OR_EXPORT --texts 2000 --rounds 3
    INFOMTL_DATA=../shared/data python benchmarks/inference_speed.py RUN --accuracy   # + int8's test-metric change

The same trained model (a run or export folder) predicts the same ``--texts`` TweetEval
sentiment test tweets end to end (tokenisation, forward passes, the prediction dicts) by
three paths:

* **reference**: fp32 under ``torch.no_grad``, batches of 64 texts in *input order*, each
  padded to its longest text (no sorting by length): the path before length sorting, kept
  as the reference;
* **sorted**: :meth:`infomtl.inference.predict.Predictor.predict` as it is (texts sorted by
  length, batches of ``--batch-size``, ``torch.inference_mode``; ``precision="auto"``, so
  bf16 autocast on a CPU with bf16 instructions, which the header says);
* **int8**: the same with the encoder quantised (``quantize="int8"``,
  :mod:`infomtl.inference.quantize`).

Each path gets one untimed warm-up call, then ``--rounds`` timed calls, the paths taking
turns in a rotating order (a change in what else runs on a shared machine reaches all
alike). Printed per path: texts/s of the best and the median round, CPU seconds per 1,000
texts, the best texts/s over the reference's, and its texts with another label than the
reference's and largest probability difference. Target: the fastest path at least
:data:`TARGET` × the reference's texts/s (best rounds), PASS/FAIL.

``--accuracy`` (a run folder): the run's test split as its config reads it (TweetEval test
for a TweetEval run) predicted in fp32 and in int8, each task's official score and Avg,
and the change.

Not a test: numbers depend on the machine; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model, physical_cores  # noqa: E402
from serve_load import tweets  # noqa: E402

import infomtl  # noqa: E402
from infomtl.config import TrainConfig  # noqa: E402
from infomtl.data.encoding import Batch  # noqa: E402
from infomtl.data.loading import prepare_data  # noqa: E402
from infomtl.inference.predict import Predictor, _format  # noqa: E402
from infomtl.metrics import average, score_task, task_score  # noqa: E402
from infomtl.options import load_yaml  # noqa: E402
from infomtl.precision import cpu_has_bf16  # noqa: E402
from infomtl.tasks import Task, TaskKind  # noqa: E402

#: The reference path's texts per forward pass (what ``--batch-size`` defaulted to before sorting).
REFERENCE_BATCH = 64
#: The target: the fastest path's texts/s over the reference's.
TARGET = 1.5
PATHS = ("reference", "sorted", "int8")


def reference_predict(predictor: Predictor, texts: list[str]) -> list[dict[str, dict[str, Any]]]:
    """Every task's prediction per text the reference way (module docstring): fp32, batches of
    :data:`REFERENCE_BATCH` texts in input order, each padded to its longest text."""
    results: list[dict[str, dict[str, Any]]] = [{} for _ in texts]
    with torch.no_grad():
        for unit in predictor.units:
            modes = unit.pair_modes
            if any(modes.get(t.name) == "first" for t in unit.tasks):
                raise SystemExit("this model has a task that needs a text pair for every text; "
                                 "the benchmark predicts tweets without pairs")
            for start in range(0, len(texts), REFERENCE_BATCH):
                chunk = texts[start : start + REFERENCE_BATCH]
                second = [""] * len(chunk) if any(m == "second" for m in modes.values()) else None
                enc = unit.tokenizer(chunk, second, padding=True, truncation=True, max_length=unit.max_length,
                                     return_tensors="pt")
                rows = dict.fromkeys(range(len(unit.tasks)), torch.arange(len(chunk)))
                batch = Batch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                              token_type_ids=enc.get("token_type_ids"), rows=rows, labels={},
                              lengths=enc["attention_mask"].sum(1).numpy())
                out = unit.model(batch, views=1)
                for t, task in enumerate(unit.tasks):
                    for row, value in zip(results[start:], out.heads[t].mean.float().numpy(), strict=False):
                        row[task.name] = _format(task, value)
    return [{name: row[name] for name in predictor.task_names} for row in results]


def timed(call: Callable[[], list]) -> tuple[float, float, list]:
    """Wall seconds, process CPU seconds and the predictions of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    predictions = call()
    return time.perf_counter() - wall, time.process_time() - cpu, predictions


def agreement(a: list[dict], b: list[dict]) -> tuple[int, float]:
    """Texts with another label (any task; classification and multi-label) and the largest
    probability (or regression value) difference between two prediction lists."""
    differ, worst = 0, 0.0
    for x, y in zip(a, b, strict=True):
        differ += any(x[t].get("label", x[t].get("labels")) != y[t].get("label", y[t].get("labels")) for t in x)
        for task in x:
            ours, theirs = x[task].get("probabilities", x[task]), y[task].get("probabilities", y[task])
            worst = max([worst, *(abs(v - theirs[k]) for k, v in _numbers(ours).items())])
    return differ, worst


def _numbers(prediction: dict[str, Any]) -> dict[str, float]:
    """The probabilities of a prediction, or its regression value(s)."""
    values = prediction.get("values", prediction)
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def speed(model: str, texts: list[str], batch_size: int, rounds: int) -> bool:
    """Time the three paths (module docstring), print the table; whether the target is met."""
    fp32 = infomtl.load(model, precision="fp32")
    sorted_path = infomtl.load(model)
    int8 = infomtl.load(model, quantize="int8")
    calls: dict[str, Callable[[], list]] = {
        "reference": lambda: reference_predict(fp32, texts),
        "sorted": lambda: sorted_path.predict(texts, batch_size=batch_size),
        "int8": lambda: int8.predict(texts, batch_size=batch_size),
    }
    tokens = [len(ids) for ids in fp32.units[0].tokenizer(texts, truncation=True,
                                                         max_length=fp32.units[0].max_length)["input_ids"]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {cpu_model()}, bf16 instructions: "
          f"{cpu_has_bf16()}; sorted path in {sorted_path.precision}; {len(texts)} tweets ({np.mean(tokens):.1f} "
          f"tokens on average, longest {max(tokens)}), batch size {batch_size} (reference: {REFERENCE_BATCH}); "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    warm = texts[:batch_size]
    reference_predict(fp32, warm)
    sorted_path.predict(warm, batch_size=batch_size)
    int8.predict(warm, batch_size=batch_size)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in PATHS}
    last: dict[str, list] = {}
    for r in range(rounds):
        for name in PATHS[r % 3:] + PATHS[: r % 3]:
            wall, cpu, last[name] = timed(calls[name])
            times[name].append((wall, cpu))
            print(f"  round {r + 1} {name}: {wall:.2f} s, {len(texts) / wall:.1f} texts/s", flush=True)
    best = {name: len(texts) / min(w for w, _ in times[name]) for name in PATHS}
    print("| path | texts/s (best) | texts/s (median) | CPU s / 1,000 texts | × reference | other labels | "
          "largest prob. diff. |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name in PATHS:
        walls = [w for w, _ in times[name]]
        cpu = statistics.median(c for _, c in times[name])
        differ, worst = agreement(last[name], last["reference"])
        print(f"| {name} | {best[name]:.1f} | {len(texts) / statistics.median(walls):.1f} | "
              f"{1000 * cpu / len(texts):.2f} | {best[name] / best['reference']:.2f} | {differ} | {worst:.2g} |")
    fastest = max(("sorted", "int8"), key=best.__getitem__)
    ratio = best[fastest] / best["reference"]
    met = ratio >= TARGET
    print(f"{'PASS' if met else 'FAIL'}: fastest path {fastest} {ratio:.2f}x the reference texts/s "
          f"(target >= {TARGET}x); load average after: {os.getloadavg()[0]:.2f}")
    return met


def task_outputs(task: Task, predictions: list[dict[str, Any]]) -> np.ndarray:
    """A task's predictions as :func:`infomtl.metrics.score_task` takes them: class ids, a 0/1
    label matrix, or regression values ``(N, outputs)``."""
    rows = [p[task.name] for p in predictions]
    if task.kind is TaskKind.CLASSIFICATION:
        return np.array([task.labels.index(r["label"]) for r in rows], dtype=np.int64)
    if task.kind is TaskKind.MULTILABEL:
        return np.array([[name in r["labels"] for name in task.labels] for r in rows], dtype=np.int64)
    return np.array([[r["value"]] if "value" in r else [r["values"][t] for t in task.targets] for r in rows],
                    dtype=np.float32)


def accuracy(run_dir: Path, data_dir: Path | None, batch_size: int) -> None:
    """The test split of the run's tasks predicted in fp32 and in int8; print each task's
    official score, Avg, and the change."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise SystemExit(f"--accuracy needs a run folder (with config.yaml): {run_dir}")
    config = TrainConfig.from_dict(load_yaml(config_path), str(config_path))
    if data_dir is not None:
        config.data.data_dir = str(data_dir)
    data = prepare_data(config)
    scores: dict[str, dict[str, Any]] = {}
    for name, predictor in (("fp32", infomtl.load(run_dir, precision="fp32")),
                            ("int8", infomtl.load(run_dir, quantize="int8"))):
        per_task = {}
        for task in predictor.tasks:
            test = data.splits[task.name]["test"]
            preds = predictor.predict(test.texts, test.pairs, [task.name], batch_size=batch_size)
            per_task[task.name] = score_task(task, test.labels, task_outputs(task, preds))
        scores[name] = {"tasks": {t.name: task_score(t, per_task[t.name]) for t in predictor.tasks},
                        "avg": average(predictor.tasks, per_task)}
    print(f"test split of {run_dir} (official score per task):")
    print("| task | fp32 | int8 | int8 − fp32 |")
    print("|---|--:|--:|--:|")
    for task, fp in scores["fp32"]["tasks"].items():
        q = scores["int8"]["tasks"][task]
        print(f"| {task} | {fp:.2f} | {q:.2f} | {q - fp:+.2f} |")
    fp, q = scores["fp32"]["avg"], scores["int8"]["avg"]
    print(f"| Avg | {fp:.2f} | {q:.2f} | {q - fp:+.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="RUN_OR_EXPORT", type=Path, help="a trained run or export folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="benchmark data (default: $INFOMTL_DATA)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--texts", type=int, default=2000, help="distinct tweets per call (default: 2000)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass of the sorted "
                        "and int8 paths (default: 64)")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per path (default: 3)")
    parser.add_argument("--accuracy", action="store_true", help="also the test-metric change of int8 vs fp32 "
                        "(RUN_OR_EXPORT a run folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or physical_cores())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    speed(str(args.model), tweets(args.data_dir, args.texts), args.batch_size, args.rounds)
    if args.accuracy:
        accuracy(args.model, args.data_dir, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
