"""Drift over any number of current rows in bounded memory: statistics merged batch by batch.

The drift check of a busy service reads a day of logged inputs, millions of rows.
Holding them in one DataFrame makes memory grow with traffic; here each batch
(a Parquet row group or a CSV block) updates per-feature statistics and is
dropped, so memory is bounded by the batch size:
- a number: counts on a fixed fine grid around the reference's range (plus the
  rows below and above it, and the exact minimum and maximum), from which the
  current quantiles are read back by linear interpolation within a bin;
- a category: counts per value, cleaned as ingest cleans text.
The distances are then the ones drift.py computes in memory; the only
difference is the quantiles' resolution, one grid bin (GRID_BINS bins over
three times the reference range), far below the drift thresholds.
Outlier scoring reads the same batches as DataFrames (current_frames).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataContract, Monitor
from ..errors import DataError
from ..text import normal_name, normal_text
from .current import clean_current
from .drift import categorical_from_frequencies, numeric_from_quantiles, verdict
from .reference import MISSING

GRID_BINS = 8192
BATCH_ROWS = 131_072  # about 150 MiB at the peak for 20 features, whatever the number of rows


@dataclass
class NumericStats:
    """Counts of one numeric feature on a fixed grid, merged over batches."""

    edges: np.ndarray
    counts: np.ndarray
    below: int = 0
    above: int = 0
    missing: int = 0
    low: float = np.inf
    high: float = -np.inf

    @classmethod
    def for_reference(cls, spec: dict[str, Any]) -> NumericStats:
        reference = np.asarray(spec["quantiles"], dtype=float)
        span = max(float(reference[-1] - reference[0]), float(spec["std"]), 1e-12)
        edges = np.linspace(reference[0] - span, reference[-1] + span, GRID_BINS + 1)
        return cls(edges=edges, counts=np.zeros(GRID_BINS, dtype=np.int64))

    @property
    def present(self) -> int:
        return int(self.counts.sum()) + self.below + self.above

    def update(self, values: np.ndarray) -> None:
        missing = np.isnan(values)
        if missing.any():
            self.missing += int(missing.sum())
            values = values[~missing]
        if not len(values):
            return
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        # Bin index on the grid; -1 collects the rows below it and GRID_BINS those above.
        position = values - self.edges[0]
        position *= GRID_BINS / (self.edges[-1] - self.edges[0])
        np.floor(position, out=position)
        np.clip(position, -1, GRID_BINS, out=position)
        counts = np.bincount((position + 1).astype(np.intp), minlength=GRID_BINS + 2)
        self.below += int(counts[0])
        self.above += int(counts[-1])
        self.counts += counts[1:-1]

    def quantiles(self, points: np.ndarray) -> np.ndarray:
        """The current values at the given probabilities, from the piecewise-linear distribution of the counts."""
        xs = np.concatenate([[min(self.low, self.edges[0])], self.edges, [max(self.high, self.edges[-1])]])
        cumulative = np.concatenate([[0], np.cumsum(np.concatenate([[self.below], self.counts, [self.above]]))])
        ranks = points * cumulative[-1]
        index = np.searchsorted(cumulative, ranks, side="left").clip(1, len(cumulative) - 1)
        left, right = cumulative[index - 1], cumulative[index]
        fraction = np.where(right > left, (ranks - left) / np.maximum(right - left, 1), 0.0)
        values = xs[index - 1] + fraction * (xs[index] - xs[index - 1])
        return values.clip(self.low, self.high)


@dataclass
class CurrentStats:
    """Everything the drift check needs to know about the current rows, and nothing more."""

    numeric: dict[str, NumericStats]
    categorical: dict[str, Counter] = field(default_factory=dict)
    rows: int = 0

    @classmethod
    def for_profile(cls, profile: dict[str, Any]) -> CurrentStats:
        features = profile["features"]
        return cls(
            numeric={n: NumericStats.for_reference(s) for n, s in features.items() if s["kind"] == "numeric"},
            categorical={n: Counter() for n, s in features.items() if s["kind"] != "numeric"},
        )

    def update(self, batch: Batch) -> None:
        self.rows += batch.rows
        for name, stats in self.numeric.items():
            stats.update(batch.numbers[name])
        for name, counts in self.categorical.items():
            counts.update(batch.categories[name])

    def frequencies(self, name: str) -> dict[str, float]:
        counts = self.categorical[name]
        total = sum(counts.values()) or 1
        return {value: count / total for value, count in counts.items()}


def drift_from_stats(profile: dict[str, Any], stats: CurrentStats, settings: Monitor) -> dict[str, Any]:
    """The drift result of drift.drift, from merged statistics instead of the rows themselves."""
    distances = {}
    for name, spec in profile["features"].items():
        if spec["kind"] == "numeric":
            numbers = stats.numeric[name]
            points = np.linspace(0, 1, len(spec["quantiles"]))
            current = numbers.quantiles(points) if numbers.present else None
            distances[name] = numeric_from_quantiles(spec, current)
        else:
            distances[name] = categorical_from_frequencies(spec, stats.frequencies(name))
    return verdict(profile, distances, stats.rows, settings)


# --- reading the current rows in batches -------------------------------------


@dataclass
class Batch:
    """One batch of current rows, reduced to what the statistics take: numbers, and counts per category."""

    rows: int
    numbers: dict[str, np.ndarray]
    categories: dict[str, dict[str, int]]


def _require_columns(path: Any, contract: DataContract, names: Iterable[str]) -> None:
    missing = [c for c in contract.features if c not in set(names)]
    if missing:
        raise DataError(f"{path} lacks the feature column(s) {missing}: it must have {contract.features}")


def _numbers(column: Any, name: str, where: Any) -> np.ndarray:
    """A column as floats (missing as NaN); refused, naming the values, unless every value is a finite number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        try:
            column = text.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pd.Series(text.to_pandas())
            bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
            shown = sorted({str(v) for v in bad.head(5)})
            raise DataError(f"{where}: column {name!r} must be numeric; found {shown} in {len(bad)} row(s)") from None
    numbers = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    infinite = int(np.isinf(numbers).sum())
    if infinite:
        raise DataError(
            f"{where}: column {name!r} must hold finite numbers; found inf or -inf in {infinite} row(s) "
            "(leave a value empty when it is missing)"
        )
    return numbers


def _categories(column: Any) -> dict[str, int]:
    """Counts per category, cleaned as ingest and the model clean text (text.normal_text).

    Counting first and cleaning only the distinct values keeps the cost per row at one hash.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type) and not pa.types.is_string(column.type):
        column = column.cast(pa.string())
    cleaned: Counter = Counter()
    for item in pc.value_counts(column).to_pylist():
        value = item["values"]
        text = None if value is None else normal_text(str(value))
        cleaned[text or MISSING] += int(item["counts"])
    return cleaned


def _reduce(batch: Any, contract: DataContract, where: Any) -> Batch:
    columns = {normal_name(n): batch.column(i) for i, n in enumerate(batch.schema.names)}
    _require_columns(where, contract, columns)
    return Batch(
        rows=batch.num_rows,
        numbers={n: _numbers(columns[n], n, where) for n in contract.numeric},
        categories={n: _categories(columns[n]) for n in contract.categorical},
    )


def _column_types(path: Any, schema: Any, by_name: dict[str, str], contract: DataContract) -> None:
    """Refuse, naming the column, feature columns that hold no single value per row (lists, structs) or, for
    a number, a true/false or a time: converting them would measure something else than the model sees."""
    import pyarrow as pa

    numeric = set(contract.numeric)
    for feature in contract.features:
        kind = schema.field(by_name[feature]).type
        nested = pa.types.is_nested(kind)
        not_a_number = feature in numeric and (pa.types.is_boolean(kind) or pa.types.is_temporal(kind))
        if nested or not_a_number:
            wanted = "numbers" if feature in numeric else "one text value per row"
            raise DataError(
                f"{path}: column {feature!r} holds {kind} values, not {wanted} as the model's input: "
                "log the inputs as the server does (serve.log_inputs) or convert the column"
            )


def _parquet_batches(path: Any, source: Any, contract: DataContract, batch_rows: int) -> Iterator[Any]:
    by_name = {normal_name(n): n for n in source.schema_arrow.names}
    _require_columns(path, contract, by_name)
    _column_types(path, source.schema_arrow, by_name, contract)
    # One reading thread: Arrow's column threads each keep their own buffers, and the peak then grows
    # with the file's length (505 MiB against 365 MiB at 10M rows, for the same time).
    columns = [by_name[c] for c in contract.features]
    try:
        yield from source.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid and IOError for a damaged page
        raise DataError(f"{path} is not a readable parquet file: {exc}") from None


def _open_parquet(path: Any) -> Any:
    """The file's footer read (so a file without one fails here, before any of its rows is counted)."""
    import pyarrow.parquet as pq

    try:
        # Without pre-buffering, a read holds one batch, not whole row groups of every column.
        if "://" in str(path):
            import fsspec

            filesystem, inside = fsspec.core.url_to_fs(str(path))
            path = filesystem.open(inside, "rb")
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: point --current at the logged inputs (serve.log_inputs)") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for a broken file
        raise DataError(f"{path} is not a readable parquet file: {exc}") from None


def _csv_batches(path: Any, contract: DataContract, batch_rows: int) -> Iterator[Any]:
    import pyarrow as pa

    try:
        with pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=batch_rows) as reader:
            for frame in reader:
                _require_columns(path, contract, [normal_name(c) for c in frame.columns])
                yield pa.RecordBatch.from_pandas(frame, preserve_index=False)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: point --current at the logged inputs (serve.log_inputs)") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} is not a readable csv file: {exc}") from None


def arrow_batches(
    files: Iterable[str], contract: DataContract, batch_rows: int = BATCH_ROWS, skipped: list | None = None
) -> Iterator[Any]:
    """(file, Arrow record batch) of every file, Parquet or CSV by extension, local or remote.

    With a `skipped` list (a log folder's files), a Parquet file that cannot be opened (no footer, not
    Parquet, gone) is left out and added to it with why, before any of its rows is read; without one, it
    is an error.
    """
    for name in files:
        if not name.lower().endswith((".parquet", ".pq")):
            for batch in _csv_batches(name, contract, batch_rows):
                yield name, batch
            continue
        try:
            source = _open_parquet(name)
        except DataError as exc:
            if skipped is None:
                raise
            skipped.append((name, str(exc).removeprefix(f"{name} ")))
            continue
        for batch in _parquet_batches(name, source, contract, batch_rows):
            yield name, batch


def batches(
    files: Iterable[str], contract: DataContract, batch_rows: int = BATCH_ROWS, skipped: list | None = None
) -> Iterator[Batch]:
    """Every file's feature columns, batch by batch, reduced and checked."""
    for name, batch in arrow_batches(files, contract, batch_rows, skipped):
        yield _reduce(batch, contract, name)


def current_frames(
    files: Iterable[str], contract: DataContract, batch_rows: int = BATCH_ROWS, skipped: list | None = None
) -> Iterator[pd.DataFrame]:
    """Every file's feature columns as DataFrames of at most `batch_rows` rows, cleaned and checked as
    current.read_current does (for checks that need rows, such as outlier scoring)."""
    for name, batch in arrow_batches(files, contract, batch_rows, skipped):
        yield clean_current(batch.to_pandas(), name, contract)


def current_stats(
    profile: dict[str, Any], files: Iterable[str], contract: DataContract, skipped: list | None = None
) -> CurrentStats:
    stats = CurrentStats.for_profile(profile)
    for batch in batches(files, contract, skipped=skipped):
        stats.update(batch)
    return stats
