"""The current rows a check measures: read, cleaned as at ingest, and checked against the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import DataContract
from ..errors import DataError
from ..files import read_table, tidy


def read_current(location: str, contract: DataContract) -> pd.DataFrame:
    """The current data in memory, cleaned as at ingest and checked (see clean_current)."""
    frame = clean_current(read_table(location), location, contract)
    if frame.empty:
        raise DataError(f"{location} has no rows")
    return frame


def clean_current(frame: pd.DataFrame, where: str, contract: DataContract) -> pd.DataFrame:
    """Current rows cleaned as at ingest, duplicates kept (every logged request is an observation);
    refuses missing columns, non-numeric and infinite numbers, naming `where` they come from."""
    frame = tidy(frame)
    missing = [c for c in contract.features if c not in frame.columns]
    if missing:
        raise DataError(f"{where} lacks the feature column(s) {missing}: it must have {contract.features}")
    for name in contract.numeric:
        raw = frame[name]
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = raw[numbers.isna() & raw.notna()]
        if len(bad):
            shown = sorted({str(v) for v in bad.head(5)})
            raise DataError(f"{where}: column {name!r} must be numeric; found {shown} in {len(bad)} row(s)")
        # The model server refuses inf too: it is a broken upstream value, not a measurement to profile.
        infinite = int(np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan)).sum())
        if infinite:
            raise DataError(
                f"{where}: column {name!r} must hold finite numbers; found inf or -inf in {infinite} row(s) "
                "(leave a value empty when it is missing)"
            )
        frame[name] = numbers
    return frame[contract.features]


def too_few_rows(rows: int, location: str, min_rows: int) -> str | None:
    """Why `rows` current rows are too few for a verdict (fewer than monitor.min_rows), or None."""
    if rows >= min_rows:
        return None
    return (
        f"{location} has {rows} row(s), fewer than monitor.min_rows ({min_rows}) in params.yaml: "
        "a drift or outlier share of so few rows says nothing; measure a larger sample"
    )


def exists(location: str) -> bool:
    """Whether a local path or a remote object (s3://..., through fsspec) is there."""
    if "://" not in location:
        return Path(location).exists()
    import fsspec

    try:
        filesystem, path = fsspec.core.url_to_fs(location)
        return filesystem.exists(path)
    except (ImportError, OSError, ValueError):
        return True  # let reading it report what is wrong
