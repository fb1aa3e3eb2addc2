"""Analyses of trained runs (the papers' protocols): robustness to embedding
perturbations, representation quality, training curves, and the information plane.

Each analysis returns plain dicts and writes JSON/CSV (and a PNG when matplotlib
is installed) next to each other; see ``infomtl analyze --help``.
"""

from infomtl.analysis.common import load_eval_split, write_csv
from infomtl.analysis.curves import read_curves
from infomtl.analysis.information import information_estimates, read_information
from infomtl.analysis.representations import cluster_scores, representation_quality, uniformity
from infomtl.analysis.robustness import perturbation, robust_scores

__all__ = [
    "cluster_scores",
    "information_estimates",
    "load_eval_split",
    "perturbation",
    "read_curves",
    "read_information",
    "representation_quality",
    "robust_scores",
    "uniformity",
    "write_csv",
]
