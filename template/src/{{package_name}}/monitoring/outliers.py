"""Outliers: the share of current rows the model's outlier detector flags."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .reference import OutlierDetector


def outliers(detector: OutlierDetector, current: pd.DataFrame, max_share: float) -> dict[str, Any]:
    """Share of current rows the detector calls outliers; a breach above `max_share`."""
    flagged = detector.flags(current)
    share = float(flagged.mean())
    return {
        "rows": len(current),
        "outliers": int(flagged.sum()),
        "outlier_share": round(share, 6),
        "max_outlier_share": max_share,
        "breach": share > max_share,
    }
