"""`infomtl report`: ablation variants get their own table (and stay out of the comparison),
runs on task pairs get the pairwise table and the task x partner matrix; numbers by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infomtl.cli import main
from infomtl.experiments.report import build_tables, to_latex
from infomtl.tasks import Metric, Task

TASKS = {n: Task(n, "classification", labels=("x", "y"), metrics=(Metric("macro_f1", "macro_f1"),))
         for n in ("a", "b", "c")}


class StoreBuilder:
    """A hand-made results store: plan.json and finished run folders with chosen test scores."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan: dict[str, dict] = {}

    def add(self, label, method, seed, scores=None, method_args=None, task_set=None, val=50.0,
            in_plan=True, point=None):
        """``scores``: task -> test score (None: planned, not finished). ``in_plan=False`` leaves
        ``method_args`` out of the plan (a store planned before it was recorded)."""
        rid = f"run{len(self.plan):03d}"
        meta = {"id": rid, "label": label, "point": point or {}, "seed": seed, "train_ratio": 1.0,
                "benchmark": "bench", "backbone": "enc", "method": method, "weighting": None}
        if in_plan:
            meta["method_args"] = method_args or {}
        if task_set:
            meta["task_set"] = list(task_set)
        self.plan[rid] = meta
        if scores is not None:
            folder = self.root / "runs" / rid
            folder.mkdir(parents=True)
            split = {"tasks": {t: {"macro_f1": s} for t, s in scores.items()}, "scores": dict(scores),
                     "avg": sum(scores.values()) / len(scores)}
            results = {"method": method, "seed": seed, "test": split, "val": {"avg": val, "tasks": {}}}
            (folder / "results.json").write_text(json.dumps(results))
            (folder / "run.json").write_text(json.dumps({"tasks": [TASKS[t].to_dict() for t in scores]}))
            (folder / "config.yaml").write_text(yaml.safe_dump({"method": method, "method_args": method_args or {}}))
        return rid

    def save(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "plan.json").write_text(json.dumps(self.plan))
        return self.root


def _table(tables, name):
    return next(t for t in tables if t.name == name)


def _cells(table, *keys):
    """(key columns) -> {header: cell} for every row."""
    idx = [table.headers.index(k) for k in keys]
    return {tuple(row[i] for i in idx) if len(idx) > 1 else row[idx[0]]: dict(zip(table.headers, row, strict=True))
            for row in table.rows}


# --------------------------------------------------------------------------- #
# Ablations
# --------------------------------------------------------------------------- #

# label -> (method, method_args, per seed (a, b, c)); Avg per seed in the comment
ABLATION_STORE = {
    "ew": ("ew", {}, [(60, 50, 40), (61, 50, 42), (62, 50, 44)]),                       # 50, 51, 52
    "infomtl": ("infomtl", {"alpha": 0.1}, [(70, 60, 50), (72, 61, 50), (71, 62, 53)]),  # 60, 61, 62
    "infomtl w/o SIMax": ("infomtl", {"alpha": 0.1, "simax": False},
                          [(68, 60, 49), (70, 61, 49), (69, 62, 52)]),                    # 59, 60, 61
    "infomtl w/o TIMin": ("infomtl", {"alpha": 0.1, "timin": False},
                          [(66, 57, 45), (66, 60, 45), (66, 57, 45)]),                    # 56, 57, 56
    "vipmtl": ("vipmtl", {"beta": 0.01}, [(75, 60, 45), (75, 60, 45), (75, 60, 48)]),     # 60, 60, 61
    "vipmtl w/o VI": ("vipmtl", {"beta": 0.01, "variance_norm": "false"},
                      [(70, 60, 50), (70, 60, 50), (70, 60, 50)]),                        # 60, 60, 60
    "uw": ("uw", {}, [(63, 51, 42), (64, 51, 43), (65, 51, 44)]),                         # 52, 52.67, 53.33
}


@pytest.fixture
def ablation_store(tmp_path: Path) -> Path:
    store = StoreBuilder(tmp_path / "ablation")
    for label, (method, args, per_seed) in ABLATION_STORE.items():
        for seed, (a, b, c) in enumerate(per_seed):
            # "w/o TIMin" as in a store planned before the plan recorded method_args: read from config.yaml
            store.add(label, method, seed, {"a": a, "b": b, "c": c}, args, in_plan=label != "infomtl w/o TIMin")
    return store.save()


def test_ablation_variants_stay_out_of_the_comparison_tables(ablation_store: Path) -> None:
    tables = build_tables(ablation_store)
    for name in ("overall", "fine_grained"):
        methods = [row[_table(tables, name).headers.index("method")] for row in _table(tables, name).rows]
        assert methods == ["ew", "infomtl", "vipmtl", "uw"]


def test_ablation_table_rows_and_numbers_by_hand(ablation_store: Path) -> None:
    table = _table(build_tables(ablation_store), "ablation")
    assert table.headers == ["method", "ablation", "seeds", "a", "b", "c", "Avg", "Δ Avg vs full", "p"]
    assert [(r[0], r[1]) for r in table.rows] == [
        ("infomtl", "full"), ("infomtl w/o SIMax", "w/o SIMax"), ("infomtl w/o TIMin", "w/o TIMin"),
        ("ew", "w/o SIMax & TIMin (= EW)"),
        ("vipmtl", "full"), ("vipmtl w/o VI", "w/o VI"), ("ew", "w/o VIP (= EW)"),
    ]
    rows = {(r[0], r[1]): dict(zip(table.headers, r, strict=True)) for r in table.rows}
    full = rows[("infomtl", "full")]
    assert (full["a"], full["b"], full["c"]) == ("71.00 ± 1.00", "61.00 ± 1.00", "51.00 ± 1.73")
    assert full["Avg"] == "61.00 ± 1.00" and full["Δ Avg vs full"] == "0.00 (full)" and full["p"] == ""
    # w/o SIMax: Avg 59, 60, 61 -> every seed exactly 1 below the full method: paired p = 0
    simax = rows[("infomtl w/o SIMax", "w/o SIMax")]
    assert simax["Avg"] == "60.00 ± 1.00" and simax["Δ Avg vs full"] == "-1.00†" and simax["p"] == "0.000"
    # w/o TIMin: Avg 56, 57, 56 -> mean 56.33 (std 0.58); differences 4, 4, 6 -> t = 4.667/(1.155/√3) = 7.0
    timin = rows[("infomtl w/o TIMin", "w/o TIMin")]
    assert timin["Avg"] == "56.33 ± 0.58" and timin["Δ Avg vs full"] == "-4.67†" and timin["p"] == "0.020"
    # EW = every component removed: Avg 50, 51, 52, 11 below InfoMTL on every seed
    ew = rows[("ew", "w/o SIMax & TIMin (= EW)")]
    assert ew["Avg"] == "51.00 ± 1.00" and ew["Δ Avg vs full"] == "-10.00†"
    # VIP-MTL: full 60, 60, 61 vs w/o VI 60, 60, 60: differences 0, 0, -1 -> t = -1, p = 0.423
    vi = rows[("vipmtl w/o VI", "w/o VI")]
    assert vi["a"] == "70.00 ± 0.00" and vi["Avg"] == "60.00 ± 0.00"
    assert vi["Δ Avg vs full"] == "-0.33" and vi["p"] == "0.423"
    assert rows[("ew", "w/o VIP (= EW)")]["Δ Avg vs full"] == "-9.33†"
    assert "w/o SIMax" in to_latex(table) and "$\\Delta$ Avg vs full" in to_latex(table)


def test_a_missing_ablation_seed_is_shown_and_an_unmatched_variant_has_no_delta(tmp_path: Path) -> None:
    store = StoreBuilder(tmp_path / "store")
    for seed in (0, 1):
        store.add("InfoMTL", "infomtl", seed, {"a": 70, "b": 60})
        store.add("VIP w/o VI", "vip-mtl", seed, {"a": 60, "b": 50}, {"variance_norm": False})
    store.add("InfoMTL -SIMax", "infomtl", 0, {"a": 69, "b": 59}, {"simax": False})
    store.add("InfoMTL -SIMax", "infomtl", 1)  # planned, not finished
    table = _table(build_tables(store.save()), "ablation")
    rows = {r[0]: dict(zip(table.headers, r, strict=True)) for r in table.rows}
    assert rows["InfoMTL -SIMax"]["Avg"] == "missing (1/2 seeds)" and rows["InfoMTL -SIMax"]["seeds"] == "1/2"
    assert rows["VIP w/o VI"]["ablation"] == "w/o VI" and rows["VIP w/o VI"]["Δ Avg vs full"] == "n/a"
    assert "ew" not in rows  # no EW in the store: no "everything removed" row


# --------------------------------------------------------------------------- #
# Task pairs
# --------------------------------------------------------------------------- #

# (label, task set) -> per seed scores of the set's tasks
PAIR_STORE = {
    ("ew", ("a", "b")): [(68, 61), (69, 61)],
    ("ew", ("a", "c")): [(70, 50), (70, 52)],
    ("ew", ("b", "c")): [(60, 50), None],  # seed 1 not finished
    ("infomtl", ("a", "b")): [(70, 60), (72, 62)],
    ("infomtl", ("a", "c")): [(74, 51), (74, 53)],
    ("infomtl", ("b", "c")): [(63, 55), (63, 57)],
    ("infomtl", ("a",)): [(65,), (67,)],  # a alone
    ("ew", ("a", "b", "c")): [(66, 60, 50), (66, 60, 52)],  # a subset of 3 tasks, pairs table only
}


@pytest.fixture
def pair_store(tmp_path: Path) -> Path:
    store = StoreBuilder(tmp_path / "pairs")
    for (label, task_set), per_seed in PAIR_STORE.items():
        for seed, scores in enumerate(per_seed):
            store.add(label, label, seed, None if scores is None else dict(zip(task_set, scores, strict=True)),
                      task_set=task_set)
    for seed in (0, 1):  # the same labels on all tasks
        store.add("ew", "ew", seed, {"a": 67, "b": 59, "c": 49 + seed})
        store.add("infomtl", "infomtl", seed, {"a": 73, "b": 62, "c": 54})
    return store.save()


def test_pair_runs_stay_out_of_the_comparison_tables(pair_store: Path) -> None:
    tables = build_tables(pair_store)
    overall = _cells(_table(tables, "overall"), "method")
    assert list(overall) == ["ew", "infomtl"]
    assert overall["ew"]["test Avg"] == "58.50 ± 0.24"  # (67+59+49)/3, (67+59+50)/3: the full-task runs only


def test_pairs_table_by_hand(pair_store: Path) -> None:
    table = _table(build_tables(pair_store), "pairs")
    assert table.headers == ["tasks", "task", "ew", "infomtl", "Δ infomtl"]
    rows = _cells(table, "tasks", "task")
    assert list(rows)[:3] == [("a+b", "a"), ("a+b", "b"), ("a+b", "Avg")]
    # a with b: EW 68, 69; InfoMTL 70, 72 -> +2.50; per-seed differences 2, 3: t = 5, df 1, p = 0.126
    assert rows[("a+b", "a")]["ew"] == "68.50 ± 0.71" and rows[("a+b", "a")]["infomtl"] == "71.00 ± 1.41"
    assert rows[("a+b", "a")]["Δ infomtl"] == "+2.50"
    # pair Avg: EW 64.5, 65; InfoMTL 65, 67
    assert rows[("a+b", "Avg")]["ew"] == "64.75 ± 0.35" and rows[("a+b", "Avg")]["Δ infomtl"] == "+1.25"
    # a with c: InfoMTL 74, 74 vs EW 70, 70: constant difference 4 -> p = 0: marked
    assert rows[("a+c", "a")]["Δ infomtl"] == "+4.00†"
    assert rows[("b+c", "b")]["ew"] == "missing (1/2 seeds)" and rows[("b+c", "b")]["Δ infomtl"] == ""
    assert rows[("a+b+c", "c")]["ew"] == "51.00 ± 1.41" and rows[("a+b+c", "c")]["infomtl"] == "not planned"
    assert ("a", "a") not in rows  # single-task runs only feed the matrix diagonal


def test_pair_matrix_by_hand(pair_store: Path) -> None:
    tables = build_tables(pair_store)
    matrix = _table(tables, "pair_matrix-infomtl")
    assert matrix.headers == ["task", "with a", "with b", "with c", "best partner", "all tasks"]
    rows = _cells(matrix, "task")
    assert rows["a"] == {"task": "a", "with a": "66.00 (alone)", "with b": "71.00", "with c": "74.00",
                         "best partner": "c (74.00)", "all tasks": "73.00"}
    assert rows["b"]["with a"] == "61.00" and rows["b"]["with c"] == "63.00"
    assert rows["b"]["best partner"] == "c (63.00)"
    assert rows["c"]["with c"] == "-" and rows["c"]["best partner"] == "b (56.00)"
    ew = _cells(_table(tables, "pair_matrix-ew"), "task")
    assert ew["b"]["with c"] == "missing (1/2 seeds)" and ew["b"]["best partner"] == "a (61.00)"


def test_report_cli_writes_the_new_tables(pair_store: Path, ablation_store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", str(pair_store), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "## Task subsets (test; bench, enc, ratio 1)" in printed
    for name in ("pairs", "pair_matrix-ew", "pair_matrix-infomtl"):
        assert all((out / f"{name}.{ext}").is_file() for ext in ("md", "csv", "tex"))
    assert (out / "report.md").read_text().count("## ") >= 5
    assert main(["report", str(ablation_store), "--out", str(tmp_path / "out2"), "--no-plots"]) == 0
    assert (tmp_path / "out2" / "ablation.csv").read_text().splitlines()[0] == \
        "method,ablation,seeds,a,b,c,Avg,Δ Avg vs full,p"
