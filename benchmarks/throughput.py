"""Training and inference throughput of the methods, against a naive reference, in one run.

    python benchmarks/throughput.py                          # minilm, EW InfoMTL VIP-MTL UW PCGrad
    python benchmarks/throughput.py --quick --backbone tiny  # smoke run, well under a minute
    python benchmarks/throughput.py --dtype bf16 --json out.json

One table, one row per method, all measured in this process on the same TweetEval
training rows (``--train-rows`` per task, seeded) and the same plan of steps (the
library's ``mixed`` regime with length bucketing, epoch 1 of the seeded ``Batcher``),
after ``--warmup`` untimed steps (with ``--prime``, the default in bf16, also the timed
steps once untimed: oneDNN builds a bf16 kernel per matrix shape, and the first method to
meet a shape would pay for it), with ``torch.set_num_threads`` = physical cores:

* examples/s = rows trained / seconds; real tokens/s = their non-padding tokens /
  seconds (each example's tokens once, also for InfoMTL's two views);
* step time, and its ratio over EW's;
* padding % = 1 − real / computed tokens over all encoder calls (both views);
* model FLOP/s = model FLOPs / seconds, where per encoder call on a padded ``(B, L)``
  batch with real row lengths ``ℓ_i`` (see ``flops.py``)

      F = Σ_i ℓ_i · (6·N + 12·n_layers·L·d),

  ``N`` the encoder's non-embedding parameters (forward 2N + backward 4N per real token)
  and ``12·n_layers·L·d`` the attention over the padded length ``L`` actually computed.
  Padding tokens are not counted. InfoMTL's second dropout view is counted (it is a
  second forward/backward of the encoder rows); PCGrad's T extra per-task backward
  passes are not, nor the recomputed forwards of ``--grad-accumulation``'s checkpointed
  micro-batches (useful work = one forward + one backward per trained token);
* MFU = model FLOP/s / P, with ``P`` the machine's dense matmul peak measured at the
  start in the same dtype and thread count (best of a few ``n × n`` ``torch.matmul``);
* peak memory: the process's peak RSS during the method's steps on the CPU (reset per
  method), ``torch.cuda.max_memory_allocated`` on a GPU.

The **naive reference** (``naive.py``) trains the same model on the same rows the way
the authors' public code does (per-task random batches, tokenising inside forward,
padding to the longest text of the batch, a second encoder call for the second view,
fp32); its examples/s and ours over it are reported for EW and InfoMTL. **Inference**
(``inference.py``): one multi-task model vs T single-task models over the same texts.
Then the targets, each PASS/FAIL:

* InfoMTL ≥ 2× the naive InfoMTL reference and EW ≥ 1.8× the naive EW reference
  (examples/s; defined on the CPU);
* InfoMTL step ≤ 1.8× EW step; PCGrad step ≤ 2.5× EW step;
* padding ≤ 5% of the computed tokens (every measured method, naive references aside);
* MFU ≥ 70% for minilm fine-tuning in fp32 on the CPU (the best of the measured
  methods; the output names it).

Not a test: numbers depend on the machine; compare ratios within one run. Needs the
TweetEval data (``--data-dir`` or ``$INFOMTL_DATA``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flops import (  # noqa: E402
    Call,
    EncoderCalls,
    EncoderShape,
    mixed_step_calls,
    padded_tokens,
    same_calls,
    train_flops,
)
from inference import measure_inference  # noqa: E402
from machine import (  # noqa: E402
    current_rss_mib,
    describe,
    measure_peak,
    peak_memory_mib,
    physical_cores,
    reset_peak_memory,
    synchronize,
)
from naive import NaiveTrainer, naive_plan  # noqa: E402
from stepping import first_steps  # noqa: E402

from infomtl.config import TrainConfig  # noqa: E402
from infomtl.data.loading import prepare_data  # noqa: E402
from infomtl.tables import markdown_table  # noqa: E402
from infomtl.training import Trainer  # noqa: E402

DEFAULT_METHODS = "ew,infomtl,vipmtl,uw,pcgrad"
TASKS = "emotion,hate,irony,offensive,sentiment,stance"
#: settings of a full run and of ``--quick`` (a smoke run with the tiny backbone)
DEFAULTS = {
    "backbone": ("minilm", "tiny"),
    "steps": (20, 2),
    "warmup": (3, 1),
    "batch_size": (32, 16),
    "max_length": (128, 64),
    "train_rows": (2000, 200),
    "infer_texts": (512, 48),
    "infer_batch_size": (64, 16),
    "peak_size": (None, 1024),  # None: 2048 on a CPU, 8192 on a GPU
    "peak_reps": (5, 3),
}
TARGET_NAIVE = 2.0
TARGET_NAIVE_EW = 1.8
TARGET_INFOMTL_OVER_EW = 1.8
TARGET_PCGRAD_OVER_EW = 2.5
TARGET_PADDING = 0.05
TARGET_MFU = 0.7


# ----------------------------------------------------------------------------- measurement


@dataclass
class Measurement:
    """Totals of one method's timed steps."""

    name: str
    steps: int
    rows: int
    real_tokens: int
    computed_tokens: int
    flops: float
    seconds: float
    peak_mib: float
    views: int
    shape: EncoderShape
    #: how the encoder calls were counted: "recorded" (forward hook) or "predicted"
    accounting: str
    #: whether the host-side prediction of the calls matched the recorded ones (None: not checked)
    prediction_ok: bool | None

    @property
    def examples_s(self) -> float:
        return self.rows / self.seconds

    @property
    def tokens_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def step_s(self) -> float:
        return self.seconds / self.steps

    @property
    def flops_s(self) -> float:
        return self.flops / self.seconds

    @property
    def padding(self) -> float:
        return 1.0 - self.real_tokens * self.views / max(1, self.computed_tokens)

    def to_dict(self) -> dict[str, object]:
        return {
            **dataclasses.asdict(self), "examples_s": self.examples_s, "tokens_s": self.tokens_s,
            "step_s": self.step_s, "flops_s": self.flops_s, "padding": self.padding,
        }


def _timed(device: torch.device, steps: list, run_step) -> float:
    synchronize(device)
    start = time.perf_counter()
    for step in steps:
        run_step(step)
    synchronize(device)
    return time.perf_counter() - start


def _run(encoder: torch.nn.Module, record: bool, device: torch.device, warm: list, timed: list,
         run_step) -> tuple[float, list[Call] | None, list[Call] | None]:
    """Run the ``warm`` steps, then time the ``timed`` ones; with ``record``, also return the
    encoder calls of each part (a forward hook that keeps the masks: no host sync)."""
    if not record:
        for step in warm:
            run_step(step)
        return _timed(device, timed, run_step), None, None
    with EncoderCalls(encoder) as warm_rec:
        for step in warm:
            run_step(step)
    with EncoderCalls(encoder) as timed_rec:
        seconds = _timed(device, timed, run_step)
    return seconds, warm_rec.calls(), timed_rec.calls()


def _measure(name: str, shape: EncoderShape, predicted_warm: list[Call], predicted_timed: list[Call],
             recorded: tuple[list[Call], list[Call]] | None, **totals) -> Measurement:
    """FLOPs and computed tokens of the timed steps: from the recorded encoder calls where
    there are some (the host-side prediction is then checked against them), else predicted."""
    calls, ok = predicted_timed, None
    if recorded is not None:
        warm, timed = recorded
        ok = same_calls([*warm, *timed], [*predicted_warm, *predicted_timed])
        calls = timed
    return Measurement(
        name=name, computed_tokens=padded_tokens(calls), flops=train_flops(shape, calls), shape=shape,
        accounting="recorded" if recorded is not None else "predicted", prediction_ok=ok, **totals,
    )


def train_config(args: argparse.Namespace, method: str, mixed_precision: str) -> TrainConfig:
    """The library's config of one measured method (``--compile`` / ``--grad-accumulation`` / ``--no-packing``
    only where this version of ``TrainConfig`` has those fields)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    extra: dict[str, object] = {}
    if args.compile:
        extra["compile"] = True
    if args.grad_accumulation is not None:
        extra["grad_accumulation"] = args.grad_accumulation
    if args.no_packing:
        extra["packing"] = False
    for name in extra:
        if name not in fields:
            sys.exit(f"--{name.replace('_', '-')}: this version of infomtl's TrainConfig has no {name!r} field")
    return TrainConfig(
        backbone=args.backbone, method=method, tasks=args.tasks.split(","), data_dir=args.data_dir,
        batch_size=args.batch_size, max_length=args.max_length, max_train_examples=args.train_rows,
        max_eval_examples=1, progress=False, mixed_precision=mixed_precision, seed=args.seed,
        cpu=args.cpu, **extra,
    )


def measure_ours(
    config: TrainConfig, plan: list[list[np.ndarray]] | None, warmup: int, steps: int,
    device: torch.device, compiled: bool, prime: bool = False,
) -> tuple[Measurement, list[list[np.ndarray]], list[np.ndarray]]:
    """Time ``steps`` steps of ``plan`` after ``warmup`` untimed ones with the library's
    ``Trainer`` (``plan=None``: this trainer's own plan); with ``prime``, the timed steps
    also run once untimed first (their shapes' kernels built). Returns the measurement, the
    plan, and the training rows' lengths (to check every method trains the same rows)."""
    trainer = Trainer(config)
    trainer.setup(warmup + steps)
    if plan is None:
        plan = first_steps(trainer, warmup + steps)
    lengths = [s.lengths for s in trainer.encoded["train"]]
    model = trainer.accelerator.unwrap_model(trainer.model)
    model = getattr(model, "_orig_mod", model)
    encoder = model.encoder
    views = trainer.method.views

    def calls_of(rows: list[np.ndarray]) -> list[Call]:
        return mixed_step_calls(rows, views, config.model.chunk_tokens, getattr(model, "micro_batches", 1),
                                model.pack_base is not None)

    def step_calls(step: list[np.ndarray]) -> list[Call]:
        present = [t for t, idx in enumerate(step) if len(idx)]
        if getattr(model, "task_graphs", False) and len(present) > 1:  # grads=split: one forward per task
            return [c for t in present for c in calls_of(lengths[t][step[t]])]
        return calls_of(np.concatenate([lengths[t][idx] for t, idx in enumerate(step)]))

    predicted = [step_calls(p) for p in plan[: warmup + steps]]
    warm, timed = plan[:warmup], plan[warmup : warmup + steps]
    predicted_warm = predicted[:warmup] + (predicted[warmup:] if prime else [])
    if prime:
        warm = warm + timed
    reset_peak_memory(device)
    seconds, rec_warm, rec_timed = _run(encoder, not compiled, device, warm, timed, trainer.train_step)
    peak = peak_memory_mib(device)
    result = _measure(
        config.method.name, EncoderShape.of(encoder),
        [c for step in predicted_warm for c in step], [c for step in predicted[warmup:] for c in step],
        None if rec_warm is None else (rec_warm, rec_timed),
        steps=len(timed), rows=sum(len(idx) for p in timed for idx in p),
        real_tokens=sum(int(lengths[t][idx].sum()) for p in timed for t, idx in enumerate(p)),
        seconds=seconds, peak_mib=peak, views=views,
    )
    return result, plan, lengths


def measure_naive(config: TrainConfig, warmup: int, steps: int, device: torch.device) -> Measurement:
    """Time the naive reference (``naive.py``): ``steps`` per-task batches after ``warmup``."""
    naive = NaiveTrainer(config, device)
    views = naive.method.views
    warm = naive_plan(naive.sizes, config.batching.batch_size, warmup, config.run.seed + 1)
    timed = naive_plan(naive.sizes, config.batching.batch_size, steps, config.run.seed)
    step_lengths = [naive.token_lengths(t, rows) for t, rows in [*warm, *timed]]
    predicted = [Call(x, int(x.max())) for x in step_lengths for _ in range(views)]
    reset_peak_memory(device)
    seconds, rec_warm, rec_timed = _run(naive.encoder, True, device, warm, timed,
                                        lambda step: naive.train_step(*step))
    peak = peak_memory_mib(device)
    return _measure(
        f"naive-{config.method.name}", EncoderShape.of(naive.encoder),
        predicted[: warmup * views], predicted[warmup * views :], (rec_warm, rec_timed),
        steps=len(timed), rows=sum(len(r) for _, r in timed),
        real_tokens=sum(int(x.sum()) for x in step_lengths[warmup:]),
        seconds=seconds, peak_mib=peak, views=views,
    )


# ----------------------------------------------------------------------------- report


def targets(results: dict[str, Measurement], naive: dict[str, Measurement], peak: float,
            args: argparse.Namespace, device: torch.device) -> list[dict[str, object]]:
    """The issue's targets, each with its measured value, PASS/FAIL and the caveats."""
    out = []

    def add(name: str, value: float | None, passed: bool | None, shown: str, conditions: list[str]) -> None:
        status = "n/a" if passed is None else ("PASS" if passed else "FAIL")
        out.append({"target": name, "value": value, "status": status, "shown": shown,
                    "caveat": "; ".join(conditions)})

    cpu_note = [] if device.type == "cpu" else [f"target defined on the CPU, this run on {device.type}"]
    for method, label, floor in (("infomtl", "InfoMTL", TARGET_NAIVE), ("ew", "EW", TARGET_NAIVE_EW)):
        name = f"{label} ≥ {floor:g}× the naive reference (examples/s)"
        if method in results and f"naive-{method}" in naive:
            ratio = results[method].examples_s / naive[f"naive-{method}"].examples_s
            add(name, ratio, ratio >= floor, f"{ratio:.2f}×", cpu_note)
        else:
            add(name, None, None, f"{method} or its naive reference not measured", [])
    for method, label, limit in (("infomtl", "InfoMTL", TARGET_INFOMTL_OVER_EW),
                                 ("pcgrad", "PCGrad", TARGET_PCGRAD_OVER_EW)):
        name = f"{label} step ≤ {limit:g}× EW step"
        if method in results and "ew" in results:
            ratio = results[method].step_s / results["ew"].step_s
            add(name, ratio, ratio <= limit, f"{ratio:.2f}×", [])
        else:
            add(name, None, None, f"ew or {method} not measured", [])
    worst = max(results.values(), key=lambda m: m.padding)
    add(f"padding ≤ {TARGET_PADDING:.0%} of the computed tokens (every method)", worst.padding,
        worst.padding <= TARGET_PADDING, f"{worst.padding:.1%} ({worst.name})", [])
    best = max(results.values(), key=lambda m: m.flops_s)
    mfu = best.flops_s / peak
    conditions = list(cpu_note)
    if args.dtype != "fp32":
        conditions.append(f"target defined in fp32, this run in {args.dtype}")
    if args.backbone != "minilm":
        conditions.append(f"target defined for minilm, this run on {args.backbone}")
    add(f"MFU ≥ {TARGET_MFU:.0%} (best measured method)", mfu, mfu >= TARGET_MFU,
        f"{mfu:.1%} ({best.name})", conditions)
    return out


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}".replace(",", "")


def render(args: argparse.Namespace, info: dict[str, object], peak_text: str, peak: float,
           shape: EncoderShape, results: dict[str, Measurement], naive: dict[str, Measurement],
           inference: dict[str, dict[str, float]] | None, goals: list[dict[str, object]],
           device: torch.device, rss_start: float | None, memory_resettable: bool) -> str:
    lines = []
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    lines.append(
        f"machine: {info['cpu']}, {info['physical_cores']} physical cores ({info['logical_cpus']} logical){gpu}; "
        f"torch {info['torch']}, device {info['device']}, {info['threads']} threads, dtype {args.dtype}"
        + (", torch.compile" if args.compile else "")
    )
    lines.append(f"measured peak: {peak_text}")
    lines.append(
        f"backbone {args.backbone}: N = {shape.n_params:,} non-embedding parameters, "
        f"{shape.n_layers} layers, d = {shape.d_model}"
    )
    lines.append(
        f"data: TweetEval {args.tasks}, {args.train_rows} training rows per task (seed {args.seed}); "
        f"batch {args.batch_size}, max length {args.max_length}; {args.warmup} warm-up + {args.steps} timed "
        f"steps{' (primed: each run once untimed first)' if args.prime else ''}, the same mixed-regime, "
        f"length-bucketed step plan for every method"
    )
    if rss_start is not None and device.type == "cpu":
        lines.append(f"process RSS before the first method: {rss_start:.0f} MiB")
    lines.append("")
    ref_name = "ew" if "ew" in results else next(iter(results))
    ref = results[ref_name].step_s
    mem_col = "peak alloc MiB" if device.type == "cuda" else "peak RSS MiB"
    headers = ["method", "examples/s", "real tokens/s", "step ms", f"step / {ref_name.upper()}",
               "padding %", "model GFLOP/s", "MFU %", mem_col]
    rows = []
    for m in [*results.values(), *naive.values()]:
        rows.append([
            m.name, fmt(m.examples_s), fmt(m.tokens_s, 1), fmt(m.step_s * 1000, 1), fmt(m.step_s / ref),
            fmt(100 * m.padding, 1), fmt(m.flops_s / 1e9), fmt(100 * m.flops_s / peak, 1), fmt(m.peak_mib, 0),
        ])
    lines.append(markdown_table(headers, rows))
    lines.append("")
    if naive:
        parts = []
        for name, m in naive.items():
            ours = results.get(name.removeprefix("naive-"))
            if ours is not None:
                parts.append(f"{ours.name} {ours.examples_s / m.examples_s:.2f}× examples/s "
                             f"({ours.tokens_s / m.tokens_s:.2f}× real tokens/s)")
        if parts:
            lines.append("ours / naive reference: " + "; ".join(parts))
            lines.append(
                f"naive reference: {naive_steps(args)} timed per-task random batches of {args.batch_size} "
                "(tasks round-robin), tokenised in forward, padded to the batch's longest text, "
                "a second encoder call for InfoMTL's second view, fp32, plain PyTorch loop"
            )
            lines.append("")
    if inference is not None:
        multi, single = inference["multi-task"], inference["single-task"]
        t = single["encoder_passes"]
        lines.append(f"inference: {multi['texts']} texts (TweetEval test rows), all {t} tasks, "
                     f"batches of {args.infer_batch_size}, tokenisation included")
        lines.append(markdown_table(
            ["model", "texts/s", "real tokens/s", "encoder passes", "seconds", "speed-up"],
            [
                ["one multi-task model", fmt(multi["texts_s"]), fmt(multi["tokens_s"], 1), "1",
                 fmt(multi["seconds"]), fmt(multi["texts_s"] / single["texts_s"])],
                [f"{t} single-task models", fmt(single["texts_s"]), fmt(single["tokens_s"], 1), str(t),
                 fmt(single["seconds"]), "1.00"],
            ],
        ))
        lines.append("")
    lines.append("targets:")
    for g in goals:
        caveat = f"  [note: {g['caveat']}]" if g["caveat"] else ""
        lines.append(f"  [{g['status']}] {g['target']}: {g['shown']}{caveat}")
    lines.append("")
    measured = [*results.values(), *naive.values()]
    checked = [m for m in measured if m.prediction_ok is not None]
    predicted = [m.name for m in measured if m.accounting == "predicted"]
    if predicted:
        lines.append(f"encoder calls of {', '.join(predicted)}: predicted on the host from the step plan "
                     "(a compiled encoder is not hooked)")
    if checked:
        bad = [m.name for m in checked if not m.prediction_ok]
        lines.append(
            "encoder calls: recorded with a forward hook; host-side prediction "
            + ("matches for every recorded method" if not bad
               else f"DIFFERS for {', '.join(bad)} (recorded calls used)")
        )
    lines.append(
        "counted: model FLOPs per encoder call = Σ over real (non-padding) tokens of "
        "6·N + 12·n_layers·L·d, L = the padded length of that call (attention over padding keys "
        "counted, padding tokens' own work not); InfoMTL's second view counts (two views of "
        "every row); PCGrad's T extra per-task backward passes do not (useful work: one forward + "
        "one backward), so its MFU shows that overhead; nor do the recomputed forwards of "
        "--grad-accumulation's checkpointed micro-batches, heads, losses, optimizer or "
        "tokenisation. real tokens/s counts each example once. MFU = model FLOP/s / measured peak."
    )
    if device.type == "cpu":
        lines.append(
            "memory: peak RSS of the whole process during the method's warm-up and timed steps"
            + (" (high-water mark reset per method)" if memory_resettable
               else " (process-wide maximum: could not be reset, grows from row to row)")
        )
    else:
        lines.append("memory: torch.cuda.max_memory_allocated during the method's warm-up and timed steps")
    return "\n".join(
        line if line.startswith("|") else textwrap.fill(line, 110, subsequent_indent="  ", break_on_hyphens=False)
        for line in "\n".join(lines).split("\n")
    )


def naive_steps(args: argparse.Namespace) -> int:
    """Timed steps of the naive reference: ``--steps`` rounded up to whole rounds of the tasks."""
    tasks = len(args.tasks.split(","))
    return math.ceil(args.steps / tasks) * tasks


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", help="encoder (alias, hub id or path); default minilm, tiny with --quick")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--data-dir", default=None, help="folder holding tweeteval/ (default $INFOMTL_DATA)")
    parser.add_argument("--steps", type=int, help="timed steps per method (default 20)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (default 3)")
    parser.add_argument("--batch-size", type=int, help="rows per step (default 32)")
    parser.add_argument("--max-length", type=int, help="truncation length (default 128)")
    parser.add_argument("--train-rows", type=int, help="training rows per task (default 2000)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                        help="training dtype (bf16 = autocast; the naive reference stays fp32)")
    parser.add_argument("--prime", action=argparse.BooleanOptionalAction, default=None,
                        help="run each method's timed steps once untimed first, so that every step shape's "
                        "kernels exist (default: on with --dtype bf16, where oneDNN builds a kernel per shape)")
    parser.add_argument("--compile", action="store_true",
                        help="TrainConfig.compile: torch.compile the encoder "
                        "(give a larger --warmup: the first shapes compile)")
    parser.add_argument("--grad-accumulation", type=int, default=None,
                        help="TrainConfig.grad_accumulation: encoder micro-batches per step (checkpointed)")
    parser.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive reference")
    parser.add_argument("--no-packing", action="store_true",
                        help="the library's steps in length-sorted padded chunks instead of packed rows")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference comparison")
    parser.add_argument("--infer-texts", type=int, help="texts of the inference comparison (default 512)")
    parser.add_argument("--infer-batch-size", type=int, help="rows per inference forward (default 64)")
    parser.add_argument("--peak-size", type=int, help="n of the n×n matmul peak (default 2048 CPU, 8192 GPU)")
    parser.add_argument("--peak-reps", type=int, help="timed matmuls of the peak (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny settings, < 1 min with tiny")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("steps", "batch_size", "max_length", "train_rows", "infer_texts", "infer_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.prime is None:
        args.prime = args.dtype == "bf16"
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    mixed_precision = {"fp32": "no", "bf16": "bf16"}[args.dtype]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    info = describe(device, threads)
    size = args.peak_size or (8192 if device.type == "cuda" else 2048)
    print("measuring the matmul peak ...", file=sys.stderr, flush=True)
    peak = measure_peak(dtype, device, size, args.peak_reps)
    rss_start = current_rss_mib()
    memory_resettable = reset_peak_memory(device)

    results: dict[str, Measurement] = {}
    plan: list[list[np.ndarray]] | None = None
    reference: list[np.ndarray] | None = None
    for method in methods:
        print(f"timing {method} ...", file=sys.stderr, flush=True)
        config = train_config(args, method, mixed_precision)
        result, plan, lengths = measure_ours(config, plan, args.warmup, args.steps, device, args.compile, args.prime)
        if reference is None:
            reference = lengths
        elif not all(np.array_equal(a, b) for a, b in zip(reference, lengths, strict=True)):
            sys.exit(f"{method}: its training rows differ from the first method's; the plan does not apply")
        results[result.name] = result
    shape = next(iter(results.values())).shape

    naive: dict[str, Measurement] = {}
    if not args.no_naive:
        for method in [m for m in ("ew", "infomtl") if m in methods]:
            print(f"timing naive {method} ...", file=sys.stderr, flush=True)
            m = measure_naive(train_config(args, method, "no"), args.warmup, naive_steps(args), device)
            naive[m.name] = m

    inference = None
    if not args.no_inference:
        print("timing inference ...", file=sys.stderr, flush=True)
        per_task = math.ceil(args.infer_texts / len(args.tasks.split(",")))
        config = dataclasses.replace(train_config(args, "ew", "no"), max_eval_examples=per_task)
        data = prepare_data(config)
        texts = [x for t in data.tasks for x in data.splits[t.name]["test"].texts][: args.infer_texts]
        inference = measure_inference(
            args.backbone, config.model.pooling, args.max_length, list(data.tasks), texts,
            args.infer_batch_size, device, dtype if args.dtype != "fp32" else None, args.seed,
        )

    goals = targets(results, naive, peak.flops_per_s, args, device)
    print(render(args, info, peak.describe(), peak.flops_per_s, shape, results, naive, inference, goals,
                 device, rss_start, memory_resettable))
    report = {
        "machine": info,
        "peak": dataclasses.asdict(peak),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "encoder": dataclasses.asdict(shape),
        "methods": {k: m.to_dict() for k, m in results.items()},
        "naive": {k: m.to_dict() for k, m in naive.items()},
        "inference": inference,
        "targets": goals,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
