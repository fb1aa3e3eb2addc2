"""The export's model card: Hub metadata that huggingface_hub parses back, with model-index values
equal to the run's results.json, and the card's sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from infomtl.cli import main
from infomtl.data.affecteval import AFFECTEVAL_TASKS
from infomtl.errors import ConfigError
from infomtl.inference.export import export_run
from infomtl.inference.model_card import base_model, card_metadata, task_dataset
from infomtl.tasks import TWEETEVAL_TASKS, Task

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    return export_run(tiny_run, tmp_path_factory.mktemp("card") / "model")


def test_front_matter_parses_with_the_hub_fields(tiny_run, exported) -> None:
    meta = metadata_load(exported / "README.md")
    assert meta["library_name"] == "infomtl" and meta["pipeline_tag"] == "text-classification"
    assert meta["license"] == "other"
    assert meta["tags"] == ["infomtl", "multi-task-learning", "ew"]
    assert "base_model" not in meta and "datasets" not in meta  # tiny and the synthetic benchmark: none
    results = json.loads((tiny_run / "results.json").read_text(encoding="utf-8"))
    card = ModelCard.load(exported / "README.md")
    got = {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert got == {(f"infomtl synthetic ({task})", f"{task} macro_f1"): metrics["macro_f1"]
                   for task, metrics in results["test"]["tasks"].items()}
    assert {(r.dataset_split, r.task_type, r.metric_type) for r in card.data.eval_results} == {
        ("test", "text-classification", "f1")}
    assert card.data.eval_results[0].metric_args == {"average": "macro"}
    assert meta["model-index"][0]["name"] == "infomtl model: ew on sentiment, topic, urgency"


def test_card_sections(exported) -> None:
    text = ModelCard.load(exported / "README.md").text
    for heading in ("## Tasks", "## Metrics", "## Training", "## Use", "## Intended use", "## Limitations"):
        assert f"\n{heading}\n" in text, heading
    limitations = text.split("## Limitations")[1]
    assert "`tiny` is a small randomly initialised encoder" in limitations
    assert "at most 32 rows per task" in limitations and "at most 64 rows per task" in limitations
    assert "license field is `other`" in limitations


def test_export_license_option(tiny_run, tmp_path, capsys) -> None:
    assert main(["export", str(tiny_run), str(tmp_path / "mit"), "--license", "mit"]) == 0
    text = (tmp_path / "mit" / "README.md").read_text(encoding="utf-8")
    assert metadata_load(tmp_path / "mit" / "README.md")["license"] == "mit"
    assert "license field is" not in text
    assert main(["export", str(tiny_run), str(tmp_path / "bad"), "--license", "MIT License"]) == 2
    err = capsys.readouterr().err
    assert "--license 'MIT License': expected a Hub license id" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_base_model_of_a_backbone(tmp_path) -> None:
    assert base_model("tiny") is None
    assert base_model("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model("roberta-base") == "roberta-base"
    assert base_model("FacebookAI/roberta-base") == "FacebookAI/roberta-base"
    (tmp_path / "enc").mkdir()
    assert base_model(str(tmp_path / "enc")) is None
    assert base_model("./my encoder") is None


def test_datasets_of_the_sources() -> None:
    assert task_dataset("irony", "tweeteval", {}).hub_id == "cardiffnlp/tweet_eval"
    assert task_dataset("irony", "tweeteval", {}).config == "irony"
    assert task_dataset("stance", "tweeteval", {}).config is None  # five configs pooled
    emotion = task_dataset("emotioneval", "affecteval", {})
    assert (emotion.hub_id, emotion.config) == ("cardiffnlp/tweet_eval", "emotion")
    assert task_dataset("goemotions", "affecteval", {}).hub_id == "google-research-datasets/go_emotions"
    assert task_dataset("emobank", "affecteval", {}).hub_id is None
    spec = {"dataset": "org/reviews", "config": "en", "revision": "v1", "label": "stars", "name": "stars"}
    ref = task_dataset("stars", "hf:org/reviews:en", {"hf_tasks": [spec]})
    assert (ref.hub_id, ref.config, ref.revision, ref.name) == ("org/reviews", "en", "v1", "org/reviews (en)")
    local = task_dataset("mine", "hf:./data/x", {"hf_tasks": [{"dataset": "./data/x", "name": "mine"}]})
    assert local.hub_id is None
    assert task_dataset("emoji", "folder:tasks/emoji", {}).name == "emoji (emoji)"


def test_model_index_of_tweeteval_and_affecteval_tasks(tmp_path) -> None:
    """Official metrics only, with their averaging args, labels and targets; datasets and tags."""
    tasks: list[Task] = [TWEETEVAL_TASKS["irony"], TWEETEVAL_TASKS["sentiment"], AFFECTEVAL_TASKS["emobank"]]
    sources = {"irony": "tweeteval", "sentiment": "tweeteval", "emobank": "affecteval"}
    (tmp_path / "run.json").write_text(json.dumps({"sources": sources}), encoding="utf-8")
    scores = {"irony": {"f1_irony": 61.5}, "sentiment": {"macro_recall": 70.25},
              "emobank": {"pearson_V": 70.0, "pearson_A": 40.0, "pearson_D": 30.0, "spearman_V": 69.0}}
    data = card_metadata(tmp_path, tasks, {"test": {"tasks": scores}}, {"backbone": "minilm"}, "vipmtl", "mit")
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.license == "mit"
    assert data.datasets == ["cardiffnlp/tweet_eval"]
    assert data.tags == ["infomtl", "multi-task-learning", "vipmtl", "tweeteval", "affecteval"]
    got = {r.metric_name: (r.metric_type, r.metric_value, r.metric_args, r.dataset_type, r.dataset_config)
           for r in data.eval_results}
    assert got == {
        "irony f1_irony": ("f1", 61.5, {"average": "macro", "labels": ["irony"]}, "cardiffnlp/tweet_eval", "irony"),
        "sentiment macro_recall": ("recall", 70.25, {"average": "macro"}, "cardiffnlp/tweet_eval", "sentiment"),
        "emobank pearson_V": ("pearsonr", 70.0, {"target": "V"}, "emobank", None),
        "emobank pearson_A": ("pearsonr", 40.0, {"target": "A"}, "emobank", None),
        "emobank pearson_D": ("pearsonr", 30.0, {"target": "D"}, "emobank", None),
    }
    with pytest.raises(ConfigError, match="expected a Hub license id"):
        card_metadata(tmp_path, tasks, {}, {}, "vipmtl", "Apache 2")
    assert card_metadata(tmp_path, tasks, {}, {}, "vipmtl").eval_results is None  # no results.json: no index
