"""Ingest stage: read the raw source and normalise it into one typed table."""

from __future__ import annotations

import pandas as pd

from .config import Params
from .files import read_table, write_table


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy column names and text; blank cells become missing values; drop exact duplicates."""
    frame = frame.rename(columns=lambda name: str(name).strip().lower().replace(" ", "_"))
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            text = frame[column].astype("string").str.strip().str.lower()
            frame[column] = text.mask(text == "", pd.NA)
    return frame.drop_duplicates(ignore_index=True)


def main(params: Params) -> str:
    raw = read_table(params.source(), params.ingest.format)
    frame = normalise(raw)
    write_table(frame, params.path("ingested"))
    return (
        f"ingested {len(frame)} rows x {frame.shape[1]} columns from {params.ingest.source} "
        f"({len(raw) - len(frame)} duplicate rows dropped) -> {params.paths.ingested}"
    )
