"""Significance of a difference over seeds: the t-test of the papers' tables
(paired by seed where both sides have the same seeds, Welch's otherwise).

Only NumPy and SciPy are imported (no torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats


def significance(
    values: Sequence[float], baseline_values: Sequence[float], paired: bool = True
) -> float:
    """Two-sided p-value of a t-test of ``values`` against ``baseline_values`` (over seeds).

    Paired (``scipy.stats.ttest_rel``, t = d̄ / (s_d/√n) on the per-seed
    differences d, n − 1 degrees of freedom) when ``paired`` and both have the
    same length; otherwise Welch's unequal-variance test
    (``scipy.stats.ttest_ind(equal_var=False)``).

    Fewer than two values on either side gives NaN. Samples that do not differ
    at all (zero variance and zero mean difference, where the t statistic is
    0/0) give p = 1.0; constant but different samples give p = 0.0.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline_values, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        return math.nan
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("significance needs finite values")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if paired and a.size == b.size:
            result = stats.ttest_rel(a, b)
        else:
            result = stats.ttest_ind(a, b, equal_var=False)
    statistic, pvalue = float(result.statistic), float(result.pvalue)
    if math.isnan(statistic) or math.isnan(pvalue):
        return 1.0
    return pvalue
