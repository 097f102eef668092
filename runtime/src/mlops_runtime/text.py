"""The one normalisation of text values: ingest, the model's pipeline, the fast path and monitoring all call it.

A category is what training saw only after this: NUL characters removed, surrounding
white space trimmed, lower case, and a blank value missing. The model carries it as
its first text step (stages/featurize.py), so every server that loads the model applies
it. The train stage pickles this module by value into the model: serving runtimes load
the model where this package is not installed, so it uses nothing but numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normal_text(value: str) -> str | None:
    """`value` as training saw it; None when nothing is left (a blank value is a missing one)."""
    return value.replace("\x00", "").strip().lower() or None


def normal_name(name: Any) -> str:
    """A column name as the tables carry it: trimmed, lower case, spaces as underscores."""
    return str(name).strip().lower().replace(" ", "_")


def _normal_value(value: Any) -> Any:
    """normal_text of one cell, NaN when missing; None, NaN and pandas' NA (named, not imported) are missing."""
    if isinstance(value, str):
        text = normal_text(value)
    elif value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and value != value):
        text = None
    else:  # a number in a text column: its text, as a CSV holds it
        text = normal_text(str(value))
    return np.nan if text is None else text


def normalise_text(values: Any) -> np.ndarray:
    """A block of text columns (a DataFrame or an array) normalised by normal_text, as an object array.

    Missing and blank values come out as NaN, what scikit-learn's imputers take as missing.
    """
    block = np.asarray(values, dtype=object)
    out = np.empty(block.size, dtype=object)
    out[:] = [_normal_value(value) for value in block.reshape(-1).tolist()]
    return out.reshape(block.shape)
