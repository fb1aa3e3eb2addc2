"""Resident memory of a predictor over many batches of different shapes.

    python benchmarks/predict_memory.py MODEL --precision bf16                   # today's predictor
    python benchmarks/predict_memory.py MODEL --precision bf16 --shape-step 0 --no-trim   # without either

``--batches`` predictions of 1–32 random TweetEval test tweets each (seeded), one after
the other in this process, with ``torch`` threads = physical cores. Printed: the resident
size's growth over the first prediction's, every ``--every`` batches, the heap trims made
(:mod:`infomtl.inference.heap`), the shape step (:attr:`infomtl.inference.predict.Predictor.shape_step`)
and the wall time. ``--shape-step N`` / ``--no-trim`` override the predictor's own choices,
to measure what each does.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import physical_cores  # noqa: E402
from serve_load import tweets  # noqa: E402

import infomtl  # noqa: E402
from infomtl.inference.heap import HeapTrimmer, resident_bytes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="run or export folder")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--shape-step", type=int, default=None, help="override the predictor's shape step")
    parser.add_argument("--no-trim", action="store_true", help="never give freed heap memory back")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(physical_cores())
    pool = tweets(args.data_dir, 1000)
    predictor = infomtl.load(args.model, precision=args.precision)
    if args.shape_step is not None:
        predictor.shape_step = args.shape_step
    if args.no_trim:
        predictor.heap = HeapTrimmer(growth_mib=2.0**40)  # never reached
    rng = random.Random(0)
    predictor.predict(pool[:8])
    base = resident_bytes() or 0
    start = time.perf_counter()
    print(f"precision {predictor.precision}, shape step {predictor.shape_step}, trim "
          f"{'off' if args.no_trim else 'on'}, {torch.get_num_threads()} threads")
    for k in range(1, args.batches + 1):
        predictor.predict(rng.sample(pool, rng.randint(1, 32)))
        if k % args.every == 0:
            grown = ((resident_bytes() or 0) - base) / 2**20
            print(f"after {k} batches: RSS {grown:+.1f} MiB, trims {predictor.heap.trims}")
    print(f"wall {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
