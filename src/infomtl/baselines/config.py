"""The zero-shot LLM baseline's options: one dataclass, validated at the boundary.

Every field is a flag of ``infomtl baseline llm`` (``--base-url``) and a key of its
YAML config (``base_url:``); flags override the file. The API key is never an option:
only the name of the environment variable that holds it (``--api-key-env``) is, so it
is never written to ``config.yaml``, a log or ``results.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infomtl.config import TrainConfig
from infomtl.errors import ConfigError
from infomtl.options import option, option_values

BACKENDS = ("openai", "hf")
SPLIT_CHOICES = ("train", "val", "test")

#: Options a resumed run may change (where the endpoint is, how it is asked): they change no answer.
RESUME_OPTIONS = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries", "batch_size", "cpu", "progress")

#: Options that do not change a single answer (left out of a results store's run id).
NOT_HASHED = ("output_dir", "cache_dir", "concurrency", "timeout", "max_retries", "batch_size", "progress",
              "resume", "cpu", "api_key_env")


@dataclass
class LLMConfig:
    """Everything a zero-shot LLM run depends on."""

    # data
    benchmark: str = option("tweeteval", "benchmark to score (tweeteval, affecteval, synthetic); ignored with "
                            "--task-dirs", "data")
    tasks: list[str] = option([], "comma-separated subset of the benchmark's tasks (none: all)", "data")
    task_dirs: list[str] = option([], "comma-separated folders of your own tasks (their task.yaml may set "
                                  "instruction, answers, template, scale)", "data")
    data_dir: str | None = option(None, "root folder holding one folder per benchmark (else $INFOMTL_DATA, else "
                                  "the cache)", "data")
    splits: list[str] = option(["val", "test"], "splits to score (val and test for a results store)", "data")
    max_eval_examples: int | None = option(
        None, "ask N rows of each split per task, stratified by label and group as a trained run's "
        "(smoke runs; not official)", "data", shown="all rows")
    goemotions_multilabel: bool = option(False, "GoEmotions as the official multi-label task (affecteval)", "data")
    # model
    backend: str = option("openai", "openai: an OpenAI-compatible chat-completions endpoint; hf: a local "
                          "Hugging Face causal LM", "model", BACKENDS)
    model: str = option("", "model name at the endpoint (openai), or a Hugging Face model id or local folder (hf)",
                        "model")
    max_tokens: int = option(16, "most tokens of a reply (greedy, temperature 0)", "model")
    # endpoint (openai)
    base_url: str = option("https://api.openai.com/v1", "the endpoint's base URL; requests go to "
                           "BASE_URL/chat/completions (openai)", "endpoint", metavar="URL")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key, sent as a bearer token "
                              "when set (openai); the key itself is never written anywhere", "endpoint",
                              metavar="NAME")
    concurrency: int = option(8, "requests in flight at once (openai)", "endpoint")
    timeout: float = option(60.0, "seconds a request may take before it is retried (openai)", "endpoint")
    max_retries: int = option(6, "retries of a request after a 429, a 5xx, a timeout or a malformed reply, with "
                              "exponential backoff, honouring Retry-After (openai)", "endpoint")
    # local model (hf)
    batch_size: int = option(8, "prompts per batched greedy generation (hf)", "local model")
    cpu: bool = option(False, "run the local model on the CPU even if a GPU is present (hf)", "local model")
    # runtime
    output_dir: str | None = option(None, "run folder (default: a new folder under runs/)", "runtime")
    cache_dir: str | None = option(None, "folder of the answer cache, one JSONL per task (default: "
                                   "RUN_DIR/answers); share it between runs to never ask twice", "runtime",
                                   metavar="DIR")
    progress: bool = option(True, "show a progress bar", "runtime")
    resume: str | None = option(None, "continue an interrupted run folder: its config.yaml gives the options "
                                "(flags may change only --base-url, --api-key-env, --concurrency, --timeout, "
                                "--max-retries, --batch-size, --cpu, --progress), its cache every answer already "
                                "received", "runtime", metavar="RUN_DIR")

    def validate(self) -> LLMConfig:
        """Check every value; raise :class:`ConfigError` naming the option."""
        if not self.model.strip():
            raise ConfigError("--model is required: the model name at the endpoint, or a Hugging Face model "
                              "id or folder with --backend hf")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        for name in ("max_tokens", "concurrency", "batch_size"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"--{_flag(name)} must be >= 1, got {getattr(self, name)}")
        if not self.timeout > 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout}")
        if not self.max_retries >= 0:
            raise ConfigError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.max_eval_examples is not None and self.max_eval_examples < 1:
            raise ConfigError(f"--max-eval-examples must be >= 1, got {self.max_eval_examples}")
        if not self.splits or any(s not in SPLIT_CHOICES for s in self.splits) or \
                len(set(self.splits)) != len(self.splits):
            raise ConfigError(f"--splits must name some of {', '.join(SPLIT_CHOICES)} once each, got "
                              f"{','.join(self.splits)!r}")
        if not self.api_key_env.strip():
            raise ConfigError("--api-key-env must name an environment variable")
        if self.backend == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url must start with http:// or https://, got {self.base_url!r}")
        return self

    def data_config(self) -> TrainConfig:
        """The :class:`TrainConfig` that loads this run's tasks (benchmark or folders, limits)."""
        return TrainConfig(
            benchmark=self.benchmark, tasks=list(self.tasks), task_dirs=list(self.task_dirs),
            data_dir=self.data_dir, max_eval_examples=self.max_eval_examples,
            goemotions_multilabel=self.goemotions_multilabel,
        )

    def to_dict(self) -> dict[str, Any]:
        """The run's options (``resume`` is an action, not an option: left out)."""
        data = dataclasses.asdict(self)
        data.pop("resume", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> LLMConfig:
        """Build from a mapping with option names as keys (dashes or underscores)."""
        return cls(**option_values(cls, data, source))

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _flag(name: str) -> str:
    return name.replace("_", "-")
