"""Seeded, stratified subsampling for data-constrained runs, and split shortening."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from infomtl.data.types import TaskData
from infomtl.errors import ConfigError


def subsample(
    data: TaskData, *, ratio: float | None = None, count: int | None = None, seed: int = 0
) -> TaskData:
    """A stratified random subset of ``data``, rows kept in their original order.

    Exactly one of ``ratio`` and ``count`` is given. The subset holds
    ``max(1, round(ratio * N))`` or ``min(count, N)`` rows. Each stratum
    (:meth:`TaskData.stratum`: the class of a classification row) gets its
    proportional share; the shares are rounded by largest remainder so that they
    sum exactly to that total. The same ``seed`` always picks the same rows.

    Raises:
        ConfigError: neither or both of ``ratio`` and ``count``, a ratio outside
            ``(0, 1]`` or a count below 1.
    """
    total = _target_size(len(data), ratio, count)
    if total >= len(data):
        return data.subset(np.arange(len(data)))
    rng = np.random.default_rng(seed)
    strata = np.asarray(data.stratum())
    values, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    quotas = allocate(sizes, total)
    chosen = [
        rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False)
        for k, q in enumerate(quotas)
        if q > 0
    ]
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return data.subset(indices)


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


__all__ = ["allocate", "head", "subsample"]
