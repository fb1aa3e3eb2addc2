"""Every method trains on real AffectEval slices (tiny backbone): classification,
multi-label and regression tasks together, per-group metrics and the Avg rule.

The cases are computed at collection time from the registry, so a method registered
later is covered too. The slice holds the first real rows of every file; EI-reg's are
the first 30 of each emotion, sorted by emotion as the real files are, so the evaluation
rows (stratified by group) cover all four only because --max-eval-examples is stratified.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from infomtl.artifacts.evaluation import evaluate_run, score_predictions
from infomtl.cli import build_parser
from infomtl.config import TrainConfig
from infomtl.data.affecteval import EI_REG_EMOTIONS
from infomtl.data.loading import prepare_data, resolve_benchmark_args
from infomtl.errors import ConfigError
from infomtl.experiments.store import run_id
from infomtl.methods import method_names
from infomtl.metrics import pearson, score_task, spearman
from infomtl.options import load_yaml
from infomtl.tasks import TWEETEVAL_TASKS, TaskKind
from infomtl.training import train

REPO = Path(__file__).resolve().parents[1]
TASKS = ["goemotions", "emotioneval", "emobank", "ei_reg"]
CASES = [*method_names(), "stl", "stl-cnn"]
EVAL_ROWS = 24

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def slice_root(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose ``affecteval/`` holds real rows of every file (EI-reg interleaved)."""
    src = data_root / "affecteval"
    if not src.is_dir():
        pytest.skip(f"AffectEval data not found under {data_root}")
    root = tmp_path_factory.mktemp("affecteval-slice")
    dst = root / "affecteval"
    for task in TASKS:
        (dst / task).mkdir(parents=True)
    for name in ("emotions.txt",):
        shutil.copy(src / "goemotions" / name, dst / "goemotions" / name)
    shutil.copy(src / "emotioneval/mapping.txt", dst / "emotioneval/mapping.txt")

    def lines(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").split("\n")[:-1]

    def write(path: Path, rows: list[str]) -> None:
        path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")

    for split in ("train", "val", "test"):
        write(dst / f"goemotions/{split}.tsv", lines(src / f"goemotions/{split}.tsv")[:150])
        for kind in ("text", "labels"):
            name = f"{split}_{kind}.txt"
            write(dst / "emotioneval" / name, lines(src / "emotioneval" / name)[:120])
        write(dst / f"emobank/{split}.tsv", lines(src / f"emobank/{split}.tsv")[:121])
        header, *rows = lines(src / f"ei_reg/{split}.tsv")
        by_emotion = [r for e in EI_REG_EMOTIONS for r in [r for r in rows if r.split("\t")[2] == e][:30]]
        write(dst / f"ei_reg/{split}.tsv", [header, *by_emotion])
    return root


def config(case: str, root: Path, output_dir: Path, **overrides) -> TrainConfig:
    values = dict(
        benchmark="affecteval", data_dir=str(root), backbone="tiny", max_length=32,
        batch_size=16, epochs=1, max_steps=2, lr=1e-3, max_train_examples=40,
        max_eval_examples=EVAL_ROWS, method=case, progress=False, output_dir=str(output_dir),
    )
    values.update(overrides)
    return TrainConfig(**values)


def logged_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["train"]["loss"] for line in lines]


@pytest.mark.parametrize("case", CASES)
def test_method_trains_on_all_four_affecteval_tasks(case, slice_root, tmp_path) -> None:
    result = train(config(case, slice_root, tmp_path / "run"))
    runs = [result.run_dir / t for t in TASKS] if case.startswith("stl") else [result.run_dir]
    for run_dir in runs:
        losses = logged_losses(run_dir)
        assert losses and all(math.isfinite(v) for v in losses), run_dir

    saved = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    test = saved["test"]
    assert math.isfinite(test["avg"])
    assert list(test["tasks"]) == TASKS
    assert set(test["tasks"]["goemotions"]) == {"macro_f1", "accuracy"}
    assert set(test["tasks"]["emotioneval"]) == {"macro_f1"}
    assert set(test["tasks"]["emobank"]) == {
        "pearson_V", "pearson_A", "pearson_D", "spearman_V", "spearman_A", "spearman_D",
    }
    assert set(test["tasks"]["ei_reg"]) == {"pearson", "spearman"}
    for scores in test["tasks"].values():
        assert all(math.isfinite(v) for v in scores.values())
    groups = test["groups"]["ei_reg"]
    assert list(groups) == list(EI_REG_EMOTIONS)
    for scores in groups.values():
        assert set(scores) == {"pearson", "spearman"}
        assert all(math.isfinite(v) for v in scores.values())
    assert set(test["groups"]) == {"ei_reg"}


@pytest.mark.parametrize("case", ["ew", "infomtl"])
def test_goemotions_multilabel_setting_trains_and_scores(case, slice_root, tmp_path) -> None:
    cfg = config(case, slice_root, tmp_path / "run", goemotions_multilabel=True,
                 multilabel_threshold=0.3 if case == "ew" else None)
    result = train(cfg)
    run = json.loads((result.run_dir / "run.json").read_text(encoding="utf-8"))
    goemotions = run["tasks"][0]
    assert goemotions["name"] == "goemotions" and goemotions["kind"] == "multilabel"
    assert goemotions["threshold"] == (0.3 if case == "ew" else 0.5)
    test = result.results["test"]
    assert set(test["tasks"]["goemotions"]) == {"macro_f1"}
    assert math.isfinite(test["avg"])
    predicted = (result.run_dir / "predictions/test/goemotions.txt").read_text(encoding="utf-8")
    rows = predicted.split("\n")[:-1]
    assert len(rows) == EVAL_ROWS
    assert all(int(i) in range(28) for row in rows for i in row.split(",") if row)


def test_avg_and_group_scores_follow_the_methods_md_rule(slice_root, tmp_path) -> None:
    result = train(config("ew", slice_root, tmp_path / "run"))
    saved = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    for split in ("val", "test"):
        tasks = saved[split]["tasks"]
        by_hand = {
            "goemotions": tasks["goemotions"]["macro_f1"],
            "emotioneval": tasks["emotioneval"]["macro_f1"],
            "emobank": np.mean([tasks["emobank"][f"pearson_{d}"] for d in "VAD"]),
            "ei_reg": np.mean([tasks["ei_reg"]["pearson"], tasks["ei_reg"]["spearman"]]),
        }
        assert saved[split]["scores"] == pytest.approx(by_hand)
        assert saved[split]["avg"] == pytest.approx(np.mean(list(by_hand.values())))

    # EI-reg's scores, overall and per emotion, recomputed from the prediction file
    data = prepare_data(TrainConfig.from_dict(load_yaml(result.run_dir / "config.yaml")))
    gold = data["ei_reg"]["test"]
    text = (result.run_dir / "predictions/test/ei_reg.txt").read_text(encoding="utf-8")
    pred = np.array([float(v) for v in text.split("\n")[:-1]])
    assert len(pred) == len(gold) == EVAL_ROWS
    y = gold.labels[:, 0]
    test = saved["test"]
    assert test["tasks"]["ei_reg"]["pearson"] == pytest.approx(pearson(y, pred), abs=1e-3)
    assert test["tasks"]["ei_reg"]["spearman"] == pytest.approx(spearman(y, pred), abs=1e-3)
    groups = np.array(gold.groups)
    for emotion in EI_REG_EMOTIONS:
        rows = groups == emotion
        assert rows.sum() == EVAL_ROWS // 4
        assert test["groups"]["ei_reg"][emotion]["pearson"] == pytest.approx(  # the file keeps 6 digits:
            pearson(y[rows], pred[rows]), abs=0.1                                # 6 rows of nearly equal values
        )

    # re-scoring the saved checkpoint gives the same scores and groups
    scored = evaluate_run(result.run_dir, "test")
    assert scored["avg"] == pytest.approx(test["avg"])
    for emotion in EI_REG_EMOTIONS:
        assert scored["groups"]["ei_reg"][emotion] == pytest.approx(test["groups"]["ei_reg"][emotion])


# --------------------------------------------------------------------------- per-group scoring


def test_group_scores_survive_tiny_and_single_class_groups() -> None:
    stance = TWEETEVAL_TASKS["stance"]
    gold = np.array([1, 1, 2, 0, 1, 2])
    pred = np.array([1, 2, 2, 0, 1, 1])
    groups = ["hillary", "hillary", "climate", "atheism", "atheism", "climate"]
    out = score_predictions([stance], [gold], [pred], [groups])
    per_target = out["groups"]["stance"]
    assert list(per_target) == ["hillary", "climate", "atheism"]
    assert per_target["climate"] == score_task(stance, gold[[2, 5]], pred[[2, 5]])
    assert all(math.isfinite(v) for s in per_target.values() for v in s.values())
    assert out["avg"] == pytest.approx(score_task(stance, gold, pred)["f1_against_favor"])


def test_single_row_regression_group_scores_zero() -> None:
    from infomtl.data.affecteval import EI_REG_TASK

    gold = np.array([[0.2], [0.4], [0.9]], dtype=np.float32)
    pred = np.array([[0.1], [0.5], [0.3]], dtype=np.float32)
    out = score_predictions([EI_REG_TASK], [gold], [pred], [["anger", "anger", "joy"]])
    assert out["groups"]["ei_reg"]["joy"] == {"pearson": 0.0, "spearman": 0.0}
    assert out["groups"]["ei_reg"]["anger"]["pearson"] == pytest.approx(100.0)


def test_no_groups_key_without_groups() -> None:
    emotion = TWEETEVAL_TASKS["emotion"]
    out = score_predictions([emotion], [np.array([0, 1])], [np.array([0, 1])], [None])
    assert "groups" not in out


# --------------------------------------------------------------------------- options


def test_prepare_data_passes_the_affecteval_options(slice_root) -> None:
    cfg = TrainConfig(benchmark="affecteval", data_dir=str(slice_root), tasks=["goemotions", "ei_reg"],
                      goemotions_multilabel=True, ei_reg_pair="none", multilabel_threshold=0.25)
    data = prepare_data(cfg.validate())
    goemotions = data.tasks[0]
    assert goemotions.kind is TaskKind.MULTILABEL and goemotions.threshold == 0.25
    assert all(part.task is goemotions for part in data["goemotions"].values())
    assert data["ei_reg"]["train"].pairs is None and data["ei_reg"]["train"].groups is not None
    assert data.tasks[1].threshold == 0.5  # a regression task is left as it is


@pytest.mark.parametrize("value", [0.0, 1.0, -0.2, 1.5])
def test_multilabel_threshold_must_be_inside_the_unit_interval(value: float) -> None:
    with pytest.raises(ConfigError, match=r"--multilabel-threshold must be in \(0, 1\)"):
        TrainConfig(multilabel_threshold=value).validate()


def test_ei_reg_pair_is_one_of_its_choices() -> None:
    """Checked by AffectEval's reader, as a method checks its method_args."""
    with pytest.raises(ConfigError, match=r"^--benchmark-args ei_reg_pair must be one of first, none, got 'second' "
                                          r"\(affecteval\)$"):
        resolve_benchmark_args(TrainConfig(ei_reg_pair="second").data.benchmark_args)
    with pytest.raises(ConfigError, match=r"^--benchmark-args: unknown option: multilabel \(did you mean "
                                          r"`goemotions_multilabel`\?\) \(the readers' options: tweeteval: source; "
                                          r"affecteval: goemotions_multilabel, ei_reg_pair\)$"):
        resolve_benchmark_args({"multilabel": "true"})
    with pytest.raises(ConfigError, match=r"goemotions_multilabel='maybe': expected a bool \(affecteval\)"):
        resolve_benchmark_args({"goemotions_multilabel": "maybe"})
    assert resolve_benchmark_args({"goemotions_multilabel": "yes", "ei_reg_pair": "none"}) == {
        "goemotions_multilabel": True, "ei_reg_pair": "none"}


def test_train_flags_include_the_affecteval_options() -> None:
    parser = build_parser()
    args = parser.parse_args([
        "train", "--benchmark", "affecteval", "--goemotions-multilabel", "--ei-reg-pair", "none",
        "--multilabel-threshold", "0.4",
    ])
    from infomtl.cli.train import config_from_args

    cfg = config_from_args(args)  # the shorthands of --benchmark-args
    assert cfg.data.benchmark_args == {"goemotions_multilabel": True, "ei_reg_pair": "none"}
    assert cfg.data.multilabel_threshold == 0.4
    same = config_from_args(parser.parse_args([
        "train", "--benchmark", "affecteval", "--benchmark-args", "goemotions_multilabel=true,ei_reg_pair=none",
        "--multilabel-threshold", "0.4"]))
    assert resolve_benchmark_args(same.data.benchmark_args) == resolve_benchmark_args(cfg.data.benchmark_args)
    assert run_id(same) == run_id(cfg)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--ei-reg-pair", "second"])


@pytest.mark.parametrize("name", ["affecteval-roberta-ew.yaml", "affecteval-bert-ew.yaml"])
def test_affecteval_presets_are_valid_configs(name: str) -> None:
    cfg = TrainConfig.from_dict(load_yaml(REPO / "configs" / name), name).validate()
    assert cfg.data.benchmark == "affecteval" and cfg.method.name == "ew" and cfg.model.head_dropout == 0.0
    optim = cfg.optim
    assert (optim.optimizer, optim.lr, optim.epochs, optim.patience) == ("adamax", 5e-5, 20, 3)
    assert cfg.batching.batch_size == 128
