"""`infomtl report`: selection by validation, tables recomputed by hand from a hand-made store."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
from scipy import stats

from infomtl.cli import main
from infomtl.experiments.report import build_tables, to_csv, to_latex, write_report
from infomtl.tasks import Metric, Task

TASKS = [
    Task("a", "classification", labels=("x", "y"), metrics=(Metric("macro_f1", "macro_f1"),)),
    Task("b", "regression", metrics=(Metric("pearson", "pearson"),)),
]
SEEDS = (0, 1, 2)

# label -> (method, point, test a per seed, test b per seed, val Avg per seed)
FULL = {
    "ew": ("ew", {}, [60, 62, 61], [50, 54, 52], [55, 55, 55]),
    "uw": ("uw", {}, [65, 67, 66.5], [55, 58, 57], [56, 56, 56]),  # consistently better: p < 0.05
    "dwa": ("dwa", {}, [70, 55, 62], [40, 60, 52], [54, 54, 54]),  # noisy: p > 0.05
}
# InfoMTL's best validation point has the worse test results.
INFOMTL = {
    "alpha=0.1": ({"alpha": 0.1}, [58, 59, 60], [48, 49, 50], [60, 61, 62]),
    "alpha=1": ({"alpha": 1}, [80, 81, 82], [70, 71, 72], [50, 51, 52]),
}


class FixtureStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan: dict[str, dict] = {}

    def add(self, label, method, point, seed, test=None, val_avg=None, ratio=1.0):
        rid = f"{label}-{len(self.plan)}"
        self.plan[rid] = {"id": rid, "label": label, "point": point, "seed": seed, "train_ratio": ratio,
                          "benchmark": "bench", "backbone": "enc", "method": method, "weighting": None}
        if test is not None:  # finished
            folder = self.root / "runs" / rid
            folder.mkdir(parents=True)
            a, b = test
            split = {"tasks": {"a": {"macro_f1": a}, "b": {"pearson": b}}, "scores": {"a": a, "b": b},
                     "avg": (a + b) / 2}
            results = {"method": method, "seed": seed, "test": split,
                       "val": {"tasks": {}, "scores": {}, "avg": val_avg}}
            (folder / "results.json").write_text(json.dumps(results))
            (folder / "run.json").write_text(json.dumps({"tasks": [t.to_dict() for t in TASKS]}))

    def save(self) -> Path:
        (self.root / "plan.json").write_text(json.dumps(self.plan))
        return self.root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    fx = FixtureStore(tmp_path / "store")
    for label, (method, point, a, b, val) in FULL.items():
        for i, seed in enumerate(SEEDS):
            fx.add(label, method, point, seed, (a[i], b[i]), val[i])
    for point, a, b, val in INFOMTL.values():
        for i, seed in enumerate(SEEDS):
            fx.add("infomtl", "infomtl", point, seed, (a[i], b[i]), val[i])
    fx.add("gls", "gls", {}, 0, (61, 51), 55)
    fx.add("gls", "gls", {}, 1, (62, 52), 55)
    fx.add("gls", "gls", {}, 2)  # planned, never finished
    for i, seed in enumerate(SEEDS):  # a second training ratio for EW alone
        fx.add("ew", "ew", {}, seed, (40 + i, 30 + i), 35, ratio=0.5)
    return fx.save()


def _rows(table) -> dict[str, dict[str, str]]:
    return {row[table.headers.index("method")]: dict(zip(table.headers, row, strict=True)) for row in table.rows}


def _hand_mean_std(values) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"  # sample std (ddof=1)


def _avgs(a, b) -> list[float]:
    return [(x + y) / 2 for x, y in zip(a, b, strict=True)]


def test_selection_picks_the_best_validation_point_not_the_best_test_point(store: Path) -> None:
    overall = _rows(build_tables(store)[0])
    assert overall["infomtl"]["selected"] == "alpha=0.1 (best of 2)"
    _, a, b, val = INFOMTL["alpha=0.1"]
    assert overall["infomtl"]["val Avg"] == f"{statistics.mean(val):.2f}"
    assert overall["infomtl"]["test Avg"].startswith(_hand_mean_std(_avgs(a, b)))


def test_overall_numbers_recomputed_by_hand(store: Path) -> None:
    overall = _rows(build_tables(store)[0])
    _, _, ew_a, ew_b, _ = FULL["ew"]
    ew_avgs = _avgs(ew_a, ew_b)
    assert overall["ew"]["test Avg"] == _hand_mean_std(ew_avgs)
    assert overall["ew"]["Δp vs EW"] == "0.00 (base)"
    for label in ("uw", "dwa"):
        _, _, a, b, _ = FULL[label]
        # Δp = 100/T Σ_t (M_t - M_t^EW) / M_t^EW on seed-mean metrics
        dp = 100 * ((statistics.mean(a) - statistics.mean(ew_a)) / statistics.mean(ew_a)
                    + (statistics.mean(b) - statistics.mean(ew_b)) / statistics.mean(ew_b)) / 2
        p = stats.ttest_rel(_avgs(a, b), ew_avgs).pvalue
        row = overall[label]
        assert row["Δp vs EW"] == f"{dp:+.2f}"
        assert row["p"] == f"{p:.3f}"
        assert row["seeds"] == "3/3"
        assert row["test Avg"] == _hand_mean_std(_avgs(a, b)) + ("†" if p < 0.05 else "")


def test_significance_mark_appears_exactly_where_p_is_below_005(store: Path) -> None:
    overall = _rows(build_tables(store)[0])
    ew_avgs = _avgs(*FULL["ew"][2:4])
    marked = {label for label, row in overall.items() if row["test Avg"].endswith("†")}
    expected = {
        label for label, (_, _, a, b, _) in FULL.items()
        if label != "ew" and stats.ttest_rel(_avgs(a, b), ew_avgs).pvalue < 0.05
    }
    _, a, b, _ = INFOMTL["alpha=0.1"]
    if stats.ttest_rel(_avgs(a, b), ew_avgs).pvalue < 0.05:
        expected.add("infomtl")
    assert marked == expected
    assert "uw" in marked and "dwa" not in marked  # the fixture has both cases


def test_a_missing_seed_is_shown_not_averaged(store: Path) -> None:
    tables = build_tables(store)
    row = _rows(tables[0])["gls"]
    assert row["seeds"] == "2/3"
    assert row["test Avg"] == "missing (2/3 seeds)"
    fine = _rows(tables[1])["gls"]
    assert fine["a macro_f1"] == "missing (2/3 seeds)"


def test_seeds_reports_the_seeds_every_row_has_and_says_so(store: Path, tmp_path: Path, capsys) -> None:
    rows = _rows(build_tables(store, seeds=[0, 1])[0])
    assert rows["gls"]["seeds"] == "2/2"  # its unfinished seed 2 is left out, not averaged
    assert rows["gls"]["test Avg"] == _hand_mean_std([(61 + 51) / 2, (62 + 52) / 2])
    _, _, a, b, _ = FULL["uw"]
    ew_avgs = _avgs(*FULL["ew"][2:4])[:2]
    assert rows["uw"]["test Avg"].startswith(_hand_mean_std(_avgs(a, b)[:2]))
    assert rows["uw"]["p"] == f"{stats.ttest_rel(_avgs(a, b)[:2], ew_avgs).pvalue:.3f}"
    out = tmp_path / "out"
    assert main(["report", str(store), "--out", str(out), "--no-plots", "--seeds", "0,1"]) == 0
    assert "missing" not in capsys.readouterr().out
    assert "Seeds 0, 1 only (`--seeds`)." in (out / "report.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["report", str(store), "--seeds", "zero"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "--seeds: expected comma-separated seeds" in err and err.count("\n") == 1


def test_fine_grained_and_ratio_tables(store: Path) -> None:
    tables = {t.name: t for t in build_tables(store)}
    fine = _rows(tables["fine_grained"])
    _, _, a, b, _ = FULL["uw"]
    assert fine["uw"]["a macro_f1"] == _hand_mean_std(a)
    assert fine["uw"]["b pearson"] == _hand_mean_std(b)
    ratios = _rows(tables["ratios"])
    assert ratios["ew"]["ratio 0.5"] == _hand_mean_std(_avgs([40, 41, 42], [30, 31, 32]))
    assert ratios["ew"]["ratio 1"] == _hand_mean_std(_avgs(*FULL["ew"][2:4]))
    assert ratios["uw"]["ratio 0.5"] == "not planned"


def test_csv_and_latex_hold_the_same_cells(store: Path) -> None:
    table = build_tables(store)[0]
    assert list(csv.reader(io.StringIO(to_csv(table)))) == [table.headers, *table.rows]
    tex = to_latex(table)
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex and "$^\\dagger$" in tex


def test_report_cli_prints_markdown_and_writes_files(store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", str(store), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| infomtl" in printed and "missing (2/3 seeds)" in printed
    for name in ("overall", "fine_grained", "ratios"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"{name}.{ext}").is_file()


def test_report_plots_are_png(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _, written = write_report(store, tmp_path / "out")
    pngs = [p for p in written if p.suffix == ".png"]
    assert {p.name for p in pngs} == {"delta_p.png", "ratios.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_report_of_a_folder_that_is_not_a_store_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a results store" in err and err.count("\n") == 1


def test_latex_escapes_every_special_character() -> None:
    from infomtl.tables import latex_escape

    assert latex_escape(r"a\b^c~d & 5% x_1 #2 $3 {4}") == (
        r"a\textbackslash{}b\textasciicircum{}c\textasciitilde{}d \& 5\% x\_1 \#2 \$3 \{4\}")
    assert latex_escape("60.1 ± 0.2 †") == r"60.1 $\pm$ 0.2 $^\dagger$"
