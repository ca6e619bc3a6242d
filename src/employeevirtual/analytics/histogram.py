"""A mergeable log-bucket histogram of response times, kept in every daily rollup.

Bucket ``i`` holds times in ``[BASE * GAMMA**i, BASE * GAMMA**(i+1))`` seconds (times at or
below ``BASE`` go to bucket 0). Histograms of any days and groups merge by adding their counts,
so p50/p95 of a 90-day, any-grouping query come from the rollups alone; the estimate is within
±5% (half a bucket, GAMMA = 1.1) of the true nearest-rank percentile. The same bucket formula
runs inside MongoDB's aggregation (``bucket_expression``) and here (``bucket_of``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["BASE", "GAMMA", "bucket_expression", "bucket_of", "merge", "percentile"]

BASE = 0.001  # seconds
GAMMA = 1.1
_LN_GAMMA = math.log(GAMMA)


def bucket_of(seconds: float) -> int:
    if seconds <= BASE:
        return 0
    return max(0, math.floor(math.log(seconds / BASE) / _LN_GAMMA))


def bucket_expression(field: str) -> dict[str, Any]:
    """``bucket_of`` as a MongoDB aggregation expression over ``field`` (a number)."""
    return {
        "$cond": [
            {"$gt": [field, BASE]},
            {
                "$max": [
                    0,
                    {"$floor": {"$divide": [{"$ln": {"$divide": [field, BASE]}}, _LN_GAMMA]}},
                ]
            },
            0,
        ]
    }


def merge(histograms: list[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for histogram in histograms:
        for key, count in histogram.items():
            out[key] = out.get(key, 0) + int(count)
    return out


def percentile(histogram: Mapping[str, int], p: float) -> float | None:
    """Nearest-rank percentile (0 < p ≤ 1) from bucket counts: the geometric middle of the
    bucket holding the rank."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for key in sorted(histogram, key=int):
        seen += histogram[key]
        if seen >= rank:
            return float(BASE * GAMMA ** (int(key) + 0.5))
    raise AssertionError("unreachable: the ranks add up to the total")
