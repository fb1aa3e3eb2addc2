"""Step cost and memory of learning to share: no sharing, a layer mixture, cross-stitch units.

    INFOMTL_DATA=../shared/data python benchmarks/sharing_cost.py                 # minilm, 6 TweetEval tasks
    python benchmarks/sharing_cost.py --backbone tiny --steps 2 --warmup 1        # smoke run

Every variant trains the same steps (the first ``--warmup + --steps`` of the seeded
``mixed`` plan over ``--train-rows`` rows per task) with the library's ``Trainer`` (EW, fp32,
batch ``--batch-size``), in one process, one after another: ``none`` (every head reads the
last layer), ``layer-mix`` (each task a mixture of every layer: ``output_hidden_states``),
``cross-stitch K`` for each K in ``--stitch-layers`` (T copies of the top K layers: every
copy runs on every row). Printed per variant: the step time and its ratio over ``none``'s,
the trainable parameters (and their increase), and the peak RSS during its steps (the
process's high-water mark, reset per variant where the kernel allows; on the CPU it is the
largest the process has been so far, so variants run from the lightest to the heaviest),
then the load average: the numbers are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, peak_memory_mib, physical_cores, reset_peak_memory  # noqa: E402
from stepping import add_step_options, first_steps  # noqa: E402

from infomtl.config import TrainConfig  # noqa: E402
from infomtl.training import Trainer  # noqa: E402


def variants(stitch_layers: list[int]) -> list[tuple[str, dict[str, object]]]:
    """The measured variants, lightest first."""
    out: list[tuple[str, dict[str, object]]] = [("none", {}), ("layer-mix", {"share": "layer-mix"})]
    out += [(f"cross-stitch K={k}", {"share": "cross-stitch", "share_layers": k}) for k in stitch_layers]
    return out


def measure(args: argparse.Namespace, extra: dict[str, object]) -> dict[str, float]:
    """Seconds per step, trainable parameters and peak RSS (MiB) of one variant."""
    config = TrainConfig(backbone=args.backbone, method="ew", tasks=args.tasks.split(","), data_dir=args.data_dir,
                         batch_size=args.batch_size, max_length=args.max_length, max_train_examples=args.train_rows,
                         max_eval_examples=1, progress=False, seed=0, cpu=True, **extra)  # type: ignore[arg-type]
    trainer = Trainer(config)
    trainer.setup(args.warmup + args.steps)
    plan = first_steps(trainer, args.warmup + args.steps)
    for step in plan[: args.warmup]:
        trainer.train_step(step)
    reset_peak_memory(torch.device("cpu"))
    start = time.perf_counter()
    for step in plan[args.warmup : args.warmup + args.steps]:
        trainer.train_step(step)
    seconds = (time.perf_counter() - start) / args.steps
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"step_s": seconds, "params": float(params), "peak_mib": peak_memory_mib(torch.device("cpu"))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_options(parser, backbone="minilm")
    parser.add_argument("--stitch-layers", default="1,2", help="comma-separated K of cross-stitch (default: 1,2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or physical_cores())
    print(", ".join(f"{k}: {v}" for k, v in describe(torch.device("cpu"), torch.get_num_threads()).items()))
    print(f"backbone {args.backbone}, tasks {args.tasks}, batch {args.batch_size}, max length {args.max_length}, "
          f"fp32, EW, {args.steps} timed steps after {args.warmup}, {torch.get_num_threads()} threads")
    rows = []
    for name, extra in variants([int(k) for k in args.stitch_layers.split(",")]):
        rows.append((name, measure(args, extra)))
        print(f"  measured {name}", flush=True)
    base = rows[0][1]
    print("\n| variant | step (s) | × none | trainable params (M) | + params (M) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['step_s']:.3f} | {m['step_s'] / base['step_s']:.2f} | {m['params'] / 1e6:.2f} | "
              f"{(m['params'] - base['params']) / 1e6:+.2f} | {m['peak_mib']:.0f} |")
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
