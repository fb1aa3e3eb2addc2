"""Is bf16 autocast faster than fp32 on this CPU? MiniLM-L6 forward (eval, no grad) and
forward + backward (train) per dtype, the CPU's bf16 flags, and the machine's load.

bf16 pays only on cores with bf16 instructions (x86 ``avx512_bf16`` / ``amx_bf16``, Arm
``bf16``); elsewhere autocast converts every operand and is several times slower, which is
what ``infomtl.precision`` warns about::

    python benchmarks/bf16_cpu.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from infomtl.modeling.backbones import load_backbone
from infomtl.precision import cpu_has_bf16


def step_seconds(model: torch.nn.Module, ids: torch.Tensor, train: bool, bf16: bool, repeats: int) -> float:
    """Best of ``repeats`` (after one warm-up) seconds for one forward (and backward if ``train``)."""
    mask = torch.ones_like(ids)
    model.train(train)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if train:
                model(input_ids=ids, attention_mask=mask).last_hidden_state.float().sum().backward()
            else:
                with torch.no_grad():
                    model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=int, default=32, help="tokens per row (default: 32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_backbone("minilm").encoder
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} threads, bf16 instructions: {cpu_has_bf16()}, "
          f"load before: {load:.2f}")
    for name, rows, train in (("eval forward, 128 rows", 128, False), ("train forward+backward, 32 rows", 32, True)):
        ids = torch.randint(1000, 20000, (rows, args.length))
        fp32 = step_seconds(model, ids, train, False, args.repeats)
        bf16 = step_seconds(model, ids, train, True, args.repeats)
        print(f"{name} x {args.length} tokens: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, bf16/fp32 {bf16 / fp32:.1f}x")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
