"""Latency figures for the benchmarks and `manage.py eval_retrieval`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float, empty: float = math.nan) -> float:
    """The p-th percentile (0-100) of `values`, interpolated between the two nearest values
    (statistics.quantiles, inclusive: never outside the smallest and the largest); `empty`
    when there are none."""
    if not values:
        return empty
    if len(values) == 1 or p >= 100:
        return float(max(values))
    if p <= 0:
        return float(min(values))
    # 1000 cut points: p to a tenth of a percent (p99.9 exists).
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]
