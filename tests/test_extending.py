"""docs/adding-a-method.md: the weighting of its code block registers, trains and is removed."""

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
