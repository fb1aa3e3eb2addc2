"""Seeded, stratified subsampling for data-constrained runs, and shortening val/test splits."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from infomtl.data.types import TaskData
from infomtl.errors import ConfigError
from infomtl.tasks import TaskKind


def subsample(
    data: TaskData, *, ratio: float | None = None, count: int | None = None, seed: int = 0,
    strata: np.ndarray | None = None,
) -> TaskData:
    """A stratified random subset of ``data``, rows kept in their original order.

    Exactly one of ``ratio`` and ``count`` is given. The subset holds
    ``max(1, round(ratio * N))`` or ``min(count, N)`` rows. Each stratum
    (``strata``, default :meth:`TaskData.stratum`: the class of a classification row)
    gets its proportional share; the shares are rounded by largest remainder so that
    they sum exactly to that total. The same ``seed`` always picks the same rows.

    Raises:
        ConfigError: neither or both of ``ratio`` and ``count``, a ratio outside
            ``(0, 1]`` or a count below 1.
    """
    total = _target_size(len(data), ratio, count)
    return data.subset(stratified_indices(data.stratum() if strata is None else strata, total, seed))


def stratified_indices(strata: np.ndarray, total: int, seed: int) -> np.ndarray:
    """``total`` row indices, sorted, each stratum's share by :func:`allocate` drawn with ``seed``
    (all rows when ``total`` is at least their number)."""
    strata = np.asarray(strata)
    if total >= len(strata):
        return np.arange(len(strata))
    rng = np.random.default_rng(seed)
    values, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    quotas = allocate(sizes, total)
    chosen = [
        rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False)
        for k, q in enumerate(quotas)
        if q > 0
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups of ``sizes`` proportionally, by largest remainder.

    Ties between equal remainders go to the larger group, then to the earlier one.
    Each share is at most its group's size and the shares sum to ``total``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    if not 0 <= total <= n:
        raise ValueError(f"cannot allocate {total} rows over {n}")
    if n == 0:
        return np.zeros_like(sizes)
    exact = sizes * total  # share * n, kept as integers to avoid rounding error
    quotas = exact // n
    remainders = exact - quotas * n
    left = total - int(quotas.sum())
    order = sorted(range(len(sizes)), key=lambda k: (-remainders[k], -sizes[k], k))
    for k in order[:left]:
        quotas[k] += 1
    return quotas


#: Seed of the evaluation subset (``--max-eval-examples``): one subset for every run.
EVAL_SEED = 0
#: Quantile bins of a regression target in :func:`eval_strata`.
REGRESSION_BINS = 4


def eval_strata(data: TaskData) -> np.ndarray:
    """A stratum per row for shortening a val/test split: the row's group (EI-reg's emotion,
    stance's target) crossed with its class (multi-label: first positive label) or, for
    regression, with the quartile of its mean target within the group."""
    n = len(data)
    groups = np.unique(np.asarray(data.groups, dtype=object), return_inverse=True)[1] if data.groups else np.zeros(n)
    groups = np.asarray(groups, dtype=np.int64)
    if data.task.kind is not TaskKind.REGRESSION:
        labels = np.asarray(data.stratum(), dtype=np.int64)
        return groups * (int(labels.max(initial=0)) + 1) + labels
    value = data.labels.mean(axis=1)
    bins = np.zeros(n, dtype=np.int64)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        ranks = np.argsort(np.argsort(value[rows], kind="stable"), kind="stable")
        bins[rows] = ranks * REGRESSION_BINS // len(rows)
    return groups * REGRESSION_BINS + bins


def eval_subset(data: TaskData, n: int) -> TaskData:
    """``n`` rows of a val/test split (all if it has fewer), stratified by :func:`eval_strata`
    and drawn with :data:`EVAL_SEED`, in file order: every run scores the same rows.

    Raises:
        ConfigError: ``n`` is not an integer >= 1.
    """
    return eval_subsets([data], n)[0]


def eval_subsets(parts: list[TaskData], n: int) -> list[TaskData]:
    """:func:`eval_subset` of each split, except that splits holding the same texts (tasks that
    label one text set) keep the same rows: those chosen for the first of them."""
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ConfigError(f"number of rows must be an integer >= 1, got {n!r}")
    chosen: dict[tuple[str, ...], np.ndarray] = {}
    out = []
    for part in parts:
        key = tuple(part.texts)
        if key not in chosen:
            chosen[key] = stratified_indices(eval_strata(part), min(int(n), len(part)), EVAL_SEED)
        out.append(part.subset(chosen[key]))
    return out


def head(data: TaskData, n: int) -> TaskData:
    """The first ``n`` rows (all rows if there are fewer), aligned with the file's lines.

    Raises:
        ConfigError: ``n`` is negative or not an integer.
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ConfigError(f"number of rows must be an integer >= 0, got {n!r}")
    return data.subset(np.arange(min(int(n), len(data))))


def _target_size(n: int, ratio: float | None, count: int | None) -> int:
    if (ratio is None) == (count is None):
        raise ConfigError("subsample needs exactly one of ratio and count")
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, Real) or not 0 < ratio <= 1:
            raise ConfigError(f"data ratio must be in (0, 1], got {ratio!r}")
        if n == 0:
            return 0
        return min(n, max(1, round(float(ratio) * n)))
    if isinstance(count, bool) or not isinstance(count, Integral) or count < 1:
        raise ConfigError(f"row count must be an integer >= 1, got {count!r}")
    return min(int(count), n)


__all__ = ["allocate", "eval_strata", "eval_subset", "eval_subsets", "head", "stratified_indices", "subsample"]
