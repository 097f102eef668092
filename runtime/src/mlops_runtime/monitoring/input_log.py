"""The model server's input log: compressed Parquet files, whole from the moment they have their name.

The server predicts; the drift job reads what it predicted on. At 100 requests a
second that is millions of rows a day, so the log is columnar and compressed, and
grouped in time windows (`serve.log_window_minutes`): every flush of a worker
writes one file `<folder>/inputs-<window start, UTC>-<worker>-<sequence>.parquet`,
first as `.parquet.open`, then closed, its footer read back and renamed. A reader
therefore only ever sees whole files, and a worker that dies (even `kill -9`)
loses only the rows it had not flushed yet (`serve.log_flush_seconds`). A write
that fails leaves no `.parquet` behind: the partial file is removed (or, when it
cannot be, keeps its `.open` name, which readers ignore).

The columns and their types come from the model's contract (`schema_for`), not
from the rows: a batch whose text column is all empty is still text.
The drift job reads the files of the last `monitor.window_hours`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

PREFIX, SUFFIX, OPEN_SUFFIX = "inputs-", ".parquet", ".parquet.open"
STAMP = "%Y%m%dT%H%M%SZ"
# A window may start this much after the reader's clock (replicas' clocks differ a little); a file named
# for a later window is not one the server wrote now, and would otherwise count in every window until then.
CLOCK_SKEW = timedelta(minutes=5)


class SchemaError(ValueError):
    """Rows that do not fit the log's columns (the model's contract): they cannot be logged as they are."""


def worker_id() -> str:
    """Host and process, so that workers and replicas writing to one folder never share a file."""
    return f"{socket.gethostname()}-{os.getpid()}"


def window_start(moment: float, minutes: int) -> datetime:
    seconds = minutes * 60
    return datetime.fromtimestamp(moment - moment % seconds, tz=UTC)


def schema_for(columns: Iterable[tuple[str, bool]]) -> Any:
    """The log's Arrow schema from (name, numeric) pairs of the model's inputs: float64 or string, all nullable."""
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.float64() if numeric else pa.string()) for name, numeric in columns])


class InputLog:
    """Writes batches of predicted rows, one whole Parquet file each; not thread-safe: one writer thread owns it."""

    def __init__(self, folder: Path, schema: Any, window_minutes: int = 60, clock: Any = time.time) -> None:
        self.folder, self.schema, self.window_minutes, self.clock = folder, schema, window_minutes, clock
        self.worker = worker_id()
        self._sequence = itertools.count(1)
        self.rows_written = 0

    def probe(self) -> None:
        """Raise OSError unless a file can be created in the folder (made if missing) and removed again."""
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / f".probe-{self.worker}"
        probe.write_bytes(b"")
        probe.unlink()

    def table(self, rows: pd.DataFrame | Mapping[str, np.ndarray]) -> Any:
        """Rows as an Arrow table of the log's schema; SchemaError naming the column that does not fit."""
        import pyarrow as pa

        arrays = []
        for column in self.schema:
            if column.name not in rows:
                raise SchemaError(f"the rows lack the column {column.name!r} of the model's inputs")
            values = rows[column.name]
            values = values.to_numpy() if isinstance(values, pd.Series) else values
            try:
                arrays.append(pa.array(values, type=column.type, from_pandas=True))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                raise SchemaError(f"column {column.name!r} does not convert to {column.type}: {exc}") from None
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def write(self, rows: pd.DataFrame | Mapping[str, np.ndarray]) -> Path:
        """Write rows (a DataFrame, or columns as the server's requests carry them) as one new file of the
        current window; SchemaError when they do not fit, OSError when the file cannot be written whole."""
        table = self.table(rows)
        window = window_start(self.clock(), self.window_minutes)
        name = f"{PREFIX}{window.strftime(STAMP)}-{self.worker}-{next(self._sequence):06d}"
        return self._write_file(table, self.folder / f"{name}{OPEN_SUFFIX}", self.folder / f"{name}{SUFFIX}")

    def _write_file(self, table: Any, partial: Path, final: Path) -> Path:
        import pyarrow.parquet as pq

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, partial, compression="zstd")
            # Only a file whose footer reads back with every row gets the name readers look for.
            written = pq.read_metadata(partial).num_rows
            if written != table.num_rows:
                raise OSError(f"{partial} holds {written} of {table.num_rows} rows after writing")
            partial.rename(final)
        except BaseException:
            with contextlib.suppress(OSError):  # if it stays, its .open name keeps it out of every reader
                partial.unlink(missing_ok=True)
            raise
        self.rows_written += table.num_rows
        return final

    def close(self) -> None:
        """Nothing stays open between writes; kept so that a stop reads the same for every log."""


def _started(name: str) -> datetime | None:
    """The window start in a log file's name, or None for a file this log did not write."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        return datetime.strptime(name.removeprefix(PREFIX)[: len("YYYYmmddTHHMMSSZ")], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class Selection:
    """The log files a check reads, and those named like log files that it skips, with why."""

    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folder: bool = False  # a folder was listed (rather than one file named)


def select_logged(location: str, hours: float, now: float | None = None) -> Selection:
    """The closed log files in a folder (local or s3://...) whose window started in the last `hours`, oldest
    first; files named like log files that are not regular files, or are named for a future window, are
    skipped and named. A location that is a file is that one file (and must be a regular file)."""
    moment = datetime.fromtimestamp(now if now is not None else time.time(), tz=UTC)
    since = moment - timedelta(hours=hours)
    entries: list[tuple[str, bool]] = []  # (name, is a regular file)
    if "://" not in location:
        path = Path(location)
        if not path.is_dir():
            if path.exists() and not path.is_file():
                raise DataError(
                    f"{location} is not a regular file (a pipe, socket or device): point --current at a file"
                )
            return Selection([location])
        for child in path.iterdir():
            try:
                regular = stat.S_ISREG(child.stat().st_mode)
            except OSError:
                regular = False
            entries.append((str(child), regular))
    else:
        import fsspec

        filesystem, root = fsspec.core.url_to_fs(location)
        if location.rstrip("/").lower().endswith((".parquet", ".pq", ".csv")):
            return Selection([location])
        protocol = location.split("://", 1)[0]
        entries = [
            (f"{protocol}://{info['name']}", info.get("type") == "file") for info in filesystem.ls(root, detail=True)
        ]
    selection = Selection([], folder=True)
    for name, regular in sorted(entries, key=lambda entry: entry[0].rsplit("/", 1)[-1]):
        started = _started(name.rsplit("/", 1)[-1])
        if started is None or started < since:
            continue
        if started > moment + CLOCK_SKEW:
            selection.skipped.append((name, f"named for a window that starts later ({started:%Y-%m-%d %H:%M} UTC)"))
        elif not regular:
            selection.skipped.append((name, "not a regular file"))
        else:
            selection.files.append(name)
    return selection


def logged_files(location: str, hours: float, now: float | None = None) -> list[str]:
    """The files `select_logged` chooses to read."""
    return select_logged(location, hours, now).files
