"""``infomtl methods``: every registered method with its hyperparameters and reference."""

from __future__ import annotations

import dataclasses
import inspect
import re

from infomtl.data.batching import REGIME_HELP
from infomtl.methods.base import Component
from infomtl.methods.registry import DEFAULT_OBJECTIVE, OBJECTIVES, WEIGHTINGS
from infomtl.methods.single_task import SINGLE_TASK_METHODS


def describe_methods() -> str:
    """A readable listing of objectives and weightings (names, defaults, regime, reference)."""
    lines = ["Objectives (--method NAME [--weighting W]):"]
    for name, cls in sorted(OBJECTIVES.items()):
        label = f"{name} (the heads of every weighting method)" if name == DEFAULT_OBJECTIVE else name
        note = f"views per step: {cls.views if isinstance(cls.views, int) else '1-2'}"
        if cls.token_states:
            note += "; heads read the token states"
        if cls.default_weighting != "ew":
            note += f"; default weighting: {cls.default_weighting}"
        if cls.needs_all_tasks:
            note += "; needs every task each step (mixed or uniform regime)"
        lines += _entry(label, cls, note)
        lines += [f"      --ablate {a.key}: {a.help} (w/o {a.name})" for a in cls.ablations]
    lines.append("")
    lines.append("Weightings (--method NAME, or --weighting NAME with an objective):")
    for name, wcls in sorted(WEIGHTINGS.items()):
        regime = "needs every task each step" if wcls.needs_all_tasks else "any regime"
        lines += _entry(name, wcls, f"default regime: {wcls.default_regime}; {regime}")
    lines.append("")
    lines.append("Single-task baselines (--method NAME: one run per task, one combined results.json):")
    for name, base in SINGLE_TASK_METHODS.items():
        args = f"those of {base.task_method}" if base.takes_method_args else "none"
        frozen = "frozen backbone; " if base.freeze_backbone else ""
        lines += [
            f"  {name}: {base.description}",
            f"      each task: --method {base.task_method}; {frozen}hyperparameters: {args}",
            f"      reference: {base.reference}",
        ]
    lines.append("")
    lines.append("Step regimes (--regime NAME; auto = the method's default):")
    lines += [f"  {name}: {text}" for name, text in REGIME_HELP.items()]
    lines += [
        "  AutoSeM's two stages in one command: infomtl autosem [train options] --trials N (stage 1 in the",
        "      autosem regime, then N ratios runs proposed by a Gaussian process with expected improvement;",
        "      writes the chosen ratios to ratios.yaml); reference: Guo, Pasunuru and Bansal, NAACL 2019",
    ]
    lines.append("")
    lines.append("Zero-shot baseline (infomtl baseline llm: no training, not a --method):")
    lines += [
        "  llm-zero-shot: every val/test row asked to a language model with its task's description, instruction",
        "      and allowed answers; the first allowed answer in the reply is the label, else the training split's",
        "      majority (counted as invalid); official metrics, Avg and the invalid-answer rate per task",
        "      models: --backend openai (an OpenAI-compatible chat endpoint: --base-url, --model, key from",
        "      $OPENAI_API_KEY) or --backend hf (a local Hugging Face causal LM: --model ID_OR_FOLDER)",
        "      reference: the zero-shot GPT-3.5 row of InfoMTL's Table 3 (Hu et al., AAAI 2025)",
    ]
    lines.append("")
    lines.append("Learning to share (model options, composable with every method above):")
    lines += [
        "  --share layer-mix: each task's head reads its own learned softmax mixture of the pooled states of",
        "      every encoder layer (embeddings included) times a scale, h_t = γ_t Σ_l softmax(w_t)_l f_l",
        "      reference: ELMo's scalar mix (Peters et al., 2018); sluice networks' β (Ruder et al., AAAI 2019)",
        "  --head-layer TASK=K: that task's head reads encoder layer K (lower-level tasks at lower layers);",
        "      --successive-reg δ keeps the layers the lower tasks read near their start-of-epoch values",
        "      reference: JMT (Hashimoto et al., EMNLP 2017); LISA (Strubell et al., EMNLP 2018)",
        "  --share cross-stitch --share-layers K: per-task copies of the top K layers, mixed after each layer",
        "      by a learned T × T matrix α (α_tt = 0.9 at the start); the units learn at --sharing-lr",
        "      reference: cross-stitch units (Misra et al., CVPR 2016); sluice networks' α (Ruder et al., 2019)",
        "  what they learned: infomtl analyze sharing RUN_DIR (log.jsonl's 'sharing' entry per epoch)",
    ]
    lines.append("")
    lines.append("Set hyperparameters with --method-args key=value,... (or method_args: in YAML).")
    return "\n".join(lines)


def summary(cls: type) -> str:
    """The first paragraph of a class's docstring on one line, in plain text (Sphinx
    markup such as ````w_t```` and ``:class:`~a.B``` reduced to its text)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", first)  # :class:`~infomtl.X` -> X
    return first.replace("``", "")


def _entry(label: str, cls: type[Component], note: str) -> list[str]:
    doc = summary(cls)
    aliases = f" (aliases: {', '.join(cls.aliases)})" if cls.aliases else ""
    fields = dataclasses.fields(cls.Hyper)
    hp = ", ".join(f"{f.name}={f.default!r}" for f in fields) or "none"
    return [
        f"  {label}{aliases}: {doc}",
        f"      hyperparameters: {hp}",
        f"      {note}; reference: {cls.reference or '-'}",
    ]
