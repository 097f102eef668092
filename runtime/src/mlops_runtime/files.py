"""Reading and writing the pipeline's tables and JSON reports."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataError
from .text import normal_name, normal_text


def table_format(location: str, declared: str = "auto") -> str:
    """csv or parquet, from the declared format or the file extension."""
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in Path(location.split("?")[0]).suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if ".csv" in suffixes:
        return "csv"
    raise DataError(
        f"cannot tell the format of {location}: name it *.csv or *.parquet, or set ingest.format in params.yaml"
    )


SOURCE_HINT = "run `dvc pull` (or `make data`), or fix ingest.source in params.yaml"


def read_table(location: str | Path, declared: str = "auto", produced_by: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet file, local or remote (s3://... through fsspec).

    `produced_by` names the stage that writes the file, for the message when it is missing.
    """
    location = str(location)
    fmt = table_format(location, declared)
    try:
        if fmt == "parquet":
            return pd.read_parquet(location)
        return pd.read_csv(location, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        hint = f"run the {produced_by} stage first (dvc repro)" if produced_by else SOURCE_HINT
        raise DataError(f"{location} does not exist: {hint}") from None
    except ImportError as exc:
        raise DataError(f"reading {location} needs an optional package: {exc}") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{location} is not a readable {fmt} file: {exc}") from None


def write_table(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(data), encoding="utf-8")


def write_together(files: dict[Path, str]) -> None:
    """Write every file or none: each goes to a temporary file beside it, and only when all of
    them are written are they renamed into place. An OSError leaves the old files as they were."""
    umask = os.umask(0)
    os.umask(umask)
    temporaries: dict[Path, Path] = {}
    path = Path()
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temporaries[path] = Path(name)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(name, 0o666 & ~umask)
        for path, temporary in temporaries.items():
            os.replace(temporary, path)
    except BaseException as exc:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            # Name the file that was to be written, not a temporary one or a parent folder.
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def read_json(path: Path, produced_by: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: run the {produced_by} stage first (dvc repro)") from None


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy column names and text (see tidy); drop exact duplicates."""
    return tidy(frame).drop_duplicates(ignore_index=True)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names in snake case; text as text.normal_text makes it (the model applies the same), blank as missing."""
    frame = frame.rename(columns=normal_name)
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            text = frame[column].astype("string")
            # Each distinct value once: a column holds few categories and many rows.
            cleaned = {value: normal_text(value) for value in text.dropna().unique()}
            frame[column] = text.map(cleaned, na_action="ignore").astype("string")
    return frame


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so that a failure leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
