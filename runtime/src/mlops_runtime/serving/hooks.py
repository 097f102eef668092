"""The project's serving hook (params.yaml `hooks.serving`): its code before the model predicts and after.

The hook is an object (or a class, made once per worker) with either method or both:
- `before_predict(columns) -> columns`: the request's columns (name -> numpy array, in model order) as the
  model and the input log will see them. Raise ValueError to refuse the request: the client gets 400 with
  the message. Feature engineering belongs in the model (featurize), where training applies it too.
- `after_predict(columns, predictions) -> {name: array}`: extra outputs, one value per row, answered
  beside the prediction (e.g. a probability, a reason code).
Both run on the fast path and on pyfunc alike. docs/hooks.md has an example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParamsError
from ..extensions import load_hook
from .protocol import OUTPUT_NAME

SETTING = "hooks.serving"

Columns = Mapping[str, np.ndarray]


class HookFault(RuntimeError):
    """The hook returned what the server cannot answer with: a fault of the hook, so a 500 and a log line."""


@dataclass(frozen=True)
class ServingHook:
    name: str
    before: Callable[[Columns], Columns] | None
    after: Callable[[Columns, np.ndarray], Mapping[str, Any]] | None

    def columns(self, columns: Columns, rows: int) -> Columns:
        """The columns after before_predict (unchanged without it), checked: the same names, `rows` each."""
        if self.before is None:
            return columns
        changed = self.before(dict(columns))
        if not isinstance(changed, Mapping) or list(changed) != list(columns):
            raise HookFault(f"{self.name}.before_predict must return the columns it was given, by the same names")
        out = {name: np.asarray(values) for name, values in changed.items()}
        if any(values.shape != (rows,) for values in out.values()):
            raise HookFault(f"{self.name}.before_predict must return {rows} value(s) per column")
        return out

    def outputs(self, columns: Columns, predictions: np.ndarray) -> dict[str, np.ndarray]:
        """The extra outputs of after_predict (none without it), checked: named, one value per row."""
        if self.after is None:
            return {}
        extra = self.after(columns, predictions)
        if not isinstance(extra, Mapping) or not all(isinstance(name, str) and name for name in extra):
            raise HookFault(f"{self.name}.after_predict must return a mapping of output name -> values")
        if OUTPUT_NAME in extra:
            raise HookFault(f"{self.name}.after_predict returned {OUTPUT_NAME!r}, the prediction's own output name")
        out = {name: np.asarray(values) for name, values in extra.items()}
        for name, values in out.items():
            if values.shape != predictions.shape or values.dtype.kind not in "iufbOU":
                raise HookFault(f"{self.name}.after_predict output {name!r} must hold one number or text per row")
        return out


def load_serving_hook(name: str) -> ServingHook | None:
    """The hook `name` names (None when empty); ParamsError before serving when it is not one."""
    if not name:
        return None
    found = load_hook(SETTING, name)
    hook = found() if isinstance(found, type) else found
    before, after = getattr(hook, "before_predict", None), getattr(hook, "after_predict", None)
    if not callable(before) and not callable(after):
        raise ParamsError(f"{SETTING}: {name} has neither before_predict nor after_predict: define one or both")
    return ServingHook(name, before if callable(before) else None, after if callable(after) else None)
