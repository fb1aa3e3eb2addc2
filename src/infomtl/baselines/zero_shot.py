"""The zero-shot LLM baseline: every row of every task asked to a language model, once.

:func:`run_llm_baseline` loads the configured tasks (as ``infomtl train`` does, with
``--max-eval-examples``), builds each task's question (:mod:`infomtl.baselines.questions`;
the built-in prompts of :mod:`infomtl.prompts`, or a task folder's ``task.yaml``), asks
the rows whose answer is not cached yet (:mod:`infomtl.baselines.cache`) through the
backend (:mod:`~infomtl.baselines.chat_api` or :mod:`~infomtl.baselines.local_lm`), reads
each reply as a prediction (:mod:`infomtl.baselines.answers`) and scores the splits with
the official metrics. The run folder::

    RUN/config.yaml        the options (the API key's variable name, never the key)
    RUN/baseline.json      tasks, backend, model, each task's prompt, answers and fallback
    RUN/answers/{task}.jsonl  the answer cache (unless --cache-dir puts it elsewhere)
    RUN/predictions/{split}/{task}.txt
    RUN/results.json       written last: per split the metrics, Avg and the invalid answers

``results.json`` has the layout of a training run's (per split ``tasks``, ``scores``,
``avg``) so the report reads it as one, plus per split ``invalid`` (count per task),
``invalid_rate`` (fraction per task) and ``rows``, and ``"method": "llm-zero-shot"``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from infomtl.artifacts.evaluation import score_predictions, write_predictions
from infomtl.artifacts.run_folder import check_output_dir, new_run_dir, resume_config
from infomtl.baselines.answers import AnswerReader, fallback
from infomtl.baselines.cache import AnswerCache
from infomtl.baselines.chat_api import ChatEndpoint
from infomtl.baselines.config import RESUME_OPTIONS, LLMConfig
from infomtl.baselines.local_lm import LocalCausalLM
from infomtl.baselines.questions import Messages, TaskQuestions
from infomtl.data.folder import load_task_prompts
from infomtl.data.loading import prepare_data
from infomtl.data.types import MultiTaskData
from infomtl.errors import ConfigError
from infomtl.fileio import write_json
from infomtl.prompts import BENCHMARK_PROMPTS, Prompt, default_prompt
from infomtl.tasks import Task, TaskKind

log = logging.getLogger(__name__)

METHOD = "llm-zero-shot"


@dataclass
class LLMResult:
    """A finished zero-shot run: its folder and its results."""

    run_dir: Path
    results: dict[str, Any]


def make_backend(config: LLMConfig) -> ChatEndpoint | LocalCausalLM:
    """The configured model: an OpenAI-compatible endpoint or a local causal LM."""
    if config.backend == "openai":
        return ChatEndpoint(config.base_url, config.model, config.api_key_env, config.max_tokens,
                            config.concurrency, config.timeout, config.max_retries)
    return LocalCausalLM(config.model, config.max_tokens, config.batch_size, config.cpu)


def task_prompts(config: LLMConfig, data: MultiTaskData) -> dict[str, Prompt]:
    """Each task's prompt: a task folder's ``task.yaml`` keys, else the benchmark's built-in
    prompt, else :func:`~infomtl.prompts.default_prompt`."""
    if config.task_dirs:
        return load_task_prompts(config.task_dirs, data.tasks)
    built_in = BENCHMARK_PROMPTS.get(config.benchmark, {})
    return {t.name: built_in.get(t.name) or default_prompt(t) for t in data.tasks}


def _describe(task: Task, value: Any) -> Any:
    """A prediction as the user reads it: a label name, a list of names, or the values."""
    if task.kind is TaskKind.CLASSIFICATION:
        return task.labels[int(value)]
    if task.kind is TaskKind.MULTILABEL:
        return [task.labels[i] for i, on in enumerate(value) if on]
    return [float(v) for v in value]


def resumed_config(config: LLMConfig) -> LLMConfig:
    """The config of the interrupted run folder ``config.resume``, set up to resume it in place,
    with the :data:`~infomtl.baselines.config.RESUME_OPTIONS` that ``config`` sets to other
    than their defaults (a moved endpoint, another concurrency...) over the folder's."""
    assert config.resume is not None  # only called to resume
    saved = resume_config(config.resume, LLMConfig)
    defaults = LLMConfig()
    for name in RESUME_OPTIONS:
        if getattr(config, name) != getattr(defaults, name):
            setattr(saved, name, getattr(config, name))
    return saved.validate()


def run_llm_baseline(config: LLMConfig) -> LLMResult:
    """Ask, read and score every configured task (see the module docstring); with
    ``config.resume``, continue that run folder (:func:`resumed_config`)."""
    if config.resume is not None and config.output_dir != config.resume:
        config = resumed_config(config)
    config.validate()
    resuming = config.resume is not None
    if not resuming:
        check_output_dir(config.output_dir)
    start = time.perf_counter()
    data = prepare_data(config.data_config())
    missing = [f"{t.name}/{s}" for t in data.tasks for s in config.splits if s not in data.splits[t.name]]
    if missing:
        raise ConfigError(f"--splits: no such split for {', '.join(missing)}")
    prompts = task_prompts(config, data)
    asked = {t.name: TaskQuestions.build(t, prompts[t.name], data.splits[t.name]["train"]) for t in data.tasks}
    backend = make_backend(config)
    questions: dict[str, dict[str, list[Messages]]] = {
        t.name: {s: asked[t.name].messages(data.splits[t.name][s]) for s in config.splits} for t in data.tasks
    }
    run_dir = Path(str(config.resume)) if resuming else new_run_dir(config.output_dir)
    if not resuming:
        config.save(run_dir / "config.yaml")
    defaults = {t.name: fallback(t, data.splits[t.name]["train"]) for t in data.tasks}
    write_json(run_dir / "baseline.json", {
        "method": METHOD, "backend": config.backend, "model": config.model,
        "tasks": [t.to_dict() for t in data.tasks],
        "prompts": {name: _prompt_record(q) for name, q in asked.items()},
        "fallback": {t.name: _describe(t, defaults[t.name]) for t in data.tasks},
    })

    cache = AnswerCache(config.cache_dir or run_dir / "answers")
    with cache:
        replies = {t.name: cache.load(t.name) for t in data.tasks}
        keys = {name: {s: [backend.key(m) for m in rows] for s, rows in by_split.items()}
                for name, by_split in questions.items()}
        todo: dict[str, Messages] = {}
        total = 0
        for name, by_split in questions.items():
            for split, rows in by_split.items():
                total += len(rows)
                for key, messages in zip(keys[name][split], rows, strict=True):
                    if key not in replies[name]:
                        todo.setdefault(f"{name}/{key}", messages)
        cached = sum(len(set(k for ks in keys[n].values() for k in ks) & replies[n].keys()) for n in keys)
        log.info("%s: %s %s, %d task(s), split(s) %s: %d questions, %d answers cached, %d to ask -> %s",
                 METHOD, config.backend, config.model, len(data.tasks), ",".join(config.splits), total, cached,
                 len(todo), run_dir)
        bar = tqdm(total=len(todo), desc="answers", unit="answer", disable=not config.progress or not todo)

        def on_reply(qid: str, reply: str) -> None:
            name, key = qid.split("/", 1)
            cache.append(name, key, reply)
            replies[name][key] = reply
            bar.update(1)

        try:
            retries = backend.ask(list(todo.items()), on_reply)
        finally:
            bar.close()

    results: dict[str, Any] = {
        "method": METHOD, "backend": config.backend, "model": config.model,
        "benchmark": config.benchmark if not config.task_dirs else "folders",
    }
    readers = {t.name: AnswerReader(t, asked[t.name].answers, defaults[t.name], asked[t.name].scale)
               for t in data.tasks}
    for split in config.splits:
        preds, invalid = [], {}
        for task in data.tasks:
            pred, bad = readers[task.name].predict([replies[task.name][k] for k in keys[task.name][split]])
            preds.append(pred)
            invalid[task.name] = bad
        parts = [data.splits[t.name][split] for t in data.tasks]
        scored = score_predictions(data.tasks, [p.labels for p in parts], preds, [p.groups for p in parts])
        counts = {t.name: len(p) for t, p in zip(data.tasks, parts, strict=True)}
        results[split] = {**scored, "invalid": invalid, "rows": counts,
                          "invalid_rate": {n: invalid[n] / counts[n] if counts[n] else 0.0 for n in counts}}
        write_predictions(run_dir / "predictions" / split, data.tasks, preds)
    results["requests"] = {"questions": total, "cached": cached, "asked": len(todo), "retries": retries}
    results["time_s"] = round(time.perf_counter() - start, 2)
    write_json(run_dir / "results.json", results)
    return LLMResult(run_dir, results)


def _prompt_record(asked: TaskQuestions) -> dict[str, Any]:
    p = asked.prompt
    record: dict[str, Any] = {"description": p.description, "instruction": p.instruction, "rule": asked.rule(),
                              "template": p.template}
    if asked.task.kind is not TaskKind.REGRESSION:
        record["answers"] = dict(zip(asked.task.labels, asked.answers, strict=True))
    else:
        record["scale"] = list(asked.scale or ())
    if p.group_text:
        record["group_text"] = dict(p.group_text)
    return record
