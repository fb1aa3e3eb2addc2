"""Step cost of PCGrad's gradient modes against EW: split (task by task), loop, batched, or of the representation.

    INFOMTL_DATA=../shared/data python benchmarks/pcgrad_step.py                 # tiny backbone, 6 TweetEval tasks
    INFOMTL_DATA=../shared/data python benchmarks/pcgrad_step.py --backbone minilm
    python benchmarks/pcgrad_step.py --benchmark synthetic --steps 2 --warmup 1  # smoke run, no data

Variants, each a ``Trainer`` of its own on the same seeded ``mixed`` plan (fp32, one
process, batch ``--batch-size``): ``ew``; ``pcgrad split`` (the default: each task's rows
encoded in a forward of their own, then T ``autograd.grad`` calls, each over its task's
rows only); ``pcgrad loop`` (T ``autograd.grad`` calls through the whole step's encoder
graph); ``pcgrad batched`` (``--method-args grads=batched``:
one vmapped backward over the stacked task losses); ``pcgrad rep`` (``grad_space=rep``:
gradients of the representation h, one encoder backward). After ``--warmup`` untimed
steps of each, the timed steps are interleaved (one step of every variant in turn, a
round per step of the plan), so a load that changes during the run weighs on every
variant alike; a variant's step time is the median of its rounds. Printed: the step
time, its ratio over EW's, and PASS/FAIL of every PCGrad variant against the target
``--target`` (PCGrad/EW ≤ 2.5), then the load average: the numbers are only comparable
within one run on one machine.

Expectation: loop and batched run the same T + 1 backward passes over the whole step
(batched only in fewer, larger kernels); split runs T backward passes over 1/T of the rows
each plus the final one, about two in all; rep runs one encoder backward plus T small
ones through the heads, close to EW.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, physical_cores  # noqa: E402
from stepping import add_step_options, first_steps  # noqa: E402

from infomtl.config import TrainConfig  # noqa: E402
from infomtl.training import Trainer  # noqa: E402

#: (label, method, method_args), EW first
VARIANTS: list[tuple[str, str, dict[str, str]]] = [
    ("ew", "ew", {}),
    ("pcgrad split", "pcgrad", {"grads": "split"}),
    ("pcgrad loop", "pcgrad", {"grads": "loop"}),
    ("pcgrad batched", "pcgrad", {"grads": "batched"}),
    ("pcgrad rep", "pcgrad", {"grad_space": "rep"}),
]


def build(args: argparse.Namespace, method: str, method_args: dict[str, str]) -> tuple[Trainer, list]:
    """A trainer set up for the variant, and the plan's steps."""
    tasks = None if args.benchmark == "synthetic" else args.tasks.split(",")
    config = TrainConfig(benchmark=args.benchmark, backbone=args.backbone, method=method, method_args=method_args,
                         tasks=tasks, data_dir=args.data_dir, batch_size=args.batch_size, max_length=args.max_length,
                         max_train_examples=args.train_rows, max_eval_examples=1, progress=False, seed=0, cpu=True)
    trainer = Trainer(config)
    trainer.setup(args.warmup + args.steps)
    return trainer, first_steps(trainer, args.warmup + args.steps)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per step of every variant, timed in interleaved rounds."""
    built = [(label, *build(args, method, extra)) for label, method, extra in VARIANTS]
    for _, trainer, plan in built:
        for step in plan[: args.warmup]:
            trainer.train_step(step)
    times: dict[str, list[float]] = {label: [] for label, _, _ in built}
    for k in range(args.warmup, args.warmup + args.steps):
        for label, trainer, plan in built:
            start = time.perf_counter()
            trainer.train_step(plan[k])
            times[label].append(time.perf_counter() - start)
    for label, trainer, _ in built:
        mode = getattr(trainer.method.weighting, "grads_mode", None)
        if mode is not None and label.split()[-1] in ("batched", "split") and mode != label.split()[-1]:
            print(f"  note: {label} fell back to grads={mode}")
    return {label: statistics.median(values) for label, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_options(parser, backbone="tiny")
    parser.add_argument("--benchmark", default="tweeteval", help="tweeteval (default; --tasks) or synthetic")
    parser.add_argument("--target", type=float, default=2.5, help="PASS when PCGrad/EW ≤ this (default: 2.5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or physical_cores())
    print(", ".join(f"{k}: {v}" for k, v in describe(torch.device("cpu"), torch.get_num_threads()).items()))
    print(f"backbone {args.backbone}, benchmark {args.benchmark}, batch {args.batch_size}, max length "
          f"{args.max_length}, fp32, {args.steps} interleaved timed steps after {args.warmup} per variant")
    seconds = measure(args)
    base = seconds["ew"]
    print(f"\n| variant | step (s) | × EW | target ≤ {args.target:g} |")
    print("|---|---|---|---|")
    for label, value in seconds.items():
        ratio = value / base
        verdict = "-" if label == "ew" else ("PASS" if ratio <= args.target else "FAIL")
        print(f"| {label} | {value:.4f} | {ratio:.2f} | {verdict} |")
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
