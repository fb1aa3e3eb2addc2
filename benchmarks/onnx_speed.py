"""CPU inference speed: the same trained model exported twice, run by PyTorch and by onnxruntime.

::

    INFOMTL_DATA=../shared/data python benchmarks/onnx_speed.py --build runs/onnx-speed --threads 1

``--build DIR`` first trains a small MiniLM fast-mode model (TweetEval emotion + irony,
frozen encoder, a shared MLP and two heads: the weights are MiniLM's own, the heads
trained) into ``DIR/run`` unless it is there, and exports it into ``DIR/export`` (default
format: PyTorch) and ``DIR/export-onnx`` (``--format onnx``: onnxruntime); the equivalent
commands are printed. Then both exports are loaded with :func:`infomtl.load` and predict
the same ``--texts`` TweetEval sentiment test tweets end to end (tokenisation, length-sorted
batches of ``--batch-size``, the post-processing), ``--threads`` intra-op threads each
(torch's and onnxruntime's). One untimed warm-up call each, then ``--rounds`` timed calls
per runtime, taking turns (alternating order) so that a change in what else runs on a
shared machine reaches both alike. Printed per runtime: texts/s of the best and the median
round and the process's CPU seconds per 1,000 texts (all threads; less sensitive to other
processes than wall time), then whether the two give the same labels and their largest
probability difference, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import cpu_model
from serve_load import tweets

import infomtl
from infomtl.config import TrainConfig
from infomtl.inference.export import export_run
from infomtl.inference.onnx_export import export_onnx
from infomtl.inference.predict import Predictor
from infomtl.training import train

RUNTIMES = ("pytorch", "onnxruntime")


def build(folder: Path, data_dir: Path | None) -> dict[str, Path]:
    """The two exports of ``folder`` (see the module docstring), made first where missing."""
    run, exports = folder / "run", {"pytorch": folder / "export", "onnxruntime": folder / "export-onnx"}
    if not (run / "results.json").is_file():
        data = f" --data-dir {data_dir}" if data_dir else ""
        print(f"$ infomtl train --backbone minilm --freeze-backbone --lr 1e-3 --tasks emotion,irony "
              f"--max-train-examples 400 --max-eval-examples 200 --epochs 2 --feature-cache {folder / 'features'} "
              f"--output-dir {run}{data}", flush=True)
        train(TrainConfig(backbone="minilm", freeze_backbone=True, lr=1e-3, tasks=["emotion", "irony"],
                          max_train_examples=400, max_eval_examples=200, epochs=2, progress=False,
                          feature_cache=str(folder / "features"), output_dir=str(run),
                          data_dir=None if data_dir is None else str(data_dir)))
    for name, write in (("pytorch", export_run), ("onnxruntime", export_onnx)):
        if not (exports[name] / "infomtl.json").is_file():
            flag = " --format onnx" if name == "onnxruntime" else ""
            print(f"$ infomtl export {run} {exports[name]}{flag}", flush=True)
            start = time.perf_counter()
            write(run, exports[name])
            print(f"  ({time.perf_counter() - start:.1f} s)", flush=True)
    return exports


def timed(predictor: Predictor, texts: list[str], batch_size: int) -> tuple[float, float, list]:
    """Wall seconds, process CPU seconds and the predictions of one ``predict`` call."""
    wall, cpu = time.perf_counter(), time.process_time()
    predictions = predictor.predict(texts, batch_size=batch_size)
    return time.perf_counter() - wall, time.process_time() - cpu, predictions


def agreement(a: list[dict], b: list[dict]) -> tuple[int, float]:
    """Rows whose labels differ between two prediction lists, and the largest probability difference."""
    differ, worst = 0, 0.0
    for x, y in zip(a, b, strict=True):
        differ += any(x[task]["label"] != y[task]["label"] for task in x)
        worst = max([worst, *(abs(p - y[task]["probabilities"][label])
                              for task in x for label, p in x[task]["probabilities"].items())])
    return differ, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, required=True, metavar="DIR",
                        help="folder of the run and its two exports (made first where missing)")
    parser.add_argument("--data-dir", type=Path, default=None, help="benchmark data (default: $INFOMTL_DATA)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each runtime (default: 1)")
    parser.add_argument("--texts", type=int, default=1000, help="distinct tweets per predict call (default: 1000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per runtime (default: 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    exports = build(args.build, args.data_dir)
    texts = tweets(args.data_dir, args.texts)
    import onnxruntime

    predictors = {name: infomtl.load(exports[name]) for name in RUNTIMES}
    tokens = sum(len(ids) for ids in predictors["pytorch"].units[0].tokenizer(texts, truncation=True,
                                                                                max_length=256)["input_ids"])
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), "
          f"{cpu_model()}; {len(texts)} tweets ({tokens / len(texts):.1f} tokens on average), "
          f"batch size {args.batch_size}; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    last = {name: timed(predictors[name], texts[: args.batch_size], args.batch_size)[2] for name in RUNTIMES}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in RUNTIMES}
    for r in range(args.rounds):
        for name in RUNTIMES if r % 2 == 0 else RUNTIMES[::-1]:
            wall, cpu, last[name] = timed(predictors[name], texts, args.batch_size)
            times[name].append((wall, cpu))
            print(f"  round {r + 1} {name}: {wall:.2f} s, {len(texts) / wall:.1f} texts/s", flush=True)
    print("| runtime | texts/s (best) | texts/s (median) | CPU s / 1,000 texts |")
    print("|---|--:|--:|--:|")
    for name in RUNTIMES:
        walls = [w for w, _ in times[name]]
        cpu = statistics.median(c for _, c in times[name])
        print(f"| {name} | {len(texts) / min(walls):.1f} | {len(texts) / statistics.median(walls):.1f} | "
              f"{1000 * cpu / len(texts):.2f} |")
    best = {name: len(texts) / min(w for w, _ in times[name]) for name in RUNTIMES}
    differ, worst = agreement(last["onnxruntime"], last["pytorch"])
    print(f"onnxruntime / pytorch (best texts/s): {best['onnxruntime'] / best['pytorch']:.2f}x; "
          f"texts with another label: {differ} of {len(texts)}; largest probability difference: {worst:.2g}; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
