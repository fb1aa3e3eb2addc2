"""``infomtl baseline llm``: the zero-shot LLM baseline, scored like a trained run."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from infomtl.baselines.config import RESUME_OPTIONS, LLMConfig
from infomtl.cli.common import add_config_options, config_values, print_results
from infomtl.tables import markdown_table


def llm_config_from_args(args: argparse.Namespace) -> LLMConfig:
    """Merge ``--config`` YAML and the flags given (flags win) into a validated config."""
    values, source = config_values(args, LLMConfig)
    config = LLMConfig.from_dict(values, source)
    return config if config.resume is not None else config.validate()  # resumed: the run's own options


def print_invalid(results: dict[str, Any], splits: Sequence[str]) -> None:
    """Per split, each task's invalid answers (no allowed answer in the reply: the fallback was used)."""
    names = [n for split in splits[:1] for n in results[split]["invalid"]]
    rows = [[n, *[f"{results[s]['invalid'][n]}/{results[s]['rows'][n]} ({100 * results[s]['invalid_rate'][n]:.1f}%)"
                  for s in splits]] for n in names]
    print(markdown_table(["task", *[f"{s} invalid answers" for s in splits]], rows))
    print()


def cmd_baseline_llm(args: argparse.Namespace) -> int:
    from infomtl.baselines.zero_shot import run_llm_baseline

    config = llm_config_from_args(args)
    if config.resume is not None:
        options = {f.name for f in dataclasses.fields(LLMConfig)} - {"resume", *RESUME_OPTIONS}
        ignored = sorted(k for k in vars(args) if k in options)  # the flags given (others are not set)
        if ignored:
            print(f"note: --resume takes the run's options from {config.resume}/config.yaml (flags may change "
                  "only where and how the model is asked); ignoring "
                  + ", ".join("--" + k.replace("_", "-") for k in ignored), file=sys.stderr)
    if args.store is not None:
        from infomtl.experiments.baseline_store import run_llm_into_store

        result, ran = run_llm_into_store(config, args.store, args.label)
        if not ran:
            print(f"already finished in the store: {result.run_dir}")
    else:
        if args.label is not None:
            print("note: --label names a row of a results store; without --store it is ignored", file=sys.stderr)
        result = run_llm_baseline(config)
    splits = [s for s in ("train", "val", "test") if s in result.results]
    print_results(result.results, splits=splits)
    print_invalid(result.results, splits)
    requests = result.results.get("requests", {})
    if requests:
        print(f"questions: {requests['questions']}, answers from the cache: {requests['cached']}, "
              f"asked now: {requests['asked']}, retries: {requests['retries']}")
    print(f"run folder: {result.run_dir}")
    return 0


def add_baseline_commands(sub: Any) -> None:
    """The ``baseline`` command group (``baseline llm``)."""
    group = sub.add_parser("baseline", help="baselines that need no training (a zero-shot LLM)",
                           description="Baselines scored on a benchmark without training.")
    kinds = group.add_subparsers(dest="baseline", metavar="BASELINE", parser_class=type(group))
    kinds.required = True
    llm = kinds.add_parser(
        "llm", help="zero-shot LLM: each row asked to a chat model, the reply read as a label",
        description=(
            "Ask every val/test row of every task to a language model, zero-shot: per task a description, "
            "an instruction and the allowed answers (built in for TweetEval, AffectEval and synthetic; a task "
            "folder's task.yaml may set instruction, answers, template, scale). --backend openai: an "
            "OpenAI-compatible chat-completions endpoint (needs infomtl[llm]; key from $OPENAI_API_KEY or "
            "--api-key-env); --backend hf: a local Hugging Face causal LM. The first allowed answer in the reply "
            "is the label (the longest at the earliest position); a reply with none gets the training split's "
            "majority class and is counted invalid. Every answer is cached on disk as it arrives: --resume RUN "
            "(or --store again) asks only what is missing. Writes config.yaml, baseline.json, answers/, "
            "predictions/ and results.json (official metrics, Avg, invalid-answer rate per task)."))
    add_config_options(llm, LLMConfig)
    store = llm.add_argument_group("results store")
    store.add_argument("--store", default=None, metavar="STORE",
                       help="run into a results store (STORE/runs/<id>), where `infomtl report` shows it as a row "
                       "of every setting of its benchmark (default: a plain run folder)")
    store.add_argument("--label", default=None,
                       help="the row's label in the store (default: 'zero-shot MODEL')")
    llm.set_defaults(func=cmd_baseline_llm)
