"""The success and fairness criteria of params.yaml, judged the same way by evaluate (before registering) and by
promote (against a version's recorded evaluation)."""

from __future__ import annotations

from typing import Any

from ..config import FairnessBound, Params


def fairness_results(slices: list[dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    """Each evaluate.fairness bound judged on the slices of at least min_slice_size rows."""
    return [
        _judge(index, bound, slices, params.evaluate.min_slice_size)
        for index, bound in enumerate(params.evaluate.fairness)
    ]


def _judge(index: int, bound: FairnessBound, slices: list[dict[str, Any]], min_rows: int) -> dict[str, Any]:
    field = f"evaluate.fairness.{index}"
    result: dict[str, Any] = {"criterion": bound.name, "field": field, "value": None, "passed": True, "problem": ""}
    large = [s for s in slices if s["slice"] == bound.column and s["rows"] >= min_rows]
    scored = [s for s in large if s.get(bound.metric) is not None]
    if len(large) >= 2 and not scored:
        # A slice report recorded before the metric existed cannot show the bound holds.
        result.update(passed=False, problem=f"the slice report records no {bound.metric} for {bound.column} slices "
                      f"({field}): evaluate and register the model again")  # fmt: skip
        return result
    if len(scored) < 2:
        result["problem"] = f"not judged: fewer than two {bound.column} slices of at least {min_rows} rows"
        return result
    worst = min(scored, key=lambda s: s[bound.metric])
    best = max(scored, key=lambda s: s[bound.metric])
    low, high = worst[bound.metric], best[bound.metric]
    pair = f"{best['value']} {high:.4f} vs {worst['value']} {low:.4f}"
    if bound.max_difference is not None:
        value = round(high - low, 6)
        if value > bound.max_difference:
            result["problem"] = (
                f"{bound.metric} differs by {value:.4f} across {bound.column} slices ({pair}), "
                f"above {field}.max_difference {bound.max_difference:g}"
            )
    else:
        value = round(low / high, 6) if high > 0 else 1.0
        if value < bound.min_ratio:
            result["problem"] = (
                f"{bound.metric} of the worst {bound.column} slice is {value:.4f} of the best ({pair}), "
                f"below {field}.min_ratio {bound.min_ratio:g}"
            )
    result.update(value=value, best=best["value"], worst=worst["value"], passed=not result["problem"])
    return result


def gate(overall: dict[str, float], slices: list[dict[str, Any]], params: Params) -> list[str]:
    """Why the model fails the success or fairness criteria; empty when it passes."""
    failures = []
    for name, bound in params.evaluate.success_criteria.items():
        problem = bound.violation(overall[name])
        if problem:
            failures.append(f"{name} {problem} (evaluate.success_criteria.{name})")
    failures += [r["problem"] for r in fairness_results(slices, params) if not r["passed"]]
    return failures
