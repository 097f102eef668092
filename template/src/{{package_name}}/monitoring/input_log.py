"""The model server's input log: compressed Parquet files, one per time window and worker process.

The server predicts; the drift job reads what it predicted on. At 100 requests a
second that is millions of rows a day, so the log is columnar and compressed, and
rotated: rows of one window (`serve.log_window_minutes`) and one worker go to
`<folder>/inputs-<window start, UTC>-<worker>.parquet`, written row group by row
group while the window is open (as `.parquet.open`) and renamed when it closes,
so a reader only ever sees whole files. A clean stop closes the open file: no
row is lost. The drift job reads the files of the last `monitor.window_hours`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PREFIX, SUFFIX, OPEN_SUFFIX = "inputs-", ".parquet", ".parquet.open"
STAMP = "%Y%m%dT%H%M%SZ"


def worker_id() -> str:
    """Host and process, so that workers and replicas writing to one folder never share a file."""
    return f"{socket.gethostname()}-{os.getpid()}"


def window_start(moment: float, minutes: int) -> datetime:
    seconds = minutes * 60
    return datetime.fromtimestamp(moment - moment % seconds, tz=UTC)


class InputLog:
    """Appends predicted rows to the open window's file; not thread-safe: one writer thread owns it."""

    def __init__(self, folder: Path, window_minutes: int = 60, clock: Any = time.time) -> None:
        self.folder, self.window_minutes, self.clock = folder, window_minutes, clock
        self.worker = worker_id()
        self._writer: Any = None
        self._window: datetime | None = None
        self._path: Path | None = None
        self.rows_written = 0

    def write(self, rows: pd.DataFrame | Mapping[str, np.ndarray]) -> None:
        """Append rows: a DataFrame, or columns as the server's requests carry them (missing as NaN or None)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        window = window_start(self.clock(), self.window_minutes)
        if window != self._window:
            self.close()
        if isinstance(rows, pd.DataFrame):
            table = pa.Table.from_pandas(rows, preserve_index=False)
        else:
            table = pa.table({name: pa.array(values, from_pandas=True) for name, values in rows.items()})
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._window = window
            self._path = self.folder / f"{PREFIX}{window.strftime(STAMP)}-{self.worker}{OPEN_SUFFIX}"
            self._writer = pq.ParquetWriter(self._path, table.schema, compression="zstd")
        elif not table.schema.equals(self._writer.schema):
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows_written += table.num_rows

    def close(self) -> None:
        """Finish the open file (its Parquet footer) and give it its final name."""
        if self._writer is None:
            return
        self._writer.close()
        assert self._path is not None
        self._path.rename(self._path.with_name(self._path.name.removesuffix(OPEN_SUFFIX) + SUFFIX))
        self._writer = self._window = self._path = None


def _started(name: str) -> datetime | None:
    """The window start in a log file's name, or None for a file this log did not write."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        return datetime.strptime(name.removeprefix(PREFIX)[: len("YYYYmmddTHHMMSSZ")], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def logged_files(location: str, hours: float, now: float | None = None) -> list[str]:
    """The closed log files in a folder (local or s3://...) whose window started in the last `hours`, oldest first.

    A location that is a file is that one file.
    """
    since = datetime.fromtimestamp(now if now is not None else time.time(), tz=UTC) - timedelta(hours=hours)
    if "://" not in location:
        if not Path(location).is_dir():
            return [location]
        names = [str(path) for path in Path(location).iterdir()]
    else:
        import fsspec

        filesystem, root = fsspec.core.url_to_fs(location)
        if location.rstrip("/").lower().endswith((".parquet", ".pq", ".csv")):
            return [location]
        protocol = location.split("://", 1)[0]
        names = [f"{protocol}://{name}" for name in filesystem.ls(root, detail=False)]
    chosen = []
    for name in sorted(names, key=lambda n: n.rsplit("/", 1)[-1]):
        started = _started(name.rsplit("/", 1)[-1])
        if started is not None and started >= since:
            chosen.append(name)
    return chosen
