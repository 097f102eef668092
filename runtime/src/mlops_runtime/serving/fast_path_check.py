"""The fast path proven before it serves: check rows drawn from the training profile, the fast path's answers
compared with the model's own on them, and the choice of what serves, said in one line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Params
from ..errors import DataError
from ..monitoring.reference import OutlierDetector, load_profile
from .fast_path import FastDetector, FastModel, NoFastPath, frame_columns
from .protocol import InputColumn

log = logging.getLogger(__name__)

# Probabilities may differ from scikit-learn's in the last bits (trees summed in another order).
PROBABILITY_TOLERANCE = 1e-6
CHECK_ROWS = 512
UNSEEN = "(a category never seen in training)"
# Ways clients send a known category: case, surrounding white space, NULs, nothing but spaces.
RAW_TEXT: list[Callable[[str], str]] = [
    str.upper,
    str.title,
    lambda text: f"  {text}\t",
    lambda text: f"{text}\x00",
    lambda text: f"\x00{text.upper()}\x00",
    lambda text: " ",
]


def compile_detector(detector: Any, frame: pd.DataFrame, numeric: set[str]) -> tuple[Any, str]:
    """The detector with the fast path when it flags the check rows as the detector does; else the detector."""
    try:
        fast = FastDetector(detector, numeric)
        expected, got = detector.flags(frame), fast.flags(frame)
    except NoFastPath as exc:
        return detector, f"outliers scored by scikit-learn (the fast path does not replay {exc})"
    except Exception as exc:  # anything unexpected keeps the detector as it is
        log.exception("checking the detector's fast path failed")
        return detector, f"outliers scored by scikit-learn (checking the fast path failed: {exc})"
    if not np.array_equal(expected, got):
        differ = int(np.sum(expected != got))
        return detector, f"outliers scored by scikit-learn (the fast path flags {differ} check rows differently)"
    return fast, f"outliers scored by the fast path, equal on {len(frame)} check rows"


def check_rows(profile: dict[str, Any] | None, example: pd.DataFrame | None, rows: int = CHECK_ROWS) -> pd.DataFrame:
    """Rows to compare both paths on: the logged input example, and rows drawn from the training profile with
    values at every quantile, each known category, an unseen one and gaps."""
    frames = [] if example is None else [example]
    if profile:
        rng = np.random.default_rng(0)
        drawn: dict[str, Any] = {}
        for name, spec in profile["features"].items():
            if spec["kind"] == "numeric":
                values = rng.choice(np.asarray(spec["quantiles"], dtype=float), size=rows)
                values[rng.random(rows) < 0.05] = np.nan
                drawn[name] = values
            else:
                known = [c for c in spec["frequencies"] if not c.startswith("(")]
                values = rng.choice(np.asarray([*known, UNSEEN], dtype=object), size=rows)
                # Text as clients send it: the model's normalisation must give what training saw.
                raw = rng.random(rows) < 0.3
                ways = rng.integers(len(RAW_TEXT), size=int(raw.sum()))
                values[raw] = [RAW_TEXT[k](v) for k, v in zip(ways, values[raw], strict=True)]
                values[rng.random(rows) < 0.05] = None
                drawn[name] = values
        frames.append(pd.DataFrame(drawn))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def disagreement(fast: FastModel, pipeline: Any, pyfunc: Any, frame: pd.DataFrame, numeric: set[str]) -> str | None:
    """None when the fast path gives pyfunc's classes and the pipeline's probabilities on `frame`; else why not."""
    columns = frame_columns(frame, list(frame.columns), numeric)
    expected_proba = pipeline.predict_proba(frame)
    got_proba = fast.predict_proba(columns)
    gap = float(np.max(np.abs(expected_proba - got_proba))) if len(frame) else 0.0
    if gap > PROBABILITY_TOLERANCE:
        return f"probabilities differ by up to {gap:.2e} on {len(frame)} check rows"
    expected = np.asarray(pyfunc.predict(frame)).reshape(-1)
    got = fast.predict(columns)
    if not np.array_equal(expected, got):
        return f"classes differ on {int(np.sum(expected != got))} of {len(frame)} check rows"
    return None


def compile_model(pyfunc: Any, frame: pd.DataFrame, numeric: set[str]) -> tuple[FastModel | None, str]:
    """The fast path for a loaded pyfunc model, or None; and one line saying which path serves and why.

    `frame` holds the check rows (check_rows) both paths must agree on.
    """
    try:
        pipeline = pyfunc.get_raw_model()
    except Exception as exc:  # a pyfunc flavour without a raw model (custom python models)
        return None, f"pyfunc (no scikit-learn model behind it: {exc})"
    try:
        fast = FastModel(pipeline)
        if frame.empty:
            return None, "pyfunc (no rows to check the fast path against: the model has no profile nor example)"
        problem = disagreement(fast, pipeline, pyfunc, frame, numeric)
    except NoFastPath as exc:
        return None, f"pyfunc (the fast path does not replay {exc})"
    except Exception as exc:  # anything unexpected in the check keeps the proven path
        log.exception("checking the fast path failed")
        return None, f"pyfunc (checking the fast path failed: {exc})"
    if problem:
        return None, f"pyfunc (the fast path disagrees: {problem})"
    return fast, f"fast path (numpy preprocessing + {fast.estimator}), equal to pyfunc on {len(frame)} check rows"


def fast_paths(
    params: Params, model: Any, local: Path, columns: list[InputColumn], detector: OutlierDetector | None
) -> tuple[FastModel | None, Any, str]:
    """The fast predict path and outlier detector where serve.fast_path allows them and they prove equal
    to the model's own on the check rows; and what serves, in one line."""
    if not params.serve.fast_path:
        return None, detector, "pyfunc (serve.fast_path is off)"
    try:
        profile = load_profile(local)
    except DataError:
        profile = None
    try:
        example = model.input_example
    except Exception:  # an example that does not load only leaves fewer check rows
        example = None
    rows = check_rows(profile, example)
    numeric = {c.name for c in columns if c.numeric}
    fast, path = compile_model(model, rows, numeric)
    if detector is not None and fast is not None:
        detector, scoring = compile_detector(detector, rows, numeric)
        path = f"{path}; {scoring}"
    return fast, detector, path
