"""docs/adding-a-method.md and docs/adding-a-benchmark.md: their code blocks register, train and are removed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fakes import small_config
from infomtl.methods import registry

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "adding-a-method.md"


def page_code() -> str:
    """The first Python block of the page: the whole method file."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## The file", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def inverse_loss():
    """Register the page's weighting from this module; unregister it afterwards."""
    namespace: dict = {"__name__": __name__}
    exec(compile(page_code(), str(PAGE), "exec"), namespace)
    cls = namespace["InverseLossWeighting"]
    try:
        yield cls
    finally:
        registry.WEIGHTINGS.pop(cls.name, None)
        for alias in cls.aliases:
            registry._ALIASES.pop(alias, None)


def test_registered_method_resolves_and_trains(inverse_loss, tmp_path) -> None:
    from infomtl.training import train

    assert registry.WEIGHTINGS["inverse-loss"] is inverse_loss
    spec = registry.resolve_method("inverse-loss", args={"eps": "1e-6"})
    assert (spec.objective, spec.weighting, spec.weighting_hp.eps) == ("linear", "inverse-loss", 1e-6)
    assert "inverse-loss" in registry.method_names()

    config = small_config(tmp_path / "run", method="inverse-loss", max_train_examples=16, batch_size=16)
    result = train(config)
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    weights = log[-1]["train"]["weights"]
    assert result.results["method_spec"]["weighting"] == "inverse-loss"
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-4)  # mean 1, divided by T
    assert len({round(w, 6) for w in weights.values()}) > 1  # not equal weighting
    assert (result.run_dir / "results.json").exists()


def test_registration_is_removed_afterwards() -> None:
    assert "inverse-loss" not in registry.WEIGHTINGS
    assert "inverse-loss" not in registry.method_names()


# -- docs/adding-a-benchmark.md -------------------------------------------------------------

BENCHMARK_PAGE = REPO / "docs" / "adding-a-benchmark.md"


@pytest.fixture
def mybench(tmp_path, monkeypatch):
    """The page's loader, registered from this module as ``mybench`` (monkeypatch removes it),
    over a data root with two task folders."""
    from infomtl.data import loading

    text = BENCHMARK_PAGE.read_text(encoding="utf-8").split("## The file", 1)[1]
    namespace: dict = {"__name__": __name__}
    exec(compile(re.search(r"```python\n(.*?)```", text, re.S).group(1), str(BENCHMARK_PAGE), "exec"), namespace)
    monkeypatch.setitem(loading.BENCHMARKS, "mybench", namespace["load_mybench"])
    root = tmp_path / "data"
    for task, labels in (("topic", ("Sport", "Music")), ("mood", ("Good", "Bad"))):
        for split, n in (("train", 24), ("val", 8), ("test", 8)):
            folder = root / "mybench" / task
            folder.mkdir(parents=True, exist_ok=True)
            rows = [f"Row {i} About {labels[i % 2]}\t{labels[i % 2].lower()}" for i in range(n)]
            (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_registered_benchmark_loads_with_its_option_and_trains(mybench, tmp_path) -> None:
    from infomtl.config import TrainConfig
    from infomtl.data.loading import load_data
    from infomtl.training import train

    plain = load_data(TrainConfig(benchmark="mybench", data_dir=str(mybench)))
    assert plain.task_names == ["mood", "topic"]
    assert plain.splits["topic"]["train"].texts[0] == "Row 0 About Sport"
    lowered = load_data(TrainConfig(benchmark="mybench", data_dir=str(mybench), tasks=["topic"],
                                    benchmark_args={"lowercase": "true"}))
    assert lowered.task_names == ["topic"]
    assert lowered.splits["topic"]["train"].texts[0] == "row 0 about sport"

    config = small_config(tmp_path / "run", benchmark="mybench", data_dir=str(mybench), batch_size=16)
    result = train(config)
    assert set(result.results["test"]["tasks"]) == {"mood", "topic"}
    assert (result.run_dir / "results.json").exists()


def test_a_registered_benchmarks_unknown_option_is_refused_with_its_options(mybench) -> None:
    from infomtl.config import TrainConfig
    from infomtl.data.loading import load_data
    from infomtl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lowercas.*mybench: lowercase"):
        load_data(TrainConfig(benchmark="mybench", data_dir=str(mybench), benchmark_args={"lowercas": "1"}))
