"""Charts GitHub draws in a pull request: Mermaid `xychart-beta` blocks of the challenger against the champion.

xychart has no legend, so each title says which series is which: bars are the challenger, the line the
champion. The numbers stay in the text tables beside each chart.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..config import Params

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._,:()+=/-]")


def _label(text: Any) -> str:
    """A title or category as Mermaid reads it: quoted, without quotes, brackets or line breaks."""
    return '"' + _UNSAFE.sub("_", str(text))[:60] + '"'


def _values(values: list[float]) -> str:
    return json.dumps([round(float(v), 4) for v in values])


def slice_chart(column: str, metric: str, new: list[dict[str, Any]], old: list[dict[str, Any]] | None,
                new_label: str, old_label: str) -> str:  # fmt: skip
    """One metric across the slices of one column: bars for the challenger, a line for the champion."""
    mine = {s["value"]: s.get(metric) for s in new if s["slice"] == column and s.get(metric) is not None}
    theirs = {s["value"]: s.get(metric) for s in old or [] if s["slice"] == column and s.get(metric) is not None}
    values = sorted(mine)
    if not values:
        return ""
    title = f"{metric} by {column}: bars {new_label}" + (f", line {old_label}" if theirs else "")
    lines = [
        "```mermaid",
        "xychart-beta",
        f"    title {_label(title)}",
        "    x-axis [" + ", ".join(_label(v) for v in values) + "]",
        f"    y-axis {_label(metric)} 0 --> 1",
        f"    bar {_values([mine[v] for v in values])}",
    ]
    if theirs and all(v in theirs for v in values):
        lines.append(f"    line {_values([theirs[v] for v in values])}")
    return "\n".join([*lines, "```"])


def roc_chart(new: dict[str, Any], old: dict[str, Any] | None, new_label: str, old_label: str) -> str:
    """ROC curves at evenly spaced false positive rates: the challenger, the champion and chance."""
    if not new.get("tpr"):
        return ""
    has_old = bool(old and old.get("tpr") and len(old["tpr"]) == len(new["tpr"]))
    title = f"ROC: {new_label}, " + (f"{old_label}, " if has_old else "") + "chance (diagonal)"
    lines = [
        "```mermaid",
        "xychart-beta",
        f"    title {_label(title)}",
        f"    x-axis {_label('false positive rate')} 0 --> 1",
        f"    y-axis {_label('true positive rate')} 0 --> 1",
        f"    line {_values(new['tpr'])}",
    ]
    if has_old:
        lines.append(f"    line {_values(old['tpr'])}")  # type: ignore[index]
    lines.append(f"    line {_values(new['fpr'])}")
    return "\n".join([*lines, "```"])


def charts(params: Params, new: dict[str, Any], old: dict[str, Any] | None, new_label: str, old_label: str) -> str:
    """The PR's charts: each slice metric a fairness criterion bounds (else the compared one), and the ROC."""
    pairs = list(dict.fromkeys((b.column, b.metric) for b in params.evaluate.fairness))
    if not pairs:
        metric = params.deploy.compare_on or next(iter(params.evaluate.success_criteria))
        pairs = [(column, metric) for column in params.evaluate.slice_by]
    old_slices = (old or {}).get("slices")
    blocks = [slice_chart(c, m, new.get("slices", []), old_slices, new_label, old_label) for c, m in pairs]
    blocks.append(roc_chart(new.get("roc", {}), (old or {}).get("roc"), new_label, old_label))
    return "\n\n".join(b for b in blocks if b)
