"""``infomtl analyze``: the papers' analyses of trained runs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infomtl.cli.common import Parser
from infomtl.errors import InfomtlError
from infomtl.experiments.store import store_run_name
from infomtl.fileio import write_json
from infomtl.tables import markdown_table


def _run_labels(run_dirs: Sequence[str]) -> dict[str, str]:
    """A short unique label per run folder: a store run's label and seed from the store's plan,
    else the folder's name, else its path."""
    names = [store_run_name(d) or Path(d).name or d for d in run_dirs]
    return {d: (n if names.count(n) == 1 else d) for d, n in zip(run_dirs, names, strict=True)}


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InfomtlError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _write_json(path: Path, data: Any) -> None:
    from infomtl.analysis.common import nan_to_none

    write_json(path, nan_to_none(data))


def cmd_analyze_robustness(args: argparse.Namespace) -> int:
    from infomtl.analysis import robustness
    from infomtl.analysis.common import out_folder, write_csv
    from infomtl.artifacts.run_folder import load_run

    strengths = _floats(args.strengths, "--strengths")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    dirs = list(dict.fromkeys([*args.run_dirs, *([args.reference] if args.reference else [])]))
    labels = _run_labels(dirs)
    runs = [load_run(d) for d in dirs]  # every folder is checked before any work
    results = {
        labels[d]: robustness.robust_scores(run, args.split, strengths, kinds, seed=args.seed,
                                            max_examples=args.max_examples, batch_size=args.batch_size)
        for d, run in zip(dirs, runs, strict=True)
    }
    ref = labels[args.reference] if args.reference else None
    summary = {label: {k: robustness.average_increase(res, results[ref], k) for k in kinds}
               for label, res in results.items() if ref and label != ref}
    folder = out_folder(args.out, Path(dirs[0]) / "analysis")
    _write_json(folder / "robustness.json", {"reference": ref, "results": results, "average_increase": summary})
    write_csv(folder / "robustness.csv", ["run", "kind", "strength", "task", "score"], robustness.rows(results))
    for kind in kinds:
        keys = list(next(iter(results.values()))["kinds"][kind])
        rows = [[label, *[res["kinds"][kind][k]["avg"] for k in keys],
                 *([summary[label][kind] if label in summary else "-"] if ref else [])]
                for label, res in results.items()]
        headers = ["run", *[f"ε={k}" for k in keys], *([f"Δ vs {ref}"] if ref else [])]
        rows = [[("-" if isinstance(v, float) and math.isnan(v) else v) for v in r] for r in rows]
        print(f"{kind} perturbation, {args.split} Avg:")
        print(markdown_table(headers, rows))
        print()
    png = robustness.plot(results, folder / "robustness.png")
    print(f"wrote robustness.json, robustness.csv{', robustness.png' if png else ''} to {folder}")
    return 0


def cmd_analyze_representations(args: argparse.Namespace) -> int:
    from infomtl.analysis import representations
    from infomtl.analysis.common import out_folder, write_csv
    from infomtl.artifacts.run_folder import load_run

    labels = _run_labels(args.run_dirs)
    runs = [load_run(d) for d in labels]
    results = {
        labels[d]: representations.representation_quality(
            run, args.split, args.max_examples, seed=args.seed, batch_size=args.batch_size)
        for d, run in zip(labels, runs, strict=True)
    }
    headers, rows = representations.table(results)
    folder = out_folder(args.out, Path(args.run_dirs[0]) / "analysis")
    _write_json(folder / "representations.json", results)
    write_csv(folder / "representations.csv", headers, rows)
    shown = [[("-" if isinstance(v, float) and math.isnan(v) else v) for v in r] for r in rows]
    print(markdown_table(headers, shown, digits=3))
    skipped = sorted({n for r in results.values() for n in r["skipped"]})
    if skipped:
        print(f"no ARI/silhouette for non-classification task(s): {', '.join(skipped)}")
    print(f"wrote representations.json, representations.csv to {folder}")
    return 0


def _analyze_logs(
    args: argparse.Namespace, name: str, read: Any, rows: Any, plot: Any, columns: list[str]
) -> int:
    """An analysis read from the runs' logs: ``NAME.json``, ``NAME.csv`` and its plots."""
    from infomtl.analysis.common import out_folder, write_csv

    labels = _run_labels(args.run_dirs)
    data = {labels[d]: read(d) for d in labels}
    folder = out_folder(args.out, Path(args.run_dirs[0]) / "analysis")
    _write_json(folder / f"{name}.json", data)
    write_csv(folder / f"{name}.csv", columns, rows(data))
    written = plot(data, folder)
    files = [f"{name}.json", f"{name}.csv", *(p.name for p in written)]
    print(f"wrote {', '.join(files)} to {folder}")
    return 0


def cmd_analyze_curves(args: argparse.Namespace) -> int:
    from infomtl.analysis import curves

    return _analyze_logs(args, "curves", curves.read_curves, curves.rows, curves.plot,
                         ["run", "epoch", "series", "task", "value"])


def cmd_analyze_information(args: argparse.Namespace) -> int:
    from infomtl.analysis import information

    return _analyze_logs(args, "information", information.read_information, information.rows,
                         information.plot, ["run", "epoch", "selected", "ixz", "task", "izzt"])


def cmd_analyze_sharing(args: argparse.Namespace) -> int:
    from infomtl.analysis import sharing

    return _analyze_logs(args, "sharing", sharing.read_sharing, sharing.rows, sharing.plot,
                         ["run", "epoch", "kind", "task", "index", "source", "value"])


def add_analyze_command(sub: Any) -> None:
    """The ``analyze`` command and its analyses."""
    an = sub.add_parser("analyze", help="analyses of trained runs: robustness, representations, curves, "
                        "information, sharing",
                        description="The papers' analyses of trained runs. Each writes JSON and CSV "
                        "(and a PNG with matplotlib) into --out (default: FIRST_RUN/analysis).")
    asub = an.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=Parser)
    asub.required = True

    def common(p: argparse.ArgumentParser, split: bool = True) -> None:
        p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by `infomtl train`")
        if split:
            p.add_argument("--split", default="test", choices=("train", "val", "test"),
                           help="split to analyse (default: test)")
            p.add_argument("--max-examples", type=int, default=None, metavar="N",
                           help="first N rows of each task only (default: all)")
            p.add_argument("--batch-size", type=int, default=64, help="rows per batch (default: 64)")
            p.add_argument("--seed", type=int, default=0, help="seed of the noise / k-means (default: 0)")
        p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: FIRST_RUN/analysis)")

    rob = asub.add_parser("robustness", help="scores under random and adversarial (FGM) embedding perturbations",
                          description="Add r (norm ε per example over its non-padding tokens) to the word "
                          "embeddings at test time: random Gaussian or FGM along the loss gradient. "
                          "Scores each task's official metrics over a sweep of ε.")
    common(rob)
    rob.add_argument("--reference", default=None, metavar="RUN_DIR",
                     help="run to compare with: mean score increase over tasks and ε > 0 (e.g. the EW run)")
    rob.add_argument("--strengths", default="0,0.1,0.25,0.5,1,2,4",
                     help="comma-separated ε (default: 0,0.1,0.25,0.5,1,2,4: FGM already bites at 0.1–0.5)")
    rob.add_argument("--kinds", default="random,fgm", help="comma-separated: random, fgm (default: both)")
    rob.set_defaults(func=cmd_analyze_robustness)

    rep = asub.add_parser("representations", help="uniformity of h; ARI and silhouette of k-means on task outputs",
                          description="Uniformity of the normalised shared representation; per classification "
                          "task, k-means (k = classes) on the task outputs: ARI against the gold labels "
                          "and silhouette; their means over tasks.")
    common(rep)
    rep.set_defaults(func=cmd_analyze_representations)

    cur = asub.add_parser("curves", help="per-task training loss, validation scores and task weights per epoch",
                          description="Read each run's log.jsonl; plot per-task training loss and validation "
                          "score, validation loss and Avg, and task weights (weighting methods) per epoch.")
    common(cur, split=False)
    cur.set_defaults(func=cmd_analyze_curves)

    inf = asub.add_parser("information", help="information plane: Î(Z;Z_t) against Î(X;Z) per epoch",
                          description="Read each run's log.jsonl (trained with --track-information); plot "
                          "Î(Z;Z_t) (mean over tasks, and per task) against Î(X;Z) per epoch, one line per "
                          "run, epochs annotated, the selected epoch dashed (InfoMTL Figure 2).")
    common(inf, split=False)
    inf.set_defaults(func=cmd_analyze_information)

    sha = asub.add_parser("sharing", help="what each task learned to read: layer weights, cross-stitch α per epoch",
                          description="Read each run's log.jsonl (trained with --share or --head-layer); plot "
                          "each task's layer weights per epoch (layer mixture) and the last epoch's α of each "
                          "cross-stitch unit as a task × task map.")
    common(sha, split=False)
    sha.set_defaults(func=cmd_analyze_sharing)
