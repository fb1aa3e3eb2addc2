"""``infomtl autosem``: AutoSeM's task sampling and mixing ratios (:mod:`infomtl.experiments.autosem`)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from infomtl.cli.train import add_train_options, config_from_args


def cmd_autosem(args: argparse.Namespace) -> int:
    from infomtl.experiments.autosem import run_autosem

    config = config_from_args(args)
    if args.quiet and config.run.progress is None:
        config.run.progress = False
    result = run_autosem(config, trials=args.trials, candidates=args.candidates)
    print(result.table())
    best = result.best
    print(f"\nchosen ratios (trial {best.number}, val {result.scored_on} {best.score:.2f}): "
          + ",".join(f"{n}={r:.3f}" for n, r in best.ratios.items()))
    print(f"search folder: {result.folder}")
    print(f"train with them: infomtl train --config {shlex.quote(str(result.folder / 'ratios.yaml'))} "
          "--output-dir DIR")
    return 0


def add_autosem_command(sub: Any) -> None:
    """The ``autosem`` command."""
    parser = sub.add_parser(
        "autosem", help="AutoSeM: Thompson sampling over tasks, then mixing ratios by Bayesian optimisation",
        description=(
            "AutoSeM (Guo et al., NAACL 2019) with the options of `infomtl train`: stage 1 trains one run in the "
            "autosem regime (Thompson sampling over the tasks, rewarded when the --primary-task's validation "
            "score, or the validation Avg, improves); stage 2 trains --trials runs in the ratios regime, the "
            "first with the stage-1 posterior means as ratios, the next ones proposed by a Gaussian process "
            "(expected improvement), each scored on the validation split. Writes OUTPUT_DIR/stage1/, "
            "trial-N/, autosem.json (arms, trials, chosen ratios) and ratios.yaml (the best trial's options); "
            "run the same command again to continue. Give short runs (e.g. --epochs 2)."))
    search = parser.add_argument_group("search options")
    search.add_argument("--trials", type=int, default=5, metavar="N",
                        help="stage-2 training runs, the first with the stage-1 ratios (default: 5)")
    search.add_argument("--candidates", type=int, default=1000, metavar="N",
                        help="random points of the simplex each proposal scores by expected improvement "
                        "(default: 1000)")
    add_train_options(parser)
    parser.set_defaults(func=cmd_autosem)
