"""Training configuration: one dataclass, validated at the boundary.

Every field is a CLI flag of ``infomtl train`` (``--max-length``) and a key of a
YAML config (``max_length:``); flags override the file. Defaults are the papers'
recipe (Adamax, lr 5e-5, batch 128, max length 256, up to 20 epochs, patience 3,
model selection on validation Avg, grad-norm clipping 1.0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infomtl.errors import ConfigError, did_you_mean, unknown_names
from infomtl.options import flag_name, load_yaml, option, option_values, scalar
from infomtl.tasks import EI_REG_PAIRS, TaskKind

__all__ = ["TrainConfig", "load_yaml", "option"]

OPTIMIZERS = ("adamax", "adamw")
SELECT_BY = ("avg", "loss", "primary")
PRECISIONS = ("no", "bf16", "fp16")
SCHEDULES = ("constant", "linear")
REGIME_CHOICES = ("auto", "mixed", "uniform", "per-task", "temperature", "ratios", "autosem")
#: ``--report-to`` values (infomtl.training.tracking)
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
#: ``--share`` values (infomtl.modeling.sharing)
SHARING = ("none", "layer-mix", "cross-stitch")
#: Keys of one ``--hf-task`` (a task read from a Hugging Face dataset; see infomtl.data.hf_source).
HF_TASK_KEYS = ("dataset", "config", "revision", "name", "kind", "text", "pair", "label", "train", "val", "test")


_f = option


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    # data
    benchmark: str = option(
        "tweeteval", "built-in benchmark whose tasks plain names in --tasks refer to (tweeteval, affecteval, "
        "synthetic); trained whole when no --tasks, --task-dirs or --hf-task is given", "data")
    tasks: list[str] = option(
        [], "comma-separated tasks, in order: NAME (a task of --benchmark, --task-dirs or --hf-task), "
        "BENCHMARK:NAME (affecteval:emobank) or a task folder's path (./tasks/emoji); tasks of --task-dirs "
        "and --hf-task are added unless it names one of them", "data",
        shown="those tasks, else all of --benchmark")
    task_dirs: list[str] = option(
        [], "comma-separated folders of your own tasks (train/val/test as JSONL or TSV, or TweetEval's "
        "{split}_text.txt layout, or a task.yaml with source: hf)", "data")
    hf_tasks: list[dict[str, Any]] = option(
        [], "a task from a Hugging Face dataset, as key=value pairs: dataset (Hub id or local path; "
        "required), config, revision, name, kind, text, pair, label (columns; regression outputs joined "
        "by +), train, val, test (split names); repeat the flag for several", "data", metavar="SPEC",
        flag="hf-task")
    tweeteval_source: str = option(
        "files", "where TweetEval's tasks are read from: files (the official layout under the data root), "
        "hf (the Hugging Face dataset cardiffnlp/tweet_eval) or hf:ID_OR_PATH (another copy of it, e.g. "
        "a folder of save_to_disk datasets, one per config)", "data")
    data_dir: str | None = option(
        None, "root folder holding one folder per benchmark, used alone when given", "data",
        shown="$INFOMTL_DATA, else the cache folder")
    train_ratio: float = option(
        1.0, "seeded stratified fraction of each training set to keep (data-constrained runs)", "data")
    max_train_examples: int | None = option(
        None, "keep at most N training rows per task (stratified; smoke runs)", "data", shown="all rows")
    max_eval_examples: int | None = option(
        None, "score N val/test rows per task, stratified by label and group, the same rows for every "
        "seed (smoke runs; not official)", "data", shown="all rows")
    goemotions_multilabel: bool = option(
        False, "GoEmotions as the official multi-label task instead of the authors' single-label subset "
        "(affecteval)", "data")
    ei_reg_pair: str = option(
        "first", "how EI-reg's emotion reaches the encoder: as the first text of a pair, or not at all "
        "(affecteval)", "data", EI_REG_PAIRS)
    multilabel_threshold: float | None = option(
        None, "decision threshold of multi-label tasks, in (0, 1)", "data", shown="each task's own, 0.5")
    # model
    backbone: str = option(
        "roberta-base", "encoder: Hugging Face id or local path, or 'minilm' / 'tiny' (offline)", "model")
    pooling: str = option("cls", "pooling of token states into the shared representation", "model", ("cls", "mean"))
    max_length: int = option(256, "truncation length in tokens", "model")
    head_dropout: float = option(0.2, "dropout on the task heads' input", "model")
    chunk_tokens: int = option(
        16384, "encode each step in length-sorted chunks of at most N padded tokens (0 = one forward); same "
        "result, less padding and memory", "model")
    packing: bool = option(
        True, "pack several rows into one sequence per encoder call (block-diagonal attention, positions restarted "
        "per row; BERT/RoBERTa-style encoders): no padding computed, same result; --no-packing: length-sorted "
        "padded chunks", "model")
    head_hidden: int = option(0, "hidden width of Gaussian heads (0 = no hidden layer, as the authors' code)", "model")
    freeze_backbone: bool = option(
        False, "fast mode: keep the encoder fixed, cache its pooled features on disk once and train a shared MLP "
        "above them (token-state heads such as stl-cnn run the fixed encoder instead)", "model")
    mlp_width: int = option(256, "width of the shared 2-layer MLP trained above a frozen backbone's features", "model")
    mlp_dropout: float = option(
        0.1, "dropout of the shared MLP above a frozen backbone (InfoMTL's two views differ by it)", "model")
    share: str = option(
        "none", "learning to share: layer-mix = each task's head reads a learned softmax mixture of every "
        "layer's pooled states; cross-stitch = per-task copies of the top --share-layers layers mixed by "
        "learned cross-stitch units", "model", SHARING)
    share_layers: int = option(2, "K: the top encoder layers that --share cross-stitch copies per task", "model")
    head_layers: dict[str, Any] = option(
        {}, "TASK=K: put a task's head on encoder layer K (1 = the first; JMT/LISA style lower-level "
        "supervision); repeat the flag or join pairs with commas", "model", metavar="TASK=K", flag="head-layer")
    successive_reg: float = option(
        0.0, "δ of JMT's successive regularisation with --head-layer: the layers read by lower tasks are "
        "pulled towards their values at the start of the epoch", "model")
    feature_cache: str | None = option(
        None, "folder of the frozen-backbone feature cache", "model", metavar="DIR",
        shown="$XDG_CACHE_HOME/infomtl/features, else ~/.cache/infomtl/features")
    # method
    method: str = option(
        "ew", "training method (see `infomtl methods`); stl / stl-cnn train one model per task", "method")
    weighting: str | None = option(
        None, "weighting composed with an objective method, e.g. --method infomtl --weighting ew", "method",
        shown="the objective's own, see `infomtl methods`")
    method_args: dict[str, Any] = option(
        {}, "method hyperparameters as key=value pairs, e.g. alpha=0.1,beta=0.01", "method")
    # batching
    batch_size: int = option(128, "rows per optimisation step (all tasks together)", "batching")
    eval_batch_size: int = option(256, "rows per evaluation batch", "batching")
    regime: str = option(
        "auto", "what a step holds (`infomtl methods` describes each); auto = the method's default (mixed)",
        "batching", REGIME_CHOICES)
    temperature: float = option(2.0, "T of the temperature regime (tasks drawn ∝ N^(1/T))", "batching")
    task_ratios: dict[str, Any] = option(
        {}, "the ratios regime's mixing ratios, as task=ratio pairs (normalised; a task left out gets 0), "
        "e.g. emotion=0.5,irony=0.3,stance=0.2; `infomtl autosem` searches them", "batching", shown="none")
    primary_task: str | None = option(
        None, "the task AutoSeM serves: its validation score is the autosem regime's reward and what "
        "`infomtl autosem` maximises; --select-by primary selects the model on it", "batching", metavar="TASK",
        shown="none: the validation Avg of all tasks")
    autosem_eval_every: int = option(
        20, "autosem regime: steps of one bandit round (one task drawn by Thompson sampling trains N steps, "
        "then the reward is 1 if the primary task's or Avg's score on the --autosem-eval-rows improved)",
        "batching", metavar="N")
    autosem_eval_rows: int = option(
        256, "autosem regime: validation rows per scored task for the reward (a stratified subset drawn "
        "with the run's seed, the same all run)", "batching", metavar="N")
    # optimisation
    optimizer: str = option("adamax", "optimizer", "optimisation", OPTIMIZERS)
    lr: float = option(5e-5, "learning rate", "optimisation")
    weight_decay: float = option(
        0.0, "weight decay of model parameters (learned task scalars get none)", "optimisation")
    scalar_lr: float | None = option(
        None, "learning rate of the learned task scalars (UW and IMTL-L s_t, VIP-MTL's learned log "
        "variance), which sit outside the clipped gradient norm", "optimisation", shown="--lr")
    sharing_lr: float = option(
        5e-3, "learning rate of the sharing units (--share layer-mix weights and scales, cross-stitch α): a "
        "few scalars that must move far, whatever the encoder's rate", "optimisation")
    warmup_ratio: float = option(0.0, "fraction of training steps of linear warm-up", "optimisation")
    lr_schedule: str = option("constant", "learning-rate schedule after warm-up", "optimisation", SCHEDULES)
    grad_clip: float = option(1.0, "max gradient norm (0 = no clipping)", "optimisation")
    epochs: int = option(20, "maximum number of epochs", "optimisation")
    patience: int = option(3, "stop after this many epochs without validation improvement (0 = never)", "optimisation")
    max_steps: int | None = option(
        None, "stop each epoch after N steps and the run after N*epochs (smoke runs)", "optimisation",
        shown="no limit")
    select_by: str = option(
        "avg", "model selection on the validation split: Avg, loss, or the --primary-task's score",
        "optimisation", SELECT_BY)
    grad_accumulation: int = option(
        1, "encode each step's batch in N micro-batches (activation checkpointing: the memory of B/N "
        "rows, one more encoder forward); the update is that of the whole batch for every method", "optimisation")
    # runtime
    seed: int = option(0, "random seed (data order, subsampling, initialisation, dropout)", "runtime")
    output_dir: str | None = option(None, "run folder", "runtime", shown="a new folder under runs/")
    mixed_precision: str = option("no", "autocast dtype (bf16 where the hardware has it)", "runtime", PRECISIONS)
    cpu: bool = option(False, "run on the CPU even if a GPU is present", "runtime")
    compile: bool = option(
        False, "torch.compile the encoder (same results up to float rounding; the first steps are slow)", "runtime")
    progress: bool | None = option(
        None, "progress bars on stderr for training, validation, test and feature extraction", "runtime",
        shown="on when stderr is a terminal")
    threads: int | None = option(
        None, "CPU threads of torch's operators", "runtime", metavar="N",
        shown="the CPUs of this process's affinity mask, at most its CPU quota and $OMP_NUM_THREADS")
    track_information: bool = option(
        False, "log information-plane estimates per epoch (val set, two dropout views)", "runtime")
    report_to: list[str] = option(
        [], "experiment trackers that also get each epoch's values and the config (comma-separated): "
        "tensorboard, wandb, mlflow", "runtime", shown="none")
    information_rows: int | None = option(
        None, "validation rows the information estimates use: a subset drawn with the run's seed, the "
        "same every epoch and for every method", "runtime", metavar="N", shown="every row")
    resume: str | None = option(
        None, "continue an interrupted run folder from its last complete epoch; every other "
        "option is taken from RUN_DIR/config.yaml (flags other than --threads and --progress are ignored)", "runtime",
        metavar="RUN_DIR")

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the option."""
        positive = ("lr", "sharing_lr", "batch_size", "eval_batch_size", "epochs", "max_length", "temperature")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{flag_name(name)} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "patience", "head_hidden", "chunk_tokens"):
            if not getattr(self, name) >= 0:  # also rejects NaN
                raise ConfigError(f"--{flag_name(name)} must be >= 0, got {getattr(self, name)}")
        if not self.mlp_width > 0:
            raise ConfigError(f"--mlp-width must be > 0, got {self.mlp_width}")
        for name in ("head_dropout", "mlp_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{flag_name(name)} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 < self.train_ratio <= 1:
            raise ConfigError(f"--train-ratio must be in (0, 1], got {self.train_ratio}")
        threshold = self.multilabel_threshold
        if threshold is not None and not 0 < threshold < 1:
            raise ConfigError(f"--multilabel-threshold must be in (0, 1), got {threshold}")
        if self.threads is not None and not self.threads >= 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        unknown = [name for name in self.report_to if name not in REPORT_TO]
        if unknown:
            raise ConfigError(f"--report-to: {unknown_names('tracker', unknown, REPORT_TO)} "
                              f"(expected {', '.join(REPORT_TO)})")
        if self.information_rows is not None and not self.information_rows >= 2:
            raise ConfigError(f"--information-rows must be >= 2, got {self.information_rows}")
        if not self.grad_accumulation >= 1:
            raise ConfigError(f"--grad-accumulation must be >= 1, got {self.grad_accumulation}")
        if not self.share_layers >= 1:
            raise ConfigError(f"--share-layers must be >= 1, got {self.share_layers}")
        if not self.successive_reg >= 0:
            raise ConfigError(f"--successive-reg must be >= 0, got {self.successive_reg}")
        for task, layer in self.head_layers.items():
            try:
                self.head_layers[task] = scalar(layer, int)
            except (TypeError, ValueError):
                raise ConfigError(f"--head-layer {task}={layer}: the layer must be an integer >= 1") from None
            if self.head_layers[task] < 1:
                raise ConfigError(f"--head-layer {task}={layer}: the layer must be >= 1 (1 = the first layer)")
        if self.successive_reg > 0 and not self.head_layers:
            raise ConfigError("--successive-reg needs --head-layer (it keeps the layers of lower tasks in place)")
        if self.share == "cross-stitch" and self.head_layers:
            raise ConfigError("--head-layer and --share cross-stitch cannot be combined (choose one way to share)")
        if self.freeze_backbone and (self.share == "cross-stitch" or self.successive_reg > 0):
            what = "--share cross-stitch" if self.share == "cross-stitch" else "--successive-reg"
            raise ConfigError(f"{what} needs a trainable encoder (not --freeze-backbone)")
        if self.scalar_lr is not None and not self.scalar_lr > 0:
            raise ConfigError(f"--scalar-lr must be > 0, got {self.scalar_lr}")
        for spec in self.hf_tasks:
            check_hf_task(spec)
        source = self.tweeteval_source
        if source not in ("files", "hf") and not (source.startswith("hf:") and source[3:].strip()):
            raise ConfigError(f"--tweeteval-source must be files, hf or hf:ID_OR_PATH, got {source!r}")
        for name in ("max_train_examples", "max_eval_examples", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag_name(name)} must be >= 1, got {value}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(
                    f"--{flag_name(f.name)} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}"
                )
        self._check_sampling()
        return self

    def _check_sampling(self) -> None:
        """The AutoSeM options: ``--task-ratios`` as task=number pairs (made floats here), read
        only by the ratios regime; the autosem counts; ``--select-by primary`` with a task."""
        for name in ("autosem_eval_every", "autosem_eval_rows"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"--{flag_name(name)} must be >= 1, got {getattr(self, name)}")
        if self.primary_task is not None and not self.primary_task.strip():
            raise ConfigError("--primary-task must name a task of the run, got an empty name")
        if self.select_by == "primary" and self.primary_task is None:
            raise ConfigError("--select-by primary needs --primary-task TASK")
        ratios: dict[str, float] = {}
        for task, value in self.task_ratios.items():
            try:
                ratio = scalar(value, float)
            except (TypeError, ValueError):
                ratio = math.nan
            if not ratio >= 0:  # also NaN
                raise ConfigError(f"--task-ratios: {task}={value} must be a number >= 0")
            ratios[str(task)] = ratio
        self.task_ratios = ratios
        if self.regime == "ratios" and not sum(ratios.values()) > 0:
            raise ConfigError("--regime ratios needs --task-ratios task=ratio,... with a ratio > 0")
        if ratios and self.regime != "ratios":
            raise ConfigError(f"--task-ratios is read by --regime ratios only (got --regime {self.regime})")

    def to_dict(self) -> dict[str, Any]:
        """The run's options (``resume`` is an action, not an option of the run: left out,
        so ``config.yaml`` and sweep run ids do not depend on it)."""
        data = dataclasses.asdict(self)
        data.pop("resume", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping with option names as keys (dashes or underscores)."""
        return cls(**option_values(cls, data, source))

    def to_yaml(self) -> str:
        """The config as YAML (what a run folder's ``config.yaml`` holds)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: Path) -> None:
        path.write_text(self.to_yaml(), encoding="utf-8")


def check_hf_task(spec: Any) -> None:
    """Check one ``--hf-task`` mapping: known keys, a ``dataset``, a valid ``kind``, string values
    (``label`` may also be a list of columns, a multi-output regression)."""
    where = f"--hf-task {spec!r}" if not isinstance(spec, dict) else "--hf-task " + ",".join(
        f"{k}={v}" for k, v in spec.items())
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected key=value pairs such as dataset=ID,label=COLUMN")
    for key, value in spec.items():
        if key not in HF_TASK_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, HF_TASK_KEYS)} "
                              f"(valid keys: {', '.join(HF_TASK_KEYS)})")
        columns = value if key == "label" and isinstance(value, list) else [value]
        if not columns or not all(isinstance(v, str) and v.strip() for v in columns):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if "dataset" not in spec:
        raise ConfigError(f"{where}: no dataset (a Hub id such as cardiffnlp/tweet_eval, or a local path)")
    kinds = [k.value for k in TaskKind]
    if "kind" in spec and spec["kind"] not in kinds:
        raise ConfigError(f"{where}: kind must be one of {', '.join(kinds)}, got {spec['kind']!r}")
