"""``infomtl sweep`` and ``report``: grids of runs into a results store, and its tables."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from infomtl.errors import InfomtlError


def cmd_sweep(args: argparse.Namespace) -> int:
    from infomtl.experiments.plan import load_sweep, select_runs
    from infomtl.experiments.sweep import RayOptions, describe_runs, run_sweep

    if args.dry_run:
        print(describe_runs(select_runs(load_sweep(args.config), args.only, args.order), args.store))
        return 0
    ray = None
    if args.engine == "ray":
        if args.cpus_per_run <= 0 or args.gpus_per_run < 0:
            raise InfomtlError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
        ray = RayOptions(args.ray_address, args.cpus_per_run, args.gpus_per_run)
    summary = run_sweep(args.config, args.store, workers=args.workers, ray=ray, only=args.only, order=args.order)
    print(f"{summary.total} runs: {summary.skipped} already finished, {len(summary.finished)} trained, "
          f"{len(summary.failed)} failed"
          + (f", {len(summary.busy)} left to another sweep on the store" if summary.busy else "")
          + f"; store: {args.store}")
    if summary.failed:
        print(f"error: {len(summary.failed)} run(s) failed; run the same command again to retry them",
              file=sys.stderr)
        return 1
    return 0


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]; anything else a one-line usage error."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds such as 0,1,2, got {text!r}")
    return seeds


def cmd_report(args: argparse.Namespace) -> int:
    from infomtl.experiments.report import write_report

    markdown, written = write_report(args.store, args.out, baseline=args.baseline, plots=args.plots,
                                     seeds=args.seeds)
    print(markdown)
    print(f"wrote {len(written)} files to {written[0].parent if written else args.out}")
    return 0


def add_experiment_commands(sub: Any) -> None:
    """The ``sweep`` and ``report`` commands."""
    sweep = sub.add_parser("sweep", help="run a grid of runs into a results store (resumable)", description=(
        "Expand a sweep YAML (methods with hyperparameter grids x seeds x training ratios x "
        "benchmarks x backbones), validate every run, and train the unfinished ones into "
        "STORE/runs/<id>/. Run the same command again to resume after a kill."))
    sweep.add_argument("config", help="sweep YAML (see configs/sweeps/)")
    sweep.add_argument("--store", required=True, help="results store folder (created if new)")
    sweep.add_argument("--workers", type=int, default=1,
                       help="parallel training processes on this machine (default: 1, in-process)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and which are finished; train nothing")
    sweep.add_argument("--only", action="append", default=None, metavar="LABEL",
                       help="train only the rows with this label (repeatable; default: every row)")
    sweep.add_argument("--order", choices=("rows", "seeds"), default="rows",
                       help="rows: runs as the file lists them; seeds: every row's first seed first, so a "
                       "sweep stopped part-way holds a comparison over fewer seeds (default: rows)")
    sweep.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine (--workers processes); ray: one Ray task per run on a "
                       "Ray cluster, store on a shared file system (needs infomtl[ray]; default: local)")
    sweep.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help="Ray cluster to join, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS, "
                       "else a local Ray instance)")
    sweep.add_argument("--cpus-per-run", type=float, default=1.0, metavar="N",
                       help="CPUs a run holds on Ray (also its torch threads; default: 1)")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0, metavar="N",
                       help="GPUs a run holds on Ray (default: 0)")
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser("report", help="tables (Markdown, CSV, LaTeX) and plots from a results store",
                            description="Select each method's grid point by mean validation Avg over seeds "
                            "and write the tables of its test results: overall (Avg, Δp, significance), "
                            "per-task, data-ratio, ablation and task-pair tables when the store holds such "
                            "runs, and the tables of analyses found in the store (robustness, "
                            "representations, information plane); report.md gathers them all.")
    report.add_argument("store", help="results store written by `infomtl sweep`")
    report.add_argument("--out", default=None, help="folder for the tables and plots (default: STORE/report)")
    report.add_argument("--baseline", default=None,
                        help="label of the Δp / significance baseline (default: the EW run)")
    report.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="write PNG plots (needs matplotlib; default: on)")
    report.add_argument("--seeds", type=_seed_list, default=None, metavar="S,S,...",
                        help="report only the runs of these seeds, the others as if not planned (a sweep stopped "
                             "part-way with --order seeds; default: every planned seed)")
    report.set_defaults(func=cmd_report)
