"""Monitoring off the request path: predicted rows go to a bounded queue; one thread scores and logs them in batches.

Scoring rows for outliers and logging them cost time and hold the interpreter
lock: neither may delay an answer. The request only puts its columns on the
queue (never waiting); a worker thread wakes at most every batch_seconds and
takes what gathered, column by column, where both cost little per row: it
counts outliers and appends the rows to the input log.
When the queue is full (the thread cannot keep up), rows are dropped and
counted (`model_server_monitoring_dropped_rows_total`), never waited for. A
clean stop drains the queue and closes the log, so no accepted row is lost.
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

from ..monitoring.input_log import InputLog

log = logging.getLogger(__name__)
_STOP = object()


class Observer:
    def __init__(
        self,
        detector: Any | None,
        input_log: InputLog | None,
        on_outliers: Callable[[int], None],
        on_dropped: Callable[[int], None],
        capacity: int = 10_000,
        batch_rows: int = 16_384,
        batch_seconds: float = 0.5,
        log_rows: int = 20_000,
        log_seconds: float = 30.0,
    ) -> None:
        self.detector, self.input_log = detector, input_log
        self.on_outliers, self.on_dropped = on_outliers, on_dropped
        # Requests, not rows: each holds at most serve.max_batch_rows rows.
        self.queue: queue.Queue = queue.Queue(maxsize=capacity)
        self.batch_rows, self.batch_seconds = batch_rows, batch_seconds
        self.log_rows, self.log_seconds = log_rows, log_seconds
        self._closing = threading.Event()
        self._pending: list[Mapping[str, np.ndarray]] = []
        self._pending_rows = 0
        self._last_flush = time.monotonic()
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
            self.on_dropped(rows)

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
            self._pending.append(columns)
            self._pending_rows += rows
            self._flush_log(force=False)

    def _flush_log(self, force: bool) -> None:
        """Write the pending rows as one row group when there are enough of them, or they waited long enough."""
        if not self._pending:
            return
        due = self._pending_rows >= self.log_rows or time.monotonic() - self._last_flush >= self.log_seconds
        if not (force or due):
            return
        columns, rows = _concatenate(self._pending), self._pending_rows
        self._pending, self._pending_rows = [], 0
        self._last_flush = time.monotonic()
        try:
            self.input_log.write(columns)  # type: ignore[union-attr]
        except Exception:
            log.exception("writing %d input rows to the log failed", rows)


def _concatenate(requests: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Requests' columns joined column by column (no DataFrame: the monitoring thread holds the lock less)."""
    if len(requests) == 1:
        return dict(requests[0])
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
