"""The fast predict path: the fitted pipeline run on numpy columns, its trees by Treelite, proven equal at start-up.

Through mlflow.pyfunc, a one-row prediction of the default model costs several
milliseconds, nearly all of it pandas and the ColumnTransformer's bookkeeping;
the trees themselves take microseconds. Here the fitted preprocessing is
replayed with the learned statistics (imputed values, scaling, one-hot
categories) on the request's numpy columns, with the same arithmetic in the
same order, and the trees are evaluated by Treelite's GTIL (imported from the
fitted scikit-learn estimator, so nothing new is stored with the model).

Only what is recognised takes this path: the project's ColumnTransformer of
SimpleImputer / StandardScaler / OneHotEncoder steps, then a tree ensemble
Treelite imports or a logistic regression. Anything else, or any disagreement
with the model's own predict_proba on the start-up check rows, keeps the
server on mlflow.pyfunc and says why (fast_path_check.py).

The outlier detector (an IsolationForest on the same preprocessing) takes the
same path on the monitoring thread: scored in C, it no longer holds the
interpreter lock for milliseconds that the requests then wait for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..text import normalise_text

log = logging.getLogger(__name__)

Columns = Mapping[str, np.ndarray]


class NoFastPath(Exception):
    """The model has a part this path does not replay; the message names it."""


# --- preprocessing ------------------------------------------------------------


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    # Text columns carry a missing value as None (the protocol's null; frame_columns turns NaN into None),
    # or as NaN once the text normalisation has run (what scikit-learn's imputer takes as missing).
    return np.equal(values, None) | np.not_equal(values, values)


def _text_normalisation(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model's own text normalisation (text.normalise_text, pickled with it), called on the numpy block."""
    func = getattr(step, "func", None)
    named = (getattr(func, "__module__", None), getattr(func, "__qualname__", None))
    if named != (normalise_text.__module__, normalise_text.__qualname__):
        raise NoFastPath(f"FunctionTransformer({getattr(func, '__qualname__', func)!r})")
    if step.kw_args or step.validate:
        raise NoFastPath("FunctionTransformer with kw_args or validate=True")
    return func


def _imputer(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    if getattr(step, "add_indicator", False):
        raise NoFastPath("SimpleImputer(add_indicator=True)")
    missing = step.missing_values
    if not (missing is None or (isinstance(missing, float) and missing != missing)):
        raise NoFastPath(f"SimpleImputer(missing_values={missing!r})")
    fill = step.statistics_

    def impute(block: np.ndarray) -> np.ndarray:
        out = block.copy()
        for j in range(out.shape[1]):
            gaps = _is_missing(out[:, j])
            if gaps.any():
                out[gaps, j] = fill[j]
        return out

    return impute


def _scaler(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def scaled(block: np.ndarray) -> np.ndarray:
        # StandardScaler.transform's order: subtract, then divide, in float64.
        out = block.astype(np.float64, copy=True)
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return scaled


def _one_hot(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    if step.drop is not None or getattr(step, "_infrequent_enabled", False):
        raise NoFastPath("OneHotEncoder with drop or infrequent categories")
    if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
        # 'error' answers a 5xx for an unseen category through pyfunc; the same refusal is not replayed here.
        raise NoFastPath(f"OneHotEncoder(handle_unknown={step.handle_unknown!r})")
    # A dict per column, compared as Python compares the encoder's object categories. Never astype(str):
    # numpy's fixed-width text would take the longest value's width for every row.
    lookups = [{category: index for index, category in enumerate(c.tolist())} for c in step.categories_]
    widths = [len(c) for c in step.categories_]
    offsets = np.concatenate([[0], np.cumsum(widths)])

    def codes(values: np.ndarray, j: int) -> np.ndarray:
        """Each value's category index, -1 when unseen (all zeros, as handle_unknown="ignore" encodes it)."""
        lookup = lookups[j]
        return np.fromiter((lookup.get(value, -1) for value in values.tolist()), dtype=np.intp, count=len(values))

    def encoded(block: np.ndarray) -> np.ndarray:
        out = np.zeros((block.shape[0], int(offsets[-1])), dtype=np.float64)
        rows = np.arange(block.shape[0])
        for j in range(block.shape[1]):
            index = codes(block[:, j], j)
            known = index >= 0
            out[rows[known], offsets[j] + index[known]] = 1.0
        return out

    return encoded


STEPS: dict[str, Callable[[Any], Callable[[np.ndarray], np.ndarray]]] = {
    "FunctionTransformer": _text_normalisation,
    "SimpleImputer": _imputer,
    "StandardScaler": _scaler,
    "OneHotEncoder": _one_hot,
}


def _chain(transformer: Any) -> tuple[list[Callable[[np.ndarray], np.ndarray]], bool]:
    """The replayed steps of one transformer, and whether its input columns are numbers (no encoder in it)."""
    steps = [s for _, s in transformer.steps] if hasattr(transformer, "steps") else [transformer]
    chain, numeric = [], True
    for step in steps:
        if isinstance(step, str) or step is None:  # "passthrough"
            continue
        kind = type(step).__name__
        if kind not in STEPS:
            raise NoFastPath(f"preprocessing step {kind}")
        numeric = numeric and kind not in ("OneHotEncoder", "FunctionTransformer")
        chain.append(STEPS[kind](step))
    return chain, numeric


@dataclass(frozen=True)
class _Block:
    columns: list[str]
    numeric: bool
    chain: list[Callable[[np.ndarray], np.ndarray]]


def _blocks(preprocessor: Any) -> list[_Block]:
    if type(preprocessor).__name__ != "ColumnTransformer":
        raise NoFastPath(f"first step {type(preprocessor).__name__} (a ColumnTransformer is replayed)")
    blocks = []
    for name, transformer, columns in preprocessor.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
            raise NoFastPath(f"transformer {name!r} selects columns by position or by a callable")
        chain, numeric = _chain(transformer)
        blocks.append(_Block(list(columns), numeric, chain))
    return blocks


# --- estimators ----------------------------------------------------------------


def _tree_scores(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """What Treelite's GTIL computes for the imported estimator, one row per input row."""
    try:
        import treelite
        import treelite.gtil
        import treelite.sklearn
    except ImportError as exc:
        raise NoFastPath(f"treelite is not installed ({exc})") from None
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # Treelite raises its own errors for the estimators it does not know
        raise NoFastPath(f"Treelite cannot import {type(estimator).__name__}: {exc}") from None

    # scikit-learn's own trees (forests, gradient boosting, isolation forests) compare float32 inputs with
    # their thresholds; rounding to float32 first takes every split the same way. Histogram gradient
    # boosting compares float64.
    rounded = type(estimator).__name__ != "HistGradientBoostingClassifier"

    def scores(features: np.ndarray) -> np.ndarray:
        if rounded:
            features = features.astype(np.float32).astype(np.float64)
        # One thread: the server's workers are the parallelism.
        out = treelite.gtil.predict(model, features, nthread=1)
        return out.reshape(len(features), -1)

    return scores


def _linear_probabilities(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    if len(estimator.classes_) != 2:
        raise NoFastPath("LogisticRegression with more than two classes")
    coef, intercept = estimator.coef_.ravel(), float(estimator.intercept_[0])

    def probabilities(features: np.ndarray) -> np.ndarray:
        margin = features @ coef + intercept
        return (1.0 / (1.0 + np.exp(-margin))).reshape(-1, 1)

    return probabilities


ESTIMATORS = {
    "HistGradientBoostingClassifier": _tree_scores,
    "RandomForestClassifier": _tree_scores,
    "ExtraTreesClassifier": _tree_scores,
    "GradientBoostingClassifier": _tree_scores,
    "LogisticRegression": _linear_probabilities,
}


# --- the compiled model ---------------------------------------------------------


def _two_steps(pipeline: Any) -> tuple[Any, Any]:
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise NoFastPath(f"{type(pipeline).__name__} is not a two-step Pipeline (preprocessing, estimator)")
    return steps[0][1], steps[1][1]


class _Features:
    """The fitted preprocessing replayed on numpy columns."""

    def __init__(self, preprocessor: Any, estimator: Any) -> None:
        self.blocks = _blocks(preprocessor)
        self.width = int(getattr(estimator, "n_features_in_", 0))

    def features(self, columns: Columns) -> np.ndarray:
        parts = []
        for block in self.blocks:
            if block.numeric:
                values = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in block.columns])
            else:
                values = np.column_stack([np.asarray(columns[c], dtype=object) for c in block.columns])
            for step in block.chain:
                values = step(values)
            parts.append(np.asarray(values, dtype=np.float64))
        features = np.hstack(parts) if len(parts) > 1 else parts[0]
        if self.width and features.shape[1] != self.width:
            raise NoFastPath(f"the preprocessing gives {features.shape[1]} features, the estimator takes {self.width}")
        return np.ascontiguousarray(features)


class FastModel(_Features):
    """predict / predict_proba on the request's columns (name -> numpy array), without pandas."""

    def __init__(self, pipeline: Any) -> None:
        preprocessor, estimator = _two_steps(pipeline)
        super().__init__(preprocessor, estimator)
        kind = type(estimator).__name__
        if kind not in ESTIMATORS:
            raise NoFastPath(f"estimator {kind}")
        self.classes = np.asarray(estimator.classes_)
        self.estimator = kind
        self._probabilities = ESTIMATORS[kind](estimator)

    def predict_proba(self, columns: Columns) -> np.ndarray:
        scores = self._probabilities(self.features(columns))
        if scores.shape[1] == 1:  # binary: the positive class's probability, as scikit-learn stacks it
            scores = np.hstack([1.0 - scores, scores])
        return scores

    def predict(self, columns: Columns) -> np.ndarray:
        return self.classes.take(np.argmax(self.predict_proba(columns), axis=1))


class FastDetector(_Features):
    """The outlier detector's flags (monitoring/reference.py OutlierDetector) with its forest scored by Treelite."""

    def __init__(self, detector: Any, numeric: set[str]) -> None:
        preprocessor, forest = _two_steps(detector.forest)
        if type(forest).__name__ != "IsolationForest":
            raise NoFastPath(f"outlier estimator {type(forest).__name__}")
        super().__init__(preprocessor, forest)
        self.detector, self.numeric = detector, numeric
        self.offset = float(forest.offset_)
        self._scores = _tree_scores(forest)

    def flags(self, frame: pd.DataFrame) -> np.ndarray:
        return self.flags_columns(frame_columns(frame, list(frame.columns), self.numeric))

    def flags_columns(self, columns: Columns) -> np.ndarray:
        """The flags of rows given as columns (what the server's requests carry), without a DataFrame."""
        rows = len(next(iter(columns.values())))
        # Treelite gives the anomaly score with the sign scikit-learn's score_samples drops; below the
        # fitted offset is an outlier, as IsolationForest.predict decides.
        score = -self._scores(self.features(columns)).reshape(-1)
        return ((score - self.offset) < 0) | self.detector.out_of_range(columns, rows)


def frame_columns(frame: pd.DataFrame, names: list[str], numeric: set[str]) -> dict[str, np.ndarray]:
    """A DataFrame as the columns a parsed request carries (float64 with NaN, or objects with None)."""
    out = {}
    for name in names:
        column = frame[name]
        if name in numeric:
            out[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[name] = np.array([None if pd.isna(v) else str(v) for v in column.tolist()], dtype=object)
    return out
