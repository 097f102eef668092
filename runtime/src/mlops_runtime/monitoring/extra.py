"""The project's monitoring hook (params.yaml `hooks.monitoring`): checks of its own, judged with drift.

The hook is a function `check(batches, params) -> [result, ...]`. `batches` yields the current rows as
DataFrames, one bounded batch at a time (read them once; memory stays bounded as in the drift check), through
the same normalisation as training. Each result is a mapping: `name` (text), `breach` (bool), and optionally
`value` (a number) and `detail` (text). A breach fails `monitor drift` as drift does (exit 6, the
CronJob's alert), and every result is in drift.json. docs/hooks.md has an example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from numbers import Real
from typing import Any

import pandas as pd

from ..config import Params
from ..errors import ParamsError
from ..extensions import load_hook

SETTING = "hooks.monitoring"

ExtraCheck = Callable[[Iterator[pd.DataFrame], Params], Any]


def load_extra_check(name: str) -> ExtraCheck | None:
    """The check `name` names (None when empty); ParamsError before anything is measured when it is not one."""
    if not name:
        return None
    found = load_hook(SETTING, name)
    if not callable(found):
        raise ParamsError(f"{SETTING}: {name} is not a function taking (batches, params)")
    return found


def run_extra_check(check: ExtraCheck, name: str, batches: Iterator[pd.DataFrame], params: Params) -> list[dict]:
    """The hook's results, checked and made JSON-ready; ParamsError naming the hook when they are not results."""
    results = check(batches, params)
    if isinstance(results, Mapping) or not isinstance(results, list | tuple):
        raise ParamsError(f"{SETTING}: {name} must return a list of results ({{name, breach, value?, detail?}})")
    checked = []
    for number, result in enumerate(results, 1):
        where = f"{SETTING}: {name} result {number}"
        if not isinstance(result, Mapping) or not isinstance(result.get("name"), str) or not result["name"]:
            raise ParamsError(f"{where} needs a 'name' (text)")
        if not isinstance(result.get("breach"), bool):
            raise ParamsError(f"{where} ({result['name']}) needs 'breach': true or false")
        value = result.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
            raise ParamsError(f"{where} ({result['name']}): 'value' must be a number")
        checked.append(
            {
                "name": result["name"],
                "breach": result["breach"],
                "value": None if value is None else float(value),
                "detail": str(result.get("detail", "")),
            }
        )
    return checked
