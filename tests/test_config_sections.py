"""TrainConfig in sections: built by option or by section, read by section, written to
``config.yaml`` by section, and the flat form of older configs and run folders still loads
(with the same run ids)."""

from __future__ import annotations

import pytest
import yaml

from infomtl.cli import main
from infomtl.config import MethodOptions, OptimOptions, TrainConfig, flat_options
from infomtl.config.sections import KEYS, SECTIONS
from infomtl.errors import ConfigError
from infomtl.experiments.plan import load_sweep
from infomtl.experiments.store import run_id


def test_options_by_key_and_sections_build_the_same_config() -> None:
    by_key = TrainConfig(lr=1e-3, method="infomtl", method_args={"alpha": 0.1}, max_length=64)
    by_section = TrainConfig(optim=OptimOptions(lr=1e-3), method=MethodOptions(name="infomtl", args={"alpha": 0.1}),
                             max_length=64)
    assert by_key == by_section
    assert (by_key.optim.lr, by_key.method.name, by_key.method.args, by_key.model.max_length) == (
        1e-3, "infomtl", {"alpha": 0.1}, 64)
    assert by_key.get("method_args") == {"alpha": 0.1} and by_key.get("lr") == 1e-3


def test_a_section_passed_in_is_copied_not_shared() -> None:
    optim = OptimOptions(lr=1e-3)
    a, b = TrainConfig(optim=optim), TrainConfig(optim=optim)
    a.optim.lr = 2.0
    assert (b.optim.lr, optim.lr) == (1e-3, 1e-3)


def test_an_unknown_option_is_a_type_error_as_any_bad_keyword() -> None:
    with pytest.raises(TypeError, match=r"unexpected option 'learning_rate'"):
        TrainConfig(learning_rate=1e-3)
    with pytest.raises(TypeError, match=r"unexpected option 'epoch' \(did you mean `epochs`\?\)"):
        TrainConfig().replace(epoch=3)


def test_replace_changes_a_copy() -> None:
    config = TrainConfig(seed=1, tasks=["irony"])
    other = config.replace(seed=2, method="uw")
    assert (config.run.seed, config.method.name) == (1, "ew")
    assert (other.run.seed, other.method.name, other.data.tasks) == (2, "uw", ["irony"])
    other.data.tasks.append("stance")
    assert config.data.tasks == ["irony"]


def test_every_option_has_one_key_across_the_sections() -> None:
    count = sum(len(cls.__dataclass_fields__) for cls in SECTIONS.values())
    assert len(KEYS) == count  # no key given twice
    assert KEYS["method"] == ("method", "name") and KEYS["method_args"] == ("method", "args")
    assert KEYS["lr"] == ("optim", "lr") and KEYS["seed"] == ("run", "seed")


def test_yaml_by_section_flat_or_mixed_load_alike() -> None:
    flat = {"lr": 0.001, "method": "infomtl", "method_args": {"alpha": 0.1}, "max_length": 64, "seed": 3}
    nested = {"optim": {"lr": 0.001}, "method": {"name": "infomtl", "args": {"alpha": 0.1}},
              "model": {"max_length": 64}, "run": {"seed": 3}}
    mixed = {"optim": {"lr": 0.001}, "method": "infomtl", "method-args": {"alpha": 0.1}, "max_length": 64,
             "run": {"seed": "3"}}
    configs = [TrainConfig.from_dict(d) for d in (flat, nested, mixed)]
    assert configs[0] == configs[1] == configs[2]
    assert isinstance(configs[2].run.seed, int)
    assert TrainConfig.from_dict({"method": {"method": "infomtl", "method_args": {"alpha": 0.1}}}).method == (
        configs[0].method)  # a section's options by their keys too


def test_the_later_of_a_section_and_a_flat_key_wins() -> None:
    assert TrainConfig.from_dict({"optim": {"lr": 0.1}, "lr": 0.2}).optim.lr == 0.2
    assert flat_options({"lr": 0.2, "optim": {"lr": 0.1, "epochs": 2}}) == {"lr": 0.1, "epochs": 2}


def test_a_bad_key_in_a_section_names_the_section() -> None:
    with pytest.raises(ConfigError, match=r"^c\.yaml: optim: unknown option: learning_rate"):
        TrainConfig.from_dict({"optim": {"learning_rate": 1}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"^c\.yaml: model: unknown option: lr \(lr is an option of optim:\)$"):
        TrainConfig.from_dict({"model": {"lr": 1}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"^c\.yaml: lr must be float, got 'fast'$"):
        TrainConfig.from_dict({"optim": {"lr": "fast"}}, "c.yaml")


def test_config_yaml_holds_the_sections_and_reads_back() -> None:
    config = TrainConfig(benchmark="synthetic", lr=1e-3, method="uw", method_args={"x": 1}, resume="somewhere")
    written = yaml.safe_load(config.to_yaml())
    assert list(written) == list(SECTIONS)
    assert written["optim"]["lr"] == 1e-3 and written["method"] == {"name": "uw", "weighting": None, "args": {"x": 1}}
    assert "resume" not in written["run"]  # an action, not an option of the run
    assert TrainConfig.from_dict(written) == config.replace(resume=None)


def test_to_dict_is_flat_in_the_order_of_the_options() -> None:
    """The flat form (what run ids hash and stores compare) is that of the options, in order."""
    data = TrainConfig().to_dict()
    assert list(data) == [k for k in KEYS if k != "resume"]
    assert data["method"] == "ew" and data["method_args"] == {} and data["lr"] == 5e-5


def test_run_ids_do_not_depend_on_the_form_of_the_yaml() -> None:
    flat = TrainConfig.from_dict({"method": "infomtl", "lr": 4e-4, "seed": 2, "train_ratio": 0.1})
    nested = TrainConfig.from_dict({"method": {"name": "infomtl"}, "optim": {"lr": 4e-4}, "run": {"seed": 2},
                                    "data": {"train_ratio": 0.1}})
    assert run_id(flat) == run_id(nested)


def test_a_sweep_base_may_be_written_by_section(tmp_path) -> None:
    flat, nested = tmp_path / "flat.yaml", tmp_path / "nested.yaml"
    flat.write_text(yaml.safe_dump({"base": {"benchmark": "synthetic", "backbone": "tiny", "lr": 1e-3, "epochs": 2},
                                    "methods": [{"method": "ew"}, {"method": "uw", "lr": 2e-3}], "seeds": [0]}))
    nested.write_text(yaml.safe_dump({
        "base": {"data": {"benchmark": "synthetic"}, "model": {"backbone": "tiny"},
                 "optim": {"lr": 1e-3, "epochs": 2}},
        "methods": [{"method": "ew"}, {"method": "uw", "optim": {"lr": 2e-3}}], "seeds": [0]}))
    a, b = load_sweep(flat), load_sweep(nested)
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert [r.config.optim.lr for r in b] == [1e-3, 2e-3]


def test_train_reads_a_yaml_by_section_and_flags_override_it(tmp_path, capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"benchmark": "synthetic", "max_train_examples": 8,
                                             "max_eval_examples": 8},
                                    "model": {"backbone": "tiny", "max_length": 16},
                                    "optim": {"epochs": 1, "lr": 1e-3}, "batching": {"batch_size": 8},
                                    "run": {"progress": False}}))
    out = tmp_path / "run"
    assert main(["--quiet", "train", "--config", str(path), "--lr", "2e-3", "--output-dir", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert saved["optim"]["lr"] == 2e-3 and saved["model"]["max_length"] == 16


def test_an_old_flat_config_yaml_resumes(tmp_path) -> None:
    """A run folder written before the sections (flat ``config.yaml``) loads for --resume."""
    from infomtl.artifacts.run_folder import resume_config

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(TrainConfig(benchmark="synthetic", lr=3e-3).to_dict()))
    config = resume_config(folder)
    assert (config.optim.lr, config.run.resume, config.run.output_dir) == (3e-3, str(folder), str(folder))
