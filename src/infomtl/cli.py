"""The ``infomtl`` command line: train, evaluate, predict, export, serve, demo, methods, download,
sweep, report, analyze.

User errors print one line (``error: ...``) and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infomtl import __version__
from infomtl.errors import InfomtlError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    from infomtl.config import TrainConfig

    parser.add_argument("--config", metavar="YAML", help="YAML file of options; flags given here override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(TrainConfig):
        group_name = f.metadata["group"]
        group = groups.setdefault(group_name, parser.add_argument_group(f"{group_name} options"))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(default) if isinstance(default, list) else default
        if isinstance(default, dict):
            shown = ",".join(f"{k}={v}" for k, v in default.items()) or "none"
        help_text = f"{f.metadata['help']} (default: {shown if shown not in ('', None) else 'none'})"
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            group.add_argument(flag, metavar=f.metadata.get("metavar", f.name.upper()), **kwargs)
    ablation = parser.add_argument_group("InfoMTL / VIP-MTL ablations")
    ablation.add_argument("--no-simax", action="store_true", default=argparse.SUPPRESS,
                          help="InfoMTL without shared information maximisation (alpha=0, one view)")
    ablation.add_argument("--no-timin", action="store_true", default=argparse.SUPPRESS,
                          help="InfoMTL without task-specific information minimisation (linear heads)")
    ablation.add_argument("--no-variance-norm", action="store_true", default=argparse.SUPPRESS,
                          help="VIP-MTL without variance normalisation (w/o VI: s_t frozen at 0, no gamma term)")


def config_from_args(args: argparse.Namespace):
    """Merge ``--config`` YAML and the flags given (flags win) into a validated config."""
    from infomtl.config import TrainConfig, load_yaml

    values: dict[str, Any] = {}
    source = "command line"
    if getattr(args, "config", None):
        source = args.config
        values = {str(k).replace("-", "_"): v for k, v in load_yaml(args.config).items()}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    config = TrainConfig.from_dict(values, source)
    for key in ("simax", "timin", "variance_norm"):
        if getattr(args, f"no_{key}", False):
            config.method_args = {**config.method_args, key: False}
    return config.validate()


def cmd_train(args: argparse.Namespace) -> int:
    from infomtl.distributed import is_main_process
    from infomtl.training import train

    config = config_from_args(args)
    if config.resume is not None:
        ignored = sorted(k for k, v in vars(args).items()
                         if k not in ("command", "func", "resume") and v is not None)
        if ignored:
            print(f"note: --resume takes the run's options from {config.resume}/config.yaml; ignoring "
                  + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    result = train(config)
    if is_main_process():  # under torchrun / accelerate launch every process gets here
        _print_results(result.results)
        print(f"run folder: {result.run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from infomtl.runs import evaluate_run

    scored = evaluate_run(args.run_dir, args.split, data_dir=args.data_dir, batch_size=args.batch_size)
    _print_results({args.split: scored}, splits=(args.split,))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infomtl.demo import run_demo

    print(run_demo(data_dir=args.data_dir, backbone=args.backbone, epochs=args.epochs,
                   seed=args.seed, output_dir=args.output_dir, progress=args.progress))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from infomtl.methods.listing import describe_methods

    print(describe_methods())
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from infomtl.experiments import describe_runs, load_sweep, run_sweep

    if args.dry_run:
        print(describe_runs(load_sweep(args.config), args.store))
        return 0
    ray = None
    if args.engine == "ray":
        from infomtl.experiments import RayOptions

        if args.cpus_per_run <= 0 or args.gpus_per_run < 0:
            raise InfomtlError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
        ray = RayOptions(args.ray_address, args.cpus_per_run, args.gpus_per_run)
    summary = run_sweep(args.config, args.store, workers=args.workers, ray=ray)
    print(f"{summary.total} runs: {summary.skipped} already finished, {len(summary.finished)} trained, "
          f"{len(summary.failed)} failed; store: {args.store}")
    if summary.failed:
        print(f"error: {len(summary.failed)} run(s) failed; run the same command again to retry them",
              file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from infomtl.report import write_report

    markdown, written = write_report(args.store, args.out, baseline=args.baseline, plots=args.plots)
    print(markdown)
    print(f"wrote {len(written)} files to {written[0].parent if written else args.out}")
    return 0


def _add_sweep_report(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="run a grid of runs into a results store (resumable)", description=(
        "Expand a sweep YAML (methods with hyperparameter grids x seeds x training ratios x "
        "benchmarks x backbones), validate every run, and train the unfinished ones into "
        "STORE/runs/<id>/. Run the same command again to resume after a kill."))
    sweep.add_argument("config", help="sweep YAML (see configs/sweeps/)")
    sweep.add_argument("--store", required=True, help="results store folder (created if new)")
    sweep.add_argument("--workers", type=int, default=1,
                       help="parallel training processes on this machine (default: 1, in-process)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and which are finished; train nothing")
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
    report.add_argument("--baseline", default=None, help="label of the Δp / significance baseline (default: the EW run)")
    report.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="write PNG plots (needs matplotlib; default: on)")
    report.set_defaults(func=cmd_report)


def cmd_download(args: argparse.Namespace) -> int:
    from infomtl.data.download import download_tweeteval
    from infomtl.data.paths import default_cache_root

    root = Path(args.data_dir) if args.data_dir else default_cache_root()
    folder = download_tweeteval(root)
    print(f"TweetEval saved to {folder}; use --data-dir {root} or INFOMTL_DATA={root}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from infomtl.predict import load, read_inputs, write_outputs

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    texts, pairs = read_inputs(args.input, args.input_format)
    predictor = load(args.run_dir)
    if tasks is not None:
        predictor._choose(tasks)  # unknown task names fail before any work
    progress = args.progress
    if progress is None:
        progress = len(texts) > 1000 and sys.stderr.isatty()
    predictions = predictor.predict(texts, pairs, tasks, batch_size=args.batch_size, progress=progress)
    if args.output in (None, "-"):
        write_outputs(sys.stdout, args.output_format, predictor.tasks, texts, pairs, predictions)
    else:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="\n") as fh:
                write_outputs(fh, args.output_format, predictor.tasks, texts, pairs, predictions)
            tmp.replace(out)  # also fails here when OUT is a folder
        except OSError as exc:
            if tmp.is_file():
                tmp.unlink()
            raise InfomtlError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from infomtl.export import export_run

    out = export_run(args.run_dir, args.out_dir)
    print(f"exported {args.run_dir} to {out}; load it with infomtl.load({str(out)!r}) "
          f"or `infomtl predict {out} --input FILE`")
    return 0


def _add_predict_export(sub: argparse._SubParsersAction) -> None:
    from infomtl.predict import INPUT_FORMATS, OUTPUT_FORMATS

    pr = sub.add_parser("predict", help="predict every task for new texts with a trained run or export",
                        description="Label texts with every task of a run folder, STL folder or export "
                        "folder. Input: one text per line (text), JSONL objects with \"text\" and an "
                        "optional \"text_pair\", or TSV (text, optional pair; optional header 'text'). "
                        "Every input line must hold a text; outputs follow the input order.")
    pr.add_argument("run_dir", metavar="RUN_OR_EXPORT", help="run folder (infomtl train) or export folder (infomtl export)")
    pr.add_argument("--input", required=True, metavar="FILE", help="input file, or - for standard input")
    pr.add_argument("--input-format", choices=INPUT_FORMATS, default=None,
                    help="input format (default: by extension: .jsonl, .tsv, else text)")
    pr.add_argument("--tasks", default=None, help="comma-separated tasks to predict (default: all)")
    pr.add_argument("--batch-size", type=int, default=64, help="texts per batch (default: 64)")
    pr.add_argument("--output", default=None, metavar="FILE", help="output file (default: standard output)")
    pr.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jsonl",
                    help="jsonl: one object per text; tsv: text and per-task columns (default: jsonl)")
    pr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: for more than 1000 texts on a terminal)")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="write a self-contained folder for a trained run",
                        description="Export a run (or STL) folder: encoder and tokenizer (save_pretrained, "
                        "safetensors), heads in safetensors, tasks and method in infomtl.json with the "
                        "SHA-256 of every file, and a model card README.md with the run's metrics.")
    ex.add_argument("run_dir", help="run folder written by `infomtl train`")
    ex.add_argument("out_dir", metavar="OUT", help="new (or empty) folder to write")
    ex.set_defaults(func=cmd_export)


def cmd_serve(args: argparse.Namespace) -> int:
    from infomtl.serve import Limits, require_extra, serve

    require_extra()  # before the model loads
    limits = Limits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                    max_text_chars=args.max_text_chars)
    serve(args.run_dir, host=args.host, port=args.port, limits=limits, batch_size=args.batch_size,
          access_log=args.access_log)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from infomtl.serve import Limits

    sv = sub.add_parser("serve", help="serve a trained run or export over HTTP (JSON API)",
                        description="Answer POST /predict {\"texts\": [...], \"tasks\": [...]} with "
                        "every (or the chosen) task's prediction per text, GET /tasks and GET "
                        "/health. Requests over a limit get a 4xx JSON error. Needs the serve "
                        "extra: pip install 'infomtl[serve]'.")
    sv.add_argument("run_dir", metavar="RUN_OR_EXPORT", help="run folder (infomtl train) or export folder (infomtl export)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)")
    sv.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes, metavar="N",
                    help=f"largest request body in bytes, else 413 (default: {Limits.max_body_bytes})")
    sv.add_argument("--max-texts", type=int, default=Limits.max_texts, metavar="N",
                    help=f"most texts per request, else 422 (default: {Limits.max_texts})")
    sv.add_argument("--max-text-chars", type=int, default=Limits.max_text_chars, metavar="N",
                    help=f"longest text in characters, else 422 (default: {Limits.max_text_chars})")
    sv.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default: 64)")
    sv.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                    help="log every request (default: on)")
    sv.set_defaults(func=cmd_serve)


def _run_labels(run_dirs: Sequence[str]) -> dict[str, str]:
    """A short unique label per run folder: a store run's label and seed from the store's plan,
    else the folder's name, else its path."""
    from infomtl.experiments import store_run_name

    names = [store_run_name(d) or Path(d).name or d for d in run_dirs]
    return {d: (n if names.count(n) == 1 else d) for d, n in zip(run_dirs, names, strict=True)}


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InfomtlError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _write_json(path: Path, data: Any) -> None:
    from infomtl.analysis.common import nan_to_none
    from infomtl.checkpoint import write_json

    write_json(path, nan_to_none(data))


def cmd_analyze_robustness(args: argparse.Namespace) -> int:
    import math

    from infomtl.analysis import robustness
    from infomtl.analysis.common import out_folder, write_csv
    from infomtl.checkpoint import load_run
    from infomtl.tables import markdown_table

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
    import math

    from infomtl.analysis import representations
    from infomtl.analysis.common import out_folder, write_csv
    from infomtl.checkpoint import load_run
    from infomtl.tables import markdown_table

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


def _add_analyze(sub: Any) -> None:
    an = sub.add_parser("analyze", help="analyses of trained runs: robustness, representations, curves, information",
                        description="The papers' analyses of trained runs. Each writes JSON and CSV "
                        "(and a PNG with matplotlib) into --out (default: FIRST_RUN/analysis).")
    asub = an.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=_Parser)
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


def _print_results(results: dict[str, Any], splits: Sequence[str] = ("val", "test")) -> None:
    from infomtl.tables import markdown_table

    for split in splits:
        scored = results.get(split)
        if not scored:
            continue
        names = list(scored["tasks"])
        rows = [[n, *[f"{k} {v:.2f}" for k, v in scored["tasks"][n].items()]] for n in names]
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        headers = ["task"] + [f"{split} metric{'s' if width > 2 else ''}"] + [""] * (width - 2)
        print(markdown_table(headers, rows))
        print(f"{split} Avg: {scored['avg']:.2f}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="infomtl",
        description="Multi-task representation learning on a shared PLM encoder: "
        "InfoMTL, VIP-MTL and the MTL baselines.",
    )
    parser.add_argument("--version", action="version", version=f"infomtl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    train = sub.add_parser("train", help="train one run", description=(
        "Train one multi-task run. Options come from --config YAML and flags (flags win). "
        "Writes a run folder: config.yaml, run.json, log.jsonl, checkpoint/, results.json, "
        "predictions/{split}/{task}.txt. With --method stl or stl-cnn: one such folder per "
        "task inside the run folder, and one combined results.json."))
    _add_train_options(train)
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
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                      help="show progress bars (default: off)")
    demo.set_defaults(func=cmd_demo)

    _add_predict_export(sub)
    _add_serve(sub)

    methods = sub.add_parser("methods", help="list the training methods and their hyperparameters")
    methods.set_defaults(func=cmd_methods)

    dl = sub.add_parser("download", help="fetch TweetEval from its public source (needs the network)")
    dl.add_argument("benchmark", choices=("tweeteval",), help="benchmark to fetch")
    dl.add_argument("--data-dir", default=None, help="data root to write into (default: the cache folder)")
    dl.set_defaults(func=cmd_download)
    _add_sweep_report(sub)
    _add_analyze(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InfomtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
