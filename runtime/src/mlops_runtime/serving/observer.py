"""Monitoring off the request path: predicted rows go to a bounded queue; one thread scores and logs them in batches.

Scoring rows for outliers and logging them cost time and hold the interpreter
lock: neither may delay an answer. The request only puts its columns on the
queue (never waiting); a worker thread wakes at most every batch_seconds and
takes what gathered, column by column, where both cost little per row: it
counts outliers and keeps the rows for the input log, which it writes every
`log_seconds` (serve.log_flush_seconds) or `log_rows` rows, one whole file each.

No row goes unlogged without being counted in
`model_server_monitoring_dropped_rows_total`, by reason (DROP_REASONS):
- queue_full: the thread could not keep up, so the request's rows were never taken;
- write_error: the log could not be written for so long that the rows waiting
  for it passed `pending_rows` (or the server stopped while it still failed).
  A failed write is retried at the next flush with the same rows, so a moment
  of full disk loses nothing;
- schema: rows that do not fit the log's columns (the model's contract).
While the log cannot be written, `log_problem` says why (the readiness
endpoint reports it). A clean stop drains the queue and writes what is
pending, so no accepted row is lost; a killed worker loses what it had not
flushed, at most `log_seconds` of rows.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..monitoring.input_log import InputLog, SchemaError

log = logging.getLogger(__name__)
_STOP = object()
DROP_REASONS = ("queue_full", "write_error", "schema")


class Observer:
    def __init__(
        self,
        detector: Any | None,
        input_log: InputLog | None,
        on_outliers: Callable[[int], None],
        on_dropped: Callable[[int, str], None],
        capacity: int = 10_000,
        batch_rows: int = 16_384,
        batch_seconds: float = 0.5,
        log_rows: int = 20_000,
        log_seconds: float = 30.0,
        pending_rows: int = 100_000,
    ) -> None:
        self.detector, self.input_log = detector, input_log
        self.on_outliers, self.on_dropped = on_outliers, on_dropped
        # Requests, not rows: each holds at most serve.max_batch_rows rows.
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.batch_rows, self.batch_seconds = batch_rows, batch_seconds
        self.log_rows, self.log_seconds, self.pending_rows = log_rows, log_seconds, pending_rows
        self._closing = threading.Event()
        # Batches waiting for the log, oldest first, with their row counts.
        self._pending: list[tuple[Mapping[str, np.ndarray], int]] = []
        self._pending_count = 0
        self._last_flush = time.monotonic()
        # Why the log cannot be written, or None; read by the readiness endpoint, set by the monitoring thread.
        self.log_problem: str | None = None
        if input_log is not None:
            self._writable()  # readiness tells from the start when the folder cannot be written
        self._thread = threading.Thread(target=self._run, name="monitoring", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self.detector is not None or self.input_log is not None

    def offer(self, columns: Mapping[str, np.ndarray], rows: int) -> None:
        """Hand a request's columns over without waiting; dropped (and counted) when the queue is full.

        The columns become a DataFrame on the monitoring thread, one per batch: pandas is no cost of a request.
        """
        if not self.active:
            return
        try:
            self.queue.put_nowait((columns, rows))
        except queue.Full:
            self.on_dropped(rows, "queue_full")

    def close(self, timeout: float = 60.0) -> None:
        """Score and log everything queued, then close the log file (a clean stop loses nothing)."""
        self._closing.set()
        self.queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping, backlog = False, False
        while not stopping:
            try:
                first = self.queue.get(timeout=1.0)
            except queue.Empty:
                self._flush_log(force=False)
                continue
            if first is not _STOP and not backlog:
                # Let a batch gather in the queue: the work per batch holds the interpreter lock the
                # requests need, so it should come seldom, not once per request. With a backlog
                # (the last batch was full), go straight on.
                self._closing.wait(self.batch_seconds)
            requests, rows = [], 0
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                    break
                requests.append(item[0])
                rows += item[1]
                if rows >= self.batch_rows:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            backlog = rows >= self.batch_rows
            if requests:
                self._observe(_concatenate(requests), rows)
        self._flush_log(force=True)
        if self._pending:  # the last write failed too: these rows are lost, and counted
            self.on_dropped(self._pending_count, "write_error")
            self._pending, self._pending_count = [], 0
        if self.input_log is not None:
            self.input_log.close()

    def _observe(self, columns: dict[str, np.ndarray], rows: int) -> None:
        """Count the batch's outliers and queue its rows for the log."""
        try:
            if self.detector is not None:
                # The fast path's detector takes the columns as they are; scikit-learn's takes a DataFrame.
                score = getattr(self.detector, "flags_columns", None)
                flags = score(columns) if score else self.detector.flags(pd.DataFrame(columns))
                self.on_outliers(int(flags.sum()))
        except Exception:  # a broken detector must not stop the logging, nor the server
            log.exception("outlier scoring failed")
        if self.input_log is not None:
            self._pending.append((columns, rows))
            self._pending_count += rows
            self._flush_log(force=False)

    def _flush_log(self, force: bool) -> None:
        """Write the pending rows as one file when there are enough of them, or they waited long enough.

        A failed write keeps them for the next flush (a retry every log_seconds); only the oldest beyond
        pending_rows are given up, and counted.
        """
        # While the log is down, retry every log_seconds only, however many rows wait.
        full = self._pending_count >= self.log_rows and self.log_problem is None
        due = full or time.monotonic() - self._last_flush >= self.log_seconds
        if not (force or due):
            return
        self._last_flush = time.monotonic()
        # While the log is down, an empty file tells whether it is back, without converting any row.
        if self.log_problem is not None and not self._writable():
            self._give_up_beyond(self.pending_rows)
            return
        if not self._pending:
            self.log_problem = None
            return
        columns, rows = _concatenate([batch for batch, _ in self._pending]), self._pending_count
        try:
            self.input_log.write(columns)  # type: ignore[union-attr]
        except SchemaError as exc:
            log.error("%d input rows do not fit the log's columns and are not logged: %s", rows, exc)
            self.on_dropped(rows, "schema")
        except Exception as exc:
            self._failed(exc)
            self._give_up_beyond(self.pending_rows)
            return
        self._pending, self._pending_count = [], 0
        self.log_problem = None

    def _writable(self) -> bool:
        try:
            self.input_log.probe()  # type: ignore[union-attr]
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        first = self.log_problem is None
        self.log_problem = f"cannot write the input log in {self.input_log.folder}: {exc}"  # type: ignore[union-attr]
        if first:  # once per outage, not once per retry
            log.error("%s; retrying every %.0f s", self.log_problem, self.log_seconds)

    def _give_up_beyond(self, limit: int) -> None:
        """Drop (and count) the oldest pending batches until at most `limit` rows wait: memory stays bounded."""
        while self._pending and self._pending_count > limit:
            _, rows = self._pending.pop(0)
            self._pending_count -= rows
            self.on_dropped(rows, "write_error")


def _concatenate(requests: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Requests' columns joined column by column (no DataFrame: the monitoring thread holds the lock less)."""
    if len(requests) == 1:
        return dict(requests[0])
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
