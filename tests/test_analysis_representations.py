"""Representation quality: uniformity of known point sets, ARI / silhouette of known
clusterings, and `infomtl analyze representations`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from infomtl.analysis.representations import cluster_scores, representation_quality, uniformity
from infomtl.artifacts.run_folder import load_run
from infomtl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")




def test_uniformity_of_two_antipodal_points():
    assert uniformity(torch.tensor([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(-8.0)


def test_uniformity_of_a_square_by_hand():
    square = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -5.0]])  # normalised onto the circle
    # 4 adjacent pairs at ‖x−y‖² = 2, 2 opposite pairs at 4
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert uniformity(square) == pytest.approx(expected)
    assert uniformity(np.ones((1, 3))) != uniformity(np.ones((1, 3)))  # NaN for one point


def test_identical_points_are_least_uniform():
    assert uniformity(np.ones((5, 3))) == pytest.approx(0.0)


def test_ari_and_silhouette_of_known_clusterings():
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [10.0, 10.0], [10.1, 10.0], [10.0, 10.1]])
    perfect = cluster_scores(pts, np.array([1, 1, 1, 0, 0, 0]), k=2)
    assert perfect["ari"] == pytest.approx(1.0)
    assert perfect["silhouette"] > 0.95
    # gold labels that cut across the two clusters: contingency [[2, 1], [1, 2]],
    # index Σ C(n_ij, 2) = 2, expected 6·6/C(6, 2) = 2.4, max 6 → ARI = (2 − 2.4)/(6 − 2.4) = −1/9
    gold = np.array([0, 0, 1, 1, 1, 0])
    assert cluster_scores(pts, gold, k=2)["ari"] == pytest.approx(-1 / 9)


def test_degenerate_clusterings_give_nan():
    one = cluster_scores(np.zeros((1, 2)), np.array([0]), k=2)
    assert math.isnan(one["ari"]) and math.isnan(one["silhouette"])
    same = cluster_scores(np.zeros((4, 2)), np.array([0, 1, 0, 1]), k=2)  # one distinct point
    assert math.isnan(same["silhouette"])


def test_representation_quality_of_a_run(tiny_run):
    res = representation_quality(load_run(tiny_run), "test", max_examples=16)
    assert res["rows"] == 16 * 3
    assert -8.0 <= res["uniformity"] <= 0.0  # ‖ĥ_i − ĥ_j‖² ∈ [0, 4]
    assert set(res["tasks"]) == {"sentiment", "topic", "urgency"}
    for cell in res["tasks"].values():
        assert -1.0 <= cell["ari"] <= 1.0


def test_cli_representations_writes_files(tiny_run, tmp_path, capsys):
    out = tmp_path / "an"
    assert main(["analyze", "representations", str(tiny_run), str(tiny_run), "--max-examples", "16",
                 "--out", str(out)]) == 0
    data = json.loads((out / "representations.json").read_text())
    assert "uniformity" in next(iter(data.values()))
    header = (out / "representations.csv").read_text().splitlines()[0]
    assert header.startswith("run,uniformity") and "sentiment ARI" in header
    assert "| run" in capsys.readouterr().out


def test_cli_representations_bad_run_dir(tmp_path, capsys):
    assert main(["analyze", "representations", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
