"""A zero-shot LLM run in a results store, so that ``infomtl report`` shows it as a row.

``infomtl baseline llm --store STORE`` runs (or resumes) the baseline in
``STORE/runs/<id>/`` and records it in the plan and the index like a sweep's run,
with ``"method": "llm-zero-shot"``, seed 0, training ratio 1 and ``"backbone": null``:
a zero-shot model has no encoder, so the report puts its row in every setting
(backbone, training ratio) of its benchmark. Its id hashes the options that differ
from their defaults, leaving out those that change no answer
(:data:`~infomtl.baselines.config.NOT_HASHED`): the same model on the same questions
is the same run, and running it again does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infomtl.baselines.config import NOT_HASHED, LLMConfig
from infomtl.baselines.zero_shot import METHOD, LLMResult, run_llm_baseline
from infomtl.errors import ConfigError, InfomtlError
from infomtl.experiments.store import ID_SCHEMA, Store, digest
from infomtl.fileio import read_json


def llm_run_id(config: LLMConfig) -> str:
    """Stable id of a zero-shot run (see the module docstring)."""
    defaults = LLMConfig().to_dict()
    data: dict[str, Any] = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED and v != defaults[k]}
    data["method"] = METHOD
    data["id_schema"] = ID_SCHEMA
    return digest(data)


def default_label(config: LLMConfig) -> str:
    """``"zero-shot gpt-4o-mini"``: the model's last path component."""
    return f"zero-shot {Path(config.model.rstrip('/')).name or config.model}"


def run_llm_into_store(config: LLMConfig, store_root: str | Path, label: str | None = None) -> tuple[LLMResult, bool]:
    """Run (or resume, or find finished) the baseline in the store; returns its result and
    whether it ran now (False: it had finished before)."""
    config.validate()
    if config.output_dir is not None or config.resume is not None:
        raise ConfigError("--store chooses the run folder (STORE/runs/<id>); drop --output-dir / --resume")
    if not {"val", "test"} <= set(config.splits):
        raise ConfigError("--store needs --splits val,test: the report selects on val and reports test")
    store = Store(Path(store_root))
    (store.root / "runs").mkdir(parents=True, exist_ok=True)
    rid = llm_run_id(config)
    label = label or default_label(config)
    for other, meta in store.read_plan().items():
        if meta.get("label") == label and other != rid:
            raise ConfigError(f"--label {label!r} is already the label of run {other} in {store.root}; "
                              "choose another with --label")
    meta = {
        "id": rid, "label": label, "point": {}, "seed": 0, "train_ratio": 1.0, "benchmark": config.benchmark,
        "backbone": None, "method": METHOD, "weighting": None,
        "method_args": {"backend": config.backend, "model": config.model},
    }
    with store.claim(rid) as mine:
        if not mine:
            raise InfomtlError(f"run {rid} of {store.root} is being run by another process")
        folder = store.run_dir(rid)
        if store.is_finished(rid):
            return LLMResult(folder, read_json(folder / "results.json")), False
        store.add_plan_entries({rid: meta})
        if (folder / "config.yaml").is_file():  # interrupted before: keep its answers
            config.resume = str(folder)
        elif folder.exists() and any(folder.iterdir()):
            raise InfomtlError(f"{folder}: holds files but no config.yaml; remove it to run {rid} again")
        else:
            config.output_dir = str(folder)
        result = run_llm_baseline(config)
        store.append_index({**meta, "status": "finished"})
    return result, True
