"""Training throughput of the methods on real TweetEval batches.

Prints, per method: training examples/s, real (non-padding) tokens/s, mean step time,
and the step-time ratio over EW, all measured in one run on the same batches (same
seed, same plan of steps). Not a test: numbers depend on the machine.

    python benchmarks/throughput.py --backbone minilm --methods ew,infomtl

Needs the TweetEval data (--data-dir or INFOMTL_DATA).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from infomtl.config import TrainConfig
from infomtl.tables import markdown_table
from infomtl.training import Trainer


def measure(config: TrainConfig, steps: int, warmup: int) -> dict[str, float]:
    """Time ``steps`` training steps after ``warmup`` untimed ones."""
    trainer = Trainer(config, echo=lambda *_: None)
    trainer.setup(steps + warmup)
    plan = trainer.batcher.epoch(1)
    while len(plan) < steps + warmup:
        plan += trainer.batcher.epoch(len(plan) + 1)
    for p in plan[:warmup]:
        trainer.train_step(p)
    rows = tokens = 0
    start = time.perf_counter()
    for p in plan[warmup : warmup + steps]:
        total, _, _ = trainer.train_step(p)
        rows += sum(len(idx) for idx in p)
        tokens += sum(int(trainer.encoded["train"][t].lengths[idx].sum()) for t, idx in enumerate(p))
    float(total.detach())  # wait for the last step
    elapsed = time.perf_counter() - start
    return {"examples_s": rows / elapsed, "tokens_s": tokens / elapsed, "step_s": elapsed / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--methods", default="ew,infomtl", help="comma-separated methods (EW first is the reference)")
    parser.add_argument("--tasks", default="emotion,hate,irony,offensive,sentiment,stance")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    args = parser.parse_args()

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results = {}
    for method in methods:
        config = TrainConfig(
            backbone=args.backbone, method=method, tasks=args.tasks.split(","), data_dir=args.data_dir,
            batch_size=args.batch_size, max_length=args.max_length, max_train_examples=2000,
            max_eval_examples=1, progress=False, mixed_precision=args.mixed_precision, seed=0,
        )
        results[method] = measure(config, args.steps, args.warmup)
    ref = results[methods[0]]["step_s"]
    rows = [
        [m, r["examples_s"], r["tokens_s"], r["step_s"] * 1000, r["step_s"] / ref]
        for m, r in results.items()
    ]
    print(
        f"backbone {args.backbone}, batch {args.batch_size}, max length {args.max_length}, "
        f"{args.steps} timed steps, precision {args.mixed_precision}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.processor() or platform.machine()}\n"
    )
    print(markdown_table(
        ["method", "examples/s", "real tokens/s", "step ms", f"step / {methods[0]} step"], rows
    ))


if __name__ == "__main__":
    main()
