"""The six sections of a training configuration, one dataclass each.

Each field is an option: a CLI flag of ``infomtl train`` (``--max-length``) and a key of a
YAML config, either flat (``max_length: 64``) or under its section (``model: {max_length:
64}``). A field's *key* is its name, except the method's ``name`` (key ``method``) and
``args`` (key ``method_args``). Defaults are the papers' recipe (Adamax, lr 5e-5, batch
128, max length 256, up to 20 epochs, patience 3, model selection on validation Avg,
grad-norm clipping 1.0). :class:`infomtl.config.TrainConfig` holds one of each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from infomtl.options import option, option_key
from infomtl.tasks import EI_REG_PAIRS

OPTIMIZERS = ("adamax", "adamw")
SELECT_BY = ("avg", "loss", "primary")
PRECISIONS = ("no", "bf16", "fp16")
SCHEDULES = ("constant", "linear")
REGIME_CHOICES = ("auto", "mixed", "uniform", "per-task", "temperature", "ratios", "autosem")
#: ``--report-to`` values (infomtl.training.tracking)
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
#: ``--share`` values (infomtl.modeling.sharing)
SHARING = ("none", "layer-mix", "cross-stitch")


@dataclass
class DataOptions:
    """What is read: the benchmark or the user's tasks, their sizes and reading options."""

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
    benchmark_args: dict[str, Any] = option(
        {}, "options of the built-in benchmarks' readers as key=value pairs, each checked by its reader: "
        "tweeteval source=files|hf|hf:ID_OR_PATH (the official files under the data root, the Hugging Face "
        "dataset cardiffnlp/tweet_eval, or another copy of it, e.g. a folder of save_to_disk datasets); "
        "affecteval goemotions_multilabel=true (GoEmotions as the official multi-label task instead of the "
        "authors' single-label subset), ei_reg_pair=first|none (EI-reg's emotion as the first text of a "
        "pair, or not given)", "data", metavar="KEY=VALUE", shown="each reader's own: source=files, "
        "goemotions_multilabel=false, ei_reg_pair=first")
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
    multilabel_threshold: float | None = option(
        None, "decision threshold of multi-label tasks, in (0, 1)", "data", shown="each task's own, 0.5")


@dataclass
class ModelOptions:
    """The shared encoder, the heads above it and how tasks share it."""

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


@dataclass
class MethodOptions:
    """The training method: its name, the weighting composed with it, its hyperparameters."""

    name: str = option(
        "ew", "training method (see `infomtl methods`); stl / stl-cnn train one model per task", "method",
        key="method")
    weighting: str | None = option(
        None, "weighting composed with an objective method, e.g. --method infomtl --weighting ew", "method",
        shown="the objective's own, see `infomtl methods`")
    args: dict[str, Any] = option(
        {}, "method hyperparameters as key=value pairs, e.g. alpha=0.1,beta=0.01", "method", key="method_args")


@dataclass
class BatchingOptions:
    """What one optimisation step holds: rows, and how tasks are drawn."""

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


@dataclass
class OptimOptions:
    """The optimizer, its schedule, clipping, epochs and model selection."""

    optimizer: str = option("adamax", "optimizer", "optim", OPTIMIZERS)
    lr: float = option(5e-5, "learning rate", "optim")
    weight_decay: float = option(
        0.0, "weight decay of model parameters (learned task scalars get none)", "optim")
    scalar_lr: float | None = option(
        None, "learning rate of the learned task scalars (UW and IMTL-L s_t, VIP-MTL's learned log "
        "variance), which sit outside the clipped gradient norm", "optim", shown="--lr")
    sharing_lr: float = option(
        5e-3, "learning rate of the sharing units (--share layer-mix weights and scales, cross-stitch α): a "
        "few scalars that must move far, whatever the encoder's rate", "optim")
    warmup_ratio: float = option(0.0, "fraction of training steps of linear warm-up", "optim")
    lr_schedule: str = option("constant", "learning-rate schedule after warm-up", "optim", SCHEDULES)
    grad_clip: float = option(1.0, "max gradient norm (0 = no clipping)", "optim")
    epochs: int = option(20, "maximum number of epochs", "optim")
    patience: int = option(3, "stop after this many epochs without validation improvement (0 = never)", "optim")
    max_steps: int | None = option(
        None, "stop each epoch after N steps and the run after N*epochs (smoke runs)", "optim",
        shown="no limit")
    select_by: str = option(
        "avg", "model selection on the validation split: Avg, loss, or the --primary-task's score",
        "optim", SELECT_BY)
    grad_accumulation: int = option(
        1, "encode each step's batch in N micro-batches (activation checkpointing: the memory of B/N "
        "rows, one more encoder forward); the update is that of the whole batch for every method", "optim")


@dataclass
class RunOptions:
    """Where and how the run executes: seed, folder, precision, threads, logging."""

    seed: int = option(0, "random seed (data order, subsampling, initialisation, dropout)", "run")
    output_dir: str | None = option(None, "run folder", "run", shown="a new folder under runs/")
    mixed_precision: str = option("no", "autocast dtype (bf16 where the hardware has it)", "run", PRECISIONS)
    cpu: bool = option(False, "run on the CPU even if a GPU is present", "run")
    compile: bool = option(
        False, "torch.compile the encoder (same results up to float rounding; the first steps are slow)", "run")
    progress: bool | None = option(
        None, "progress bars on stderr for training, validation, test and feature extraction", "run",
        shown="on when stderr is a terminal")
    threads: int | None = option(
        None, "CPU threads of torch's operators", "run", metavar="N",
        shown="the CPUs of this process's affinity mask, at most its CPU quota and $OMP_NUM_THREADS")
    track_information: bool = option(
        False, "log information-plane estimates per epoch (val set, two dropout views)", "run")
    report_to: list[str] = option(
        [], "experiment trackers that also get each epoch's values and the config (comma-separated): "
        "tensorboard, wandb, mlflow", "run", shown="none")
    information_rows: int | None = option(
        None, "validation rows the information estimates use: a subset drawn with the run's seed, the "
        "same every epoch and for every method", "run", metavar="N", shown="every row")
    resume: str | None = option(
        None, "continue an interrupted run folder from its last complete epoch; every other "
        "option is taken from RUN_DIR/config.yaml (flags other than --threads and --progress are ignored)", "run",
        metavar="RUN_DIR")


#: The sections of a :class:`~infomtl.config.TrainConfig`: its attribute and their dataclass, in order.
SECTIONS: dict[str, type] = {
    "data": DataOptions, "model": ModelOptions, "method": MethodOptions,
    "batching": BatchingOptions, "optim": OptimOptions, "run": RunOptions,
}


#: Shorthands of one ``benchmark_args`` entry each, as flags and YAML keys (the options of
#: earlier versions): name -> (the entry's key, its type, its values or None, the --help text).
BENCHMARK_ARG_SHORTHANDS: dict[str, tuple[str, type, tuple[str, ...] | None, str]] = {
    "tweeteval_source": ("source", str, None, "--benchmark-args source=VALUE (tweeteval)"),
    "goemotions_multilabel": ("goemotions_multilabel", bool, None,
                              "--benchmark-args goemotions_multilabel=true|false (affecteval)"),
    "ei_reg_pair": ("ei_reg_pair", str, EI_REG_PAIRS, "--benchmark-args ei_reg_pair=VALUE (affecteval)"),
}

#: Every option's key -> (its section's attribute, its field's name), in section order.
KEYS: dict[str, tuple[str, str]] = {
    option_key(f): (section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
}
