"""``infomtl train``, ``evaluate``, ``demo``, ``methods`` and ``download``: training a run
and what goes with it."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from infomtl.cli.common import add_config_options, config_values, print_results
from infomtl.config import TrainConfig
from infomtl.data.paths import default_cache_root


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, one flag per :class:`TrainConfig` field, and ``--ablate`` (``infomtl train``, ``autosem``)."""
    add_config_options(parser, TrainConfig)
    ablation = parser.add_argument_group("ablations")
    ablation.add_argument(
        "--ablate", metavar="COMPONENTS", default=argparse.SUPPRESS,
        help="comma-separated components of the method to switch off, as the papers' ablations "
        "(`infomtl methods` lists each method's, e.g. simax,timin for infomtl); "
        "--no-COMPONENT is the same as --ablate COMPONENT")


def config_from_args(args: argparse.Namespace):
    """Merge ``--config`` YAML and the flags given (flags win) into a validated config."""
    values, source = config_values(args, TrainConfig)
    config = TrainConfig.from_dict(values, source)
    if getattr(args, "ablate", None):
        from infomtl.methods import ablation_args  # torch: only when asked for

        components = [n for n in str(args.ablate).split(",") if n.strip()]
        config.method.args = {**config.method.args, **ablation_args(config.method.name, components)}
    return config.validate()


def cmd_train(args: argparse.Namespace) -> int:
    from infomtl.distributed import is_main_process
    from infomtl.training import train

    config = config_from_args(args)
    if getattr(args, "quiet", False) and config.run.progress is None:  # --quiet: no bars either, unless asked
        config.run.progress = False
    if config.run.resume is not None:
        kept = ("command", "func", "resume", "quiet", "threads", "progress")  # not options of the run
        ignored = sorted(k for k, v in vars(args).items() if k not in kept and v is not None)
        if ignored:
            print(f"note: --resume takes the run's options from {config.run.resume}/config.yaml; ignoring "
                  + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    result = train(config)
    if is_main_process():  # under torchrun / accelerate launch every process gets here
        print_summary(result.results, result.run_dir)
    return 0


def print_summary(results: dict[str, Any], run_dir: Path) -> None:
    """The closing summary of ``infomtl train``: per-task val and test scores with their
    Avg, every task the final model predicts (nearly) one answer for, the run folder and
    the command that predicts with it."""
    print_results(results)
    for message in results.get("collapse", []):
        print(f"warning: {message}")
    print(f"run folder: {run_dir}")
    print(f"predict with it: infomtl predict {shlex.quote(str(run_dir))} --input texts.txt"
          "  (one text per line; .jsonl and .tsv are read too)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from infomtl.artifacts.evaluation import evaluate_run

    scored = evaluate_run(args.run_dir, args.split, data_dir=args.data_dir, batch_size=args.batch_size)
    print_results({args.split: scored}, splits=(args.split,))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infomtl.experiments.demo import run_demo

    progress = False if args.quiet and args.progress is None else args.progress
    print(run_demo(data_dir=args.data_dir, backbone=args.backbone, epochs=args.epochs,
                   seed=args.seed, output_dir=args.output_dir, progress=progress, threads=args.threads))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from infomtl.methods.listing import describe_methods

    print(describe_methods())
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from infomtl.data.download import download_tweeteval

    root = Path(args.data_dir) if args.data_dir else default_cache_root()
    folder = download_tweeteval(root)
    print(f"TweetEval saved to {folder}; use --data-dir {root} or INFOMTL_DATA={root}")
    return 0


def add_train_commands(sub: Any) -> None:
    """The ``train``, ``evaluate`` and ``demo`` commands."""
    train = sub.add_parser("train", help="train one run", description=(
        "Train one multi-task run. Options come from --config YAML and flags (flags win). "
        "Writes a run folder: config.yaml, run.json, log.jsonl, checkpoint/, results.json, "
        "predictions/{split}/{task}.txt. With --method stl or stl-cnn: one such folder per "
        "task inside the run folder, and one combined results.json."))
    add_train_options(train)
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="re-score a saved run on a split",
                        description="Rebuild a run's best checkpoint and score it on a split.")
    ev.add_argument("run_dir", help="run folder written by `infomtl train`")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"),
                    help="split to score (default: test)")
    ev.add_argument("--data-dir", default=None, help="data root, if it moved since training (default: the run's)")
    ev.add_argument("--batch-size", type=int, default=256, help="rows per batch (default: 256)")
    ev.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="a short EW vs InfoMTL comparison that runs offline",
                          description="Train EW and InfoMTL briefly and print a comparison table: on a "
                          "built-in synthetic multi-task text set, or on TweetEval slices with --data-dir.")
    demo.add_argument("--data-dir", default=None, help="data root holding tweeteval/ (default: synthetic data)")
    demo.add_argument("--backbone", default="tiny", help="encoder (default: tiny)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per method (default: 10 synthetic, 2 TweetEval)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--output-dir", default=None, help="folder for the two runs (default: under runs/)")
    demo.add_argument("--threads", type=int, default=None, metavar="N",
                      help="CPU threads of each run (default: 1 with the tiny backbone, else as in train)")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress bars on stderr (default: on when stderr is a terminal)")
    demo.set_defaults(func=cmd_demo)



def add_tool_commands(sub: Any) -> None:
    """The ``methods`` and ``download`` commands."""
    methods = sub.add_parser("methods", help="list the training methods and their hyperparameters")
    methods.set_defaults(func=cmd_methods)

    dl = sub.add_parser("download", help="fetch TweetEval from its public source (needs the network)")
    dl.add_argument("benchmark", choices=("tweeteval",), help="benchmark to fetch")
    dl.add_argument("--data-dir", default=None, help="data root to write into (default: the cache folder)")
    dl.set_defaults(func=cmd_download)
