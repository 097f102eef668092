"""Outliers: the share of current rows the model's outlier detector flags."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from .reference import OutlierDetector


def outliers(detector: OutlierDetector, frames: Iterable[pd.DataFrame], max_share: float) -> dict[str, Any]:
    """Share of current rows the detector calls outliers, over frames scored one at a time (memory bounded
    by a frame, so a day of logged inputs streams through); a breach above `max_share`."""
    rows = flagged = 0
    for frame in frames:
        rows += len(frame)
        flagged += int(detector.flags(frame).sum())
    share = flagged / rows if rows else 0.0
    return {
        "rows": rows,
        "outliers": flagged,
        "outlier_share": round(share, 6),
        "max_outlier_share": max_share,
        "breach": share > max_share,
    }
