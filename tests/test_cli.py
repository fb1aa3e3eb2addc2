"""The command line end to end: training on real TweetEval slices, evaluate, demo, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infomtl.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infomtl", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )


SMOKE = ("--backbone", "tiny", "--max-train-examples", "64", "--max-eval-examples", "40",
         "--epochs", "2", "--batch-size", "16", "--max-length", "48", "--lr", "1e-3",
         "--no-progress")


@pytest.fixture(scope="module")
def infomtl_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", "--tasks", "emotion,irony,stance", "--method", "infomtl",
                   "--data-dir", str(data_root), "--output-dir", str(out), *SMOKE)
    assert proc.returncode == 0, proc.stderr
    return out


def test_train_infomtl_on_tweeteval_slices_writes_the_run_folder(infomtl_run: Path) -> None:
    for name in ("config.yaml", "run.json", "log.jsonl", "results.json",
                 "checkpoint/model.safetensors", "checkpoint/state.json", "checkpoint/encoder/config.json"):
        assert (infomtl_run / name).is_file(), name
    results = json.loads((infomtl_run / "results.json").read_text())
    assert results["method"] == "infomtl"
    test = results["test"]["tasks"]
    assert set(test) == {"emotion", "irony", "stance"}
    # the official metric of each task, in percent
    assert set(test["emotion"]) == {"macro_f1"}
    assert set(test["irony"]) == {"f1_irony"}
    assert set(test["stance"]) == {"f1_against_favor"}
    for scores in test.values():
        for value in scores.values():
            assert 0.0 <= value <= 100.0
    expected_avg = sum(results["test"]["scores"].values()) / 3
    assert results["test"]["avg"] == pytest.approx(expected_avg)
    log = [json.loads(line) for line in (infomtl_run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    train = log[0]["train"]
    assert set(train["ce"]) == set(train["kl"]) == {"emotion", "irony", "stance"}
    assert train["nce"] > 0
    for split in ("val", "test"):
        for task in ("emotion", "irony", "stance"):
            lines = (infomtl_run / "predictions" / split / f"{task}.txt").read_text().splitlines()
            assert len(lines) == 40
            assert all(line.isdigit() for line in lines)


def test_evaluate_rescores_a_saved_run_like_training_did(infomtl_run: Path) -> None:
    proc = run_cli("evaluate", str(infomtl_run), "--split", "test")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((infomtl_run / "results.json").read_text())
    assert f"test Avg: {results['test']['avg']:.2f}" in proc.stdout


def test_yaml_config_and_flags_merge_with_flags_winning(data_root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: ew\nlr: 0.5\nbatch_size: 8\ntasks: [irony]\n")
    out = tmp_path / "run"
    proc = run_cli("train", "--config", str(cfg), "--data-dir", str(data_root), "--output-dir",
                   str(out), *SMOKE[:-1], "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    saved = (out / "config.yaml").read_text()
    assert "lr: 0.001" in saved  # flag beat the file
    assert "batch_size: 16" in saved
    assert "- irony" in saved  # from the file


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("train", "--method", "nope"), "unknown method 'nope'"),
        (("train", "--lr", "-1"), "--lr must be > 0"),
        (("train", "--lr", "fast"), "lr must be float"),
        (("train", "--tasks", "emotion,sarcasm"), "unknown task 'sarcasm'"),
        (("train", "--method", "infomtl", "--method-args", "gamma=1"),
         "method infomtl: unknown hyperparameter: gamma; valid: alpha"),
        (("train", "--train-ratio", "1.5"), "--train-ratio must be in (0, 1]"),
        (("train", "--pooling", "max"), "invalid choice"),
        (("train", "--config", "missing.yaml"), "missing.yaml: config file not found"),
        (("evaluate", "no-such-run"), "no-such-run: no such run folder"),
    ],
)
def test_bad_input_gives_one_line_error_and_status_2(
    args: tuple[str, ...], needle: str, data_root: Path, tmp_path: Path
) -> None:
    extra = ("--data-dir", str(data_root), "--backbone", "tiny") if args[0] == "train" else ()
    proc = run_cli(*args, *extra, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_missing_data_says_where_it_looked_and_how_to_provide_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("INFOMTL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "infomtl", "train", "--backbone", "tiny", "--data-dir", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(tmp_path / "none") in line and "INFOMTL_DATA" in line


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("method: ew\nlr: [1,\n")
    assert main(["train", "--config", str(cfg)]) == 2


def test_output_dir_that_holds_files_is_refused(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    proc = run_cli("train", "--data-dir", str(data_root), "--output-dir", str(tmp_path / "run"), *SMOKE)
    assert proc.returncode == 2
    assert "already holds files" in proc.stderr
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def _train_parser():
    return build_parser()._subparsers._group_actions[0].choices["train"]


def test_train_help_documents_every_option_with_its_default() -> None:
    from infomtl.config import TrainConfig
    from infomtl.options import option_fields

    text = _train_parser().format_help()
    for key, _, _ in option_fields(TrainConfig):
        flag = "--" + key.replace("_", "-")
        assert flag in text, flag
    assert text.count("(default:") >= len(option_fields(TrainConfig))
    assert "--ablate" in text and "--no-simax" not in text  # no method's name in the CLI


@pytest.mark.parametrize("argv, expected", [
    (["--ablate", "simax"], {"simax": False}),
    (["--no-simax", "--no-timin"], {"simax": False, "timin": False}),  # --no-NAME is --ablate NAME
    (["--ablate", "timin", "--no-simax", "--method-args", "alpha=0.5"], {"alpha": "0.5", "timin": False,
                                                                         "simax": False}),
])
def test_ablations_are_the_methods_own(argv, expected) -> None:
    from infomtl.cli.train import config_from_args

    config = config_from_args(build_parser().parse_args(["train", "--method", "infomtl", *argv]))
    assert config.method.args == expected


def test_an_ablation_the_method_lacks_is_a_one_line_error(capsys) -> None:
    assert main(["train", "--method", "vipmtl", "--no-simax"]) == 2
    err = capsys.readouterr().err
    assert "method vipmtl has no such component (its ablations: variance_norm)" in err
    assert main(["train", "--method", "ew", "--ablate", "timin"]) == 2
    assert "its ablations: none" in capsys.readouterr().err


def test_every_train_option_states_one_default() -> None:
    from infomtl.config import TrainConfig
    from infomtl.options import option_fields

    by_dest = {a.dest: a for a in _train_parser()._actions}
    for key, _, _ in option_fields(TrainConfig):
        help_text = by_dest[key].help
        assert help_text.count("(default:") == 1 and help_text.endswith(")"), help_text
    assert by_dest["tasks"].help.endswith("(default: those tasks, else all of --benchmark)")
    assert by_dest["cpu"].help.endswith("(default: off)")
    assert by_dest["progress"].help.endswith("(default: on when stderr is a terminal)")
    assert by_dest["lr"].help.endswith("(default: 5e-05)")


def test_train_help_lists_the_values_of_every_option_with_a_fixed_set() -> None:
    from infomtl.config import TrainConfig
    from infomtl.options import option_fields

    text = " ".join(_train_parser().format_help().split())
    fixed = {key: f.metadata["choices"] for key, f, _ in option_fields(TrainConfig) if "choices" in f.metadata}
    named = {"pooling", "optimizer", "lr_schedule", "select_by", "mixed_precision", "regime"}
    assert named <= set(fixed)
    for name, choices in fixed.items():
        assert f"--{name.replace('_', '-')} {{{','.join(choices)}}}" in text, name
    assert "--regime {auto,mixed,uniform,per-task,temperature,ratios,autosem}" in text
    assert "--ei-reg-pair {first,none}" in text  # a shorthand of --benchmark-args
    assert "built-in benchmark whose tasks plain names in --tasks refer to (tweeteval, affecteval," in text


def test_train_help_imports_no_torch() -> None:
    code = ("import sys; from infomtl.cli import build_parser; build_parser().format_help(); "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'accelerate')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_methods_lists_ew_and_infomtl_with_hyperparameters() -> None:
    proc = run_cli("methods")
    assert proc.returncode == 0
    assert "infomtl" in proc.stdout and "alpha=0.1" in proc.stdout and "ew" in proc.stdout


def test_methods_describes_each_method_with_its_whole_first_paragraph_in_plain_text() -> None:
    import inspect

    from infomtl.methods.listing import describe_methods
    from infomtl.methods.registry import OBJECTIVES, WEIGHTINGS

    text = describe_methods()
    assert "``" not in text and ":class:" not in text
    for name, cls in {**OBJECTIVES, **WEIGHTINGS}.items():
        line = next(row for row in text.splitlines() if row.startswith(f"  {name}"))
        paragraph = inspect.cleandoc(cls.__doc__).split("\n\n")[0]
        description = " ".join(paragraph.replace("``", "").split())
        assert line.endswith(f": {description}"), name
        assert description.endswith("."), f"{name}: {description!r} is not a whole sentence"
    assert "  ew (aliases: equal): EW: w_t = 1, so L = Σ_t ℓ_t (the papers' reference point for Δp)." in text


def test_summary_reduces_sphinx_roles_to_their_text() -> None:
    from infomtl.methods.listing import summary

    class Example:
        """Weights from :class:`~infomtl.methods.base.LossWeighter` and :func:`task_kpi`,
        ``w_t`` per task.

        Details that are not shown.
        """

    assert summary(Example) == "Weights from LossWeighter and task_kpi, w_t per task."


def test_demo_runs_offline_and_prints_a_comparison(tmp_path: Path) -> None:
    proc = run_cli("demo", "--epochs", "2", "--output-dir", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    assert "| ew " in proc.stdout and "| infomtl " in proc.stdout and "Δp vs EW" in proc.stdout


def test_import_infomtl_is_light() -> None:
    code = "import sys, infomtl; print(any(m in sys.modules for m in ('torch', 'transformers', 'accelerate')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_demo_runs_tiny_on_one_thread_with_bars_on_a_terminal(tmp_path: Path) -> None:
    from infomtl.experiments.demo import demo_configs

    tiny = demo_configs(None, "tiny", None, 0, tmp_path, None)
    assert {c.run.threads for c in tiny.values()} == {1} and {c.run.progress for c in tiny.values()} == {None}
    minilm = demo_configs(None, "minilm", None, 0, tmp_path, False)
    assert {c.run.threads for c in minilm.values()} == {None} and {c.run.progress for c in minilm.values()} == {False}
