"""Sweeps over task subsets (`task_sets:`): every pair, each task alone, explicit lists."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from infomtl.errors import ConfigError
from infomtl.experiments.plan import expand_sweep, expand_task_sets, load_sweep
from infomtl.experiments.sweep import describe_runs
from infomtl.tasks import TWEETEVAL_ORDER

BASE = {"benchmark": "tweeteval", "backbone": "tiny", "epochs": 1, "progress": False}


def test_pairs_cover_every_pair_of_the_benchmark_once() -> None:
    runs = expand_sweep({"base": BASE, "methods": [{"method": "ew"}, {"method": "infomtl"}],
                         "seeds": [0, 1], "task_sets": "pairs"})
    pairs = list(itertools.combinations(TWEETEVAL_ORDER, 2))
    assert len(pairs) == 15 and len(runs) == 2 * 15 * 2 == len({r.run_id for r in runs})
    assert sorted({r.task_set for r in runs}) == sorted(pairs)
    for run in runs:
        assert run.config.data.tasks == list(run.task_set)
        assert run.meta()["task_set"] == list(run.task_set)
    affect = expand_task_sets("pairs", "affecteval", {})
    assert affect == [("goemotions", "emotioneval"), ("goemotions", "emobank"), ("goemotions", "ei_reg"),
                      ("emotioneval", "emobank"), ("emotioneval", "ei_reg"), ("emobank", "ei_reg")]


def test_task_set_items_all_singles_lists_and_strings() -> None:
    sets = expand_task_sets(["all", "singles", ["emotion", "irony"], "hate, stance", "emotion,irony"],
                            "tweeteval", {})
    assert sets == [None, *[(t,) for t in TWEETEVAL_ORDER], ("emotion", "irony"), ("hate", "stance")]
    runs = expand_sweep({"base": BASE, "methods": [{"method": "ew"}], "seeds": [0], "task_sets": ["all", "singles"]})
    assert runs[0].config.data.tasks == [] and "task_set" not in runs[0].meta()  # "all" is a plain run
    assert [r.config.data.tasks for r in runs[1:]] == [[t] for t in TWEETEVAL_ORDER]
    # without task_sets nothing changes (the same ids as before the option existed)
    plain = expand_sweep({"base": BASE, "methods": [{"method": "ew"}], "seeds": [0]})
    assert plain[0].run_id == runs[0].run_id and plain[0].task_set is None


def test_pairs_range_over_the_base_tasks_when_given() -> None:
    assert expand_task_sets("pairs", "tweeteval", {"tasks": "emotion,irony,hate"}) == [
        ("emotion", "irony"), ("emotion", "hate"), ("irony", "hate")]


@pytest.mark.parametrize(("task_sets", "base", "needle"), [
    ([["emotion", "nope"]], {}, "unknown tweeteval task: nope"),
    ([["emotion", "emotion"]], {}, "listed twice"),
    ([{"a": 1}], {}, "expected a list of task names"),
    ("pairs", {"task_dirs": ["x", "y"]}, "needs a built-in benchmark"),
])
def test_bad_task_sets_fail_before_anything_runs(task_sets, base, needle) -> None:
    with pytest.raises(ConfigError, match="my.yaml: task_sets") as info:
        expand_sweep({"base": {**BASE, **base}, "methods": [{"method": "ew"}], "task_sets": task_sets}, "my.yaml")
    assert needle in str(info.value)


def test_plan_records_method_args_and_dry_run_shows_the_tasks(tmp_path) -> None:
    runs = expand_sweep({"base": BASE, "methods": [{"method": "infomtl", "method_args": {"timin": False}}],
                         "seeds": [0], "task_sets": [["emotion", "irony"]]})
    assert runs[0].meta()["method_args"] == {"timin": False}
    assert "tasks=emotion+irony" in describe_runs(runs, tmp_path / "store")


@pytest.mark.parametrize("preset", sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_preset_run_counts_match_their_comments(preset: Path) -> None:
    """A preset's header comment says how many runs it plans ("... = 45 runs"): keep it true."""
    stated = re.search(r"(\d+) runs", preset.read_text(encoding="utf-8"))
    runs = load_sweep(preset)
    assert runs and len({r.run_id for r in runs}) == len(runs)
    if stated:
        assert len(runs) == int(stated.group(1))
