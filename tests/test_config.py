"""TrainConfig: coercion from YAML/CLI values, validation, and YAML file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from infomtl.config import TrainConfig
from infomtl.errors import ConfigError, InfomtlError
from infomtl.options import coerce, load_yaml, parse_key_values

# --------------------------------------------------------------------------- #
# from_dict coercion
# --------------------------------------------------------------------------- #


def test_defaults_are_the_papers_recipe_and_valid() -> None:
    cfg = TrainConfig().validate()
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.model.max_length) == ("adamax", 5e-5, 256)
    assert cfg.batching.batch_size == 128
    assert (cfg.optim.epochs, cfg.optim.patience, cfg.optim.grad_clip, cfg.optim.select_by) == (20, 3, 1.0, "avg")


def test_default_lists_and_dicts_are_not_shared_between_configs() -> None:
    a, b = TrainConfig(), TrainConfig()
    a.data.tasks.append("x")
    a.method.args["alpha"] = 1
    assert b.data.tasks == [] and b.method.args == {}


def test_lists_come_from_comma_separated_strings_or_lists() -> None:
    cfg = TrainConfig.from_dict({"tasks": "emotion, hate,,irony ", "task_dirs": ["a", "b"]})
    assert cfg.data.tasks == ["emotion", "hate", "irony"]
    assert cfg.data.task_dirs == ["a", "b"]
    assert TrainConfig.from_dict({"tasks": ""}).data.tasks == []


def test_dicts_come_from_key_value_strings_or_mappings() -> None:
    cfg = TrainConfig.from_dict({"method_args": "alpha=0.1, beta = 0.01,kl_reduction=mean"})
    assert cfg.method.args == {"alpha": "0.1", "beta": "0.01", "kl_reduction": "mean"}
    cfg = TrainConfig.from_dict({"method_args": {"alpha": 0.1}})
    assert cfg.method.args == {"alpha": 0.1}
    assert parse_key_values("a=b=c") == {"a": "b=c"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("False", False), ("yes", True), ("no", False), ("1", True), ("0", False),
     (True, True), (False, False)],
)
def test_bool_strings_are_coerced(value, expected: bool) -> None:
    assert TrainConfig.from_dict({"progress": value}).run.progress is expected


@pytest.mark.parametrize("value", [None, "none", "None", "null"])
def test_optional_fields_accept_none(value) -> None:
    cfg = TrainConfig.from_dict(
        {"max_steps": value, "data_dir": value, "weighting": value, "max_eval_examples": value}
    )
    assert cfg.optim.max_steps is None and cfg.data.data_dir is None
    assert cfg.method.weighting is None and cfg.data.max_eval_examples is None


def test_numbers_are_coerced_from_strings() -> None:
    cfg = TrainConfig.from_dict(
        {"lr": "1e-3", "epochs": "3", "max_steps": "7", "train_ratio": 0.5, "batch_size": 16.0}
    )
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.epochs == 3 and isinstance(cfg.optim.epochs, int)
    assert cfg.optim.max_steps == 7
    assert cfg.data.train_ratio == 0.5
    assert cfg.batching.batch_size == 16 and isinstance(cfg.batching.batch_size, int)


def test_dashed_keys_name_the_same_options() -> None:
    cfg = TrainConfig.from_dict({"max-length": 64, "head-dropout": "0.1", "select-by": "loss"})
    assert (cfg.model.max_length, cfg.model.head_dropout, cfg.optim.select_by) == (64, 0.1, "loss")


def test_unknown_key_error_names_the_source_and_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^runs/x\.yaml: unknown option: bogus \(see `infomtl train --help`\)$"):
        TrainConfig.from_dict({"bogus": 1}, source="runs/x.yaml")
    with pytest.raises(ConfigError, match=r"^config: unknown option"):
        TrainConfig.from_dict({"learning_rate": 1})


def test_every_unknown_key_is_reported_at_once_with_the_closest_option() -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"epoch": 2, "lr": 0.1, "lrr": 1, "bogus": 3, "max-lenght": 64}, source="c.yaml")
    assert str(err.value) == (
        "c.yaml: unknown options: epoch (did you mean `epochs`?), lrr (did you mean `lr`?), bogus, "
        "max-lenght (did you mean `max_length`?) (see `infomtl train --help`)")


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("epochs", "many", "epochs must be int"),
        ("epochs", 2.5, "epochs must be int"),
        ("lr", "fast", "lr must be float"),
        ("lr", None, "lr must be float"),
        ("progress", "maybe", "progress must be bool"),
        ("tasks", 5, "tasks must be a comma-separated list"),
        ("method_args", "alpha", "method_args: item 'alpha' has no '='"),
        ("method_args", "=3", "method_args: item '=3' has no key before '='"),
        ("method_args", "alpha=0.1,beta=", "method_args: item 'beta=' has no value after '='"),
        ("method_args", "alpha=1,alpha=2", "method_args: item 'alpha=2' repeats the key"),
        ("method_args", 3, "method_args must be key=value pairs"),
    ],
)
def test_bad_values_are_one_line_config_errors_naming_the_option(key, value, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern) as err:
        TrainConfig.from_dict({key: value}, source="cfg.yaml")
    assert str(err.value).startswith("cfg.yaml: ")
    assert "\n" not in str(err.value)
    assert isinstance(err.value, InfomtlError)


def test_coerce_keeps_values_of_the_right_type() -> None:
    assert coerce("x", 3, int) == 3
    assert coerce("x", "a", str) == "a"
    assert coerce("x", 5, str) == "5"


def test_to_dict_round_trips_through_from_dict() -> None:
    cfg = TrainConfig(tasks=["a", "b"], method_args={"alpha": "0.1"}, max_steps=3, cpu=True)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_save_then_load_yaml_round_trips(tmp_path: Path) -> None:
    cfg = TrainConfig(tasks=["a"], method_args={"beta": 0.5}, data_dir=None, lr=2e-3)
    path = tmp_path / "config.yaml"
    cfg.save(path)
    assert TrainConfig.from_dict(load_yaml(path), str(path)) == cfg


# --------------------------------------------------------------------------- #
# validate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"lr": -1e-3}, "--lr must be > 0"),
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"batch_size": 0}, "--batch-size must be > 0"),
        ({"eval_batch_size": -1}, "--eval-batch-size must be > 0"),
        ({"epochs": 0}, "--epochs must be > 0"),
        ({"max_length": 0}, "--max-length must be > 0"),
        ({"temperature": 0.0}, "--temperature must be > 0"),
        ({"weight_decay": -0.1}, "--weight-decay must be >= 0"),
        ({"grad_clip": -1.0}, "--grad-clip must be >= 0"),
        ({"patience": -1}, "--patience must be >= 0"),
        ({"head_hidden": -4}, "--head-hidden must be >= 0"),
        ({"head_dropout": 1.0}, r"--head-dropout must be in \[0, 1\)"),
        ({"head_dropout": -0.1}, r"--head-dropout must be in \[0, 1\)"),
        ({"warmup_ratio": 1.0}, r"--warmup-ratio must be in \[0, 1\)"),
        ({"train_ratio": 0.0}, r"--train-ratio must be in \(0, 1\]"),
        ({"train_ratio": 1.5}, r"--train-ratio must be in \(0, 1\]"),
        ({"max_train_examples": 0}, "--max-train-examples must be >= 1"),
        ({"max_eval_examples": 0}, "--max-eval-examples must be >= 1"),
        ({"max_steps": 0}, "--max-steps must be >= 1"),
        ({"pooling": "max"}, "--pooling must be one of cls, mean, got 'max'"),
        ({"optimizer": "sgd"}, "--optimizer must be one of adamax, adamw"),
        ({"regime": "random"}, "--regime must be one of auto, mixed, uniform, per-task, temperature"),
        ({"select_by": "f1"}, "--select-by must be one of avg, loss"),
        ({"mixed_precision": "fp8"}, "--mixed-precision must be one of no, bf16, fp16"),
        ({"lr_schedule": "cosine"}, "--lr-schedule must be one of constant, linear"),
    ],
)
def test_validate_rejects_each_kind_of_bad_value(changes: dict, pattern: str) -> None:
    cfg = TrainConfig().replace(**changes)
    with pytest.raises(ConfigError, match=pattern):
        cfg.validate()


@pytest.mark.parametrize("ratio", [1.0, 0.2, 1e-3])
def test_validate_accepts_train_ratios_in_range(ratio: float) -> None:
    assert TrainConfig(train_ratio=ratio).validate().data.train_ratio == ratio


@pytest.mark.parametrize("name", ["lr", "temperature", "head_dropout", "warmup_ratio", "train_ratio"])
def test_validate_rejects_nan(name: str) -> None:
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')}"):
        TrainConfig().replace(**{name: float("nan")}).validate()


@pytest.mark.parametrize("name", ["weight_decay", "grad_clip"])
def test_validate_rejects_nan_for_non_negative_options(name: str) -> None:
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')}"):
        TrainConfig().replace(**{name: float("nan")}).validate()


# --------------------------------------------------------------------------- #
# load_yaml
# --------------------------------------------------------------------------- #


def test_load_yaml_reads_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("method: infomtl\nmethod_args:\n  alpha: 0.1\ntasks: [a, b]\n", encoding="utf-8")
    assert load_yaml(path) == {"method": "infomtl", "method_args": {"alpha": 0.1}, "tasks": ["a", "b"]}
    cfg = TrainConfig.from_dict(load_yaml(path), str(path))
    assert cfg.method.args == {"alpha": 0.1} and cfg.data.tasks == ["a", "b"]


def test_load_yaml_of_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_yaml(path) == {}


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_yaml(path)


def test_load_yaml_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\nepochs: 2\n  batch_size: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: ")
    assert "\n" not in message


def test_load_yaml_non_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- lr\n- epochs\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping of option: value, got list"):
        load_yaml(path)
    path.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="got str"):
        load_yaml(path)


def test_load_yaml_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_yaml(path)
