"""`infomtl report` collects the analyses written into a store's run folders: robustness,
representation quality and information-plane tables (numbers by hand) and the PNGs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from infomtl.cli import main
from infomtl.experiments.report import build_tables, write_report
from test_report_ablation_pairs import StoreBuilder

ROBUSTNESS = {  # run -> kind -> ε -> test Avg
    "ew0": {"random": {0: 60, 1: 50, 2: 40}, "fgm": {0: 60, 1: 45, 2: 30}},
    "ew1": {"random": {0: 62, 1: 52, 2: 44}, "fgm": {0: 62, 1: 47, 2: 34}},
    "info0": {"random": {0: 61, 1: 57, 2: 50}, "fgm": {0: 61, 1: 52, 2: 41}},
    "info1": {"random": {0: 63, 1: 57, 2: 52}, "fgm": {0: 63, 1: 54, 2: 45}},
}
REPRESENTATIONS = {  # run -> (uniformity, a ARI, a silhouette, b ARI, mean ARI, mean silhouette)
    "ew0": (-1.2, 0.1, 0.5, 0.3, 0.2, 0.5),
    "ew1": (-1.4, 0.2, 0.6, 0.5, 0.35, 0.6),
    "info_alpha1": (-2.0, 0.4, 0.7, 0.6, 0.5, 0.7),  # a grid point that was not selected
}


def _robustness(run: Path, kinds: dict) -> dict:
    return {"run": str(run), "split": "test", "strengths": [0, 1, 2],
            "kinds": {k: {f"{e:g}": {"avg": v, "scores": {}, "tasks": {}} for e, v in per.items()}
                      for k, per in kinds.items()}}


def _write(path: Path, data: dict, age_s: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    if age_s:
        stamp = path.stat().st_mtime - age_s
        os.utime(path, (stamp, stamp))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    sb = StoreBuilder(tmp_path / "store")
    ids = {}
    for seed in (0, 1):
        ids[f"ew{seed}"] = sb.add("ew", "ew", seed, {"a": 60, "b": 50}, val=50)
    for seed in (0, 1):
        ids[f"info{seed}"] = sb.add("infomtl", "infomtl", seed, {"a": 61, "b": 51}, {"alpha": 0.1},
                                    val=60, point={"alpha": 0.1})
    for seed in (0, 1):
        ids[f"info_alpha{seed}"] = sb.add("infomtl", "infomtl", seed, {"a": 70, "b": 60}, {"alpha": 1},
                                          val=40, point={"alpha": 1})
    root = sb.save()
    run = {name: root / "runs" / rid for name, rid in ids.items()}
    # `infomtl analyze robustness ew0 info0 --reference ew0` and the same for seed 1 ...
    for seed in (0, 1):
        _write(run[f"ew{seed}"] / "analysis" / "robustness.json", {"reference": ids[f"ew{seed}"], "results": {
            ids[f"ew{seed}"]: _robustness(run[f"ew{seed}"], ROBUSTNESS[f"ew{seed}"]),
            ids[f"info{seed}"]: _robustness(run[f"info{seed}"], ROBUSTNESS[f"info{seed}"]),
            "elsewhere": _robustness(tmp_path / "not-in-the-store", ROBUSTNESS["ew0"]),
        }})
    # ... and an older analysis of info0 alone, superseded
    _write(run["info0"] / "analysis" / "robustness.json", {"reference": None, "results": {
        ids["info0"]: _robustness(run["info0"], {"random": {0: 0, 1: 0, 2: 0}})}}, age_s=3600)
    _write(run["ew0"] / "analysis" / "representations.json", {
        ids[name]: {"run": str(run[name]), "split": "test", "uniformity": u,
                    "tasks": {"a": {"ari": a_ari, "silhouette": a_sil}, "b": {"ari": b_ari, "silhouette": None}},
                    "mean": {"ari": m_ari, "silhouette": m_sil}, "skipped": []}
        for name, (u, a_ari, a_sil, b_ari, m_ari, m_sil) in REPRESENTATIONS.items()})
    _write(run["info0"] / "analysis" / "information.json", {
        ids["info0"]: {"run": str(run["info0"]), "epochs": [1, 2, 3], "ixz": [1.0, 2.0, 3.0],
                       "izzt": {}, "izzt_mean": [5.0, 4.0, 3.5], "selected_epoch": 2},
        ids["info1"]: {"run": str(run["info1"]), "epochs": [1, 2, 3], "ixz": [1.5, 2.5, 2.8],
                       "izzt": {}, "izzt_mean": [5.0, 4.5, 4.0], "selected_epoch": 3}})
    (run["ew0"] / "analysis" / "robustness.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def _rows(table, *keys):
    idx = [table.headers.index(k) for k in keys]
    return {tuple(r[i] for i in idx): dict(zip(table.headers, r, strict=True)) for r in table.rows}


def test_robustness_table_by_hand(store: Path) -> None:
    table = next(t for t in build_tables(store) if t.name == "robustness")
    assert table.headers == ["method", "perturbation", "seeds", "ε=0", "ε=1", "ε=2", "Δ vs ew"]
    rows = _rows(table, "method", "perturbation")
    assert list(rows) == [("ew", "random"), ("ew", "fgm"), ("infomtl", "random"), ("infomtl", "fgm")]
    assert rows[("ew", "random")]["ε=2"] == "42.00 ± 2.83" and rows[("ew", "random")]["Δ vs ew"] == "0.00 (base)"
    # the newest file wins: info0 from ew0's analysis, not the older all-zero one
    info = rows[("infomtl", "random")]
    assert (info["seeds"], info["ε=0"], info["ε=1"], info["ε=2"]) == (
        "2", "62.00 ± 1.41", "57.00 ± 0.00", "51.00 ± 1.41")
    assert info["Δ vs ew"] == "+7.50"  # ((57 - 51) + (51 - 42)) / 2 over ε > 0
    assert rows[("infomtl", "fgm")]["Δ vs ew"] == "+9.00"  # ((53 - 46) + (43 - 32)) / 2


def test_representations_table_by_hand(store: Path) -> None:
    table = next(t for t in build_tables(store) if t.name == "representations")
    assert table.headers == ["method", "seeds", "uniformity ↓", "a ARI ↑", "a Sil. ↑", "b ARI ↑", "b Sil. ↑",
                             "mean ARI ↑", "mean Sil. ↑"]
    rows = _rows(table, "method")
    assert rows[("ew",)] == {"method": "ew", "seeds": "2", "uniformity ↓": "-1.300 ± 0.141",
                             "a ARI ↑": "0.150 ± 0.071", "a Sil. ↑": "0.550 ± 0.071", "b ARI ↑": "0.400 ± 0.141",
                             "b Sil. ↑": "-", "mean ARI ↑": "0.275 ± 0.106", "mean Sil. ↑": "0.550 ± 0.071"}
    assert rows[("infomtl [alpha=1]",)]["uniformity ↓"] == "-2.000"  # not the selected point: named


def test_information_table_by_hand(store: Path) -> None:
    table = next(t for t in build_tables(store) if t.name == "information")
    row = dict(zip(table.headers, table.rows[0], strict=True))
    assert row == {"method": "infomtl", "seeds": "2", "selected epochs": "2, 3", "Î(X;Z)": "2.400 ± 0.566",
                   "Î(Z;Z_t), mean over tasks": "4.000 ± 0.000"}


def test_report_md_embeds_the_analysis_pngs(store: Path, tmp_path: Path) -> None:
    markdown, written = write_report(store, tmp_path / "out", plots=False)
    report = (tmp_path / "out" / "report.md").read_text()
    rid = next(iter(json.loads((store / "plan.json").read_text())))
    link = (f"![robustness (runs/{rid}: ew, seed 0, and the runs analysed with it)]"
            f"(../store/runs/{rid}/analysis/robustness.png)")
    assert link in report and link in markdown
    for name in ("robustness", "representations", "information"):
        assert tmp_path / "out" / f"{name}.csv" in written


def test_analysing_a_store_run_writes_where_the_report_finds_it(tiny_run: Path, tmp_path: Path) -> None:
    sb = StoreBuilder(tmp_path / "store")
    rid = sb.add("ew", "ew", 0)
    root = sb.save()
    run_dir = root / "runs" / rid
    shutil.copytree(tiny_run, run_dir)
    assert main(["analyze", "robustness", str(run_dir), "--max-examples", "8", "--strengths", "0,1",
                 "--kinds", "random"]) == 0
    assert main(["analyze", "representations", str(run_dir), "--max-examples", "16"]) == 0
    saved = json.loads((run_dir / "analysis" / "robustness.json").read_text())["results"]["ew seed 0"]  # named by label
    assert Path(saved["run"]).name == rid
    tables = {t.name: t for t in build_tables(root)}
    row = dict(zip(tables["robustness"].headers, tables["robustness"].rows[0], strict=True))
    assert row["ε=1"] == f"{saved['kinds']['random']['1']['avg']:.2f}"
    rep = json.loads((run_dir / "analysis" / "representations.json").read_text())["ew seed 0"]
    row = dict(zip(tables["representations"].headers, tables["representations"].rows[0], strict=True))
    assert row["uniformity ↓"] == f"{rep['uniformity']:.3f}"
