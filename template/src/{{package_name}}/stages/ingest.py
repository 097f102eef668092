"""Ingest stage: read the raw source and normalise it into one typed table."""

from __future__ import annotations

from mlops_runtime.config import Params
from mlops_runtime.files import normalise, read_table, write_table


def main(params: Params) -> str:
    raw = read_table(params.source(), params.ingest.format)
    frame = normalise(raw)
    write_table(frame, params.path("ingested"))
    return (
        f"ingested {len(frame)} rows x {frame.shape[1]} columns from {params.ingest.source} "
        f"({len(raw) - len(frame)} duplicate rows dropped) -> {params.paths.ingested}"
    )
