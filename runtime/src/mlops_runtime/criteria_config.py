"""The evaluate section of params.yaml: the success criteria and the fairness bounds a model must meet."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from .section import Section as _Section


class Bound(_Section):
    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> str | None:
        """Why `value` breaks this bound, or None when it holds."""
        if self.min is not None and value < self.min:
            return f"{value:.4f} is below the minimum {self.min}"
        if self.max is not None and value > self.max:
            return f"{value:.4f} is above the maximum {self.max}"
        return None

    def describe(self) -> str:
        """The bound as people read it: ">= 0.75", "<= 0.2" or both."""
        parts = [f">= {self.min:g}" if self.min is not None else "", f"<= {self.max:g}" if self.max is not None else ""]
        return ", ".join(p for p in parts if p)


# Per-slice metrics a fairness bound may name, at evaluate.decision_threshold (positive_rate: the share
# predicted positive); the evaluate stage's slice report carries each of them.
FairnessMetric = Literal["recall", "precision", "positive_rate", "false_positive_rate", "roc_auc"]
FAIRNESS_METRICS: tuple[str, ...] = get_args(FairnessMetric)


class FairnessBound(_Section):
    """One fairness criterion: how far `metric` may differ between the slices of `column`."""

    column: str
    metric: FairnessMetric
    max_difference: float | None = Field(default=None, ge=0)  # best slice minus worst slice, at most
    min_ratio: float | None = Field(default=None, gt=0, le=1)  # worst slice / best slice, at least (0.8: four-fifths)

    @model_validator(mode="after")
    def _one_bound(self) -> FairnessBound:
        if (self.max_difference is None) == (self.min_ratio is None):
            raise ValueError(
                f"the bound on {self.column} {self.metric} needs exactly one of max_difference (largest allowed "
                "best-minus-worst gap) or min_ratio (smallest allowed worst/best ratio): keep one"
            )
        return self

    @property
    def name(self) -> str:
        if self.max_difference is not None:
            return f"{self.column} {self.metric} max_difference {self.max_difference:g}"
        return f"{self.column} {self.metric} min_ratio {self.min_ratio:g}"


class Evaluate(_Section):
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)
    success_criteria: dict[str, Bound] = Field(min_length=1)
    slice_by: list[str] = Field(default_factory=list)
    min_slice_size: int = Field(default=30, ge=1)
    fairness: list[FairnessBound] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        # Template 0.2.0 renamed the key; its update migration renames it in place,
        # but a hand-resolved update conflict can bring the old name back.
        if isinstance(data, dict) and "criteria" in data:
            raise ValueError("'criteria' is now called 'success_criteria': rename the key under evaluate")
        return _slice_gap_as_fairness(data)

    @model_validator(mode="after")
    def _fairness_columns_are_slices(self) -> Evaluate:
        for index, bound in enumerate(self.fairness):
            if bound.column not in self.slice_by:
                raise ValueError(
                    f"evaluate.fairness.{index}.column '{bound.column}' is not in evaluate.slice_by "
                    f"({', '.join(self.slice_by) or 'empty'}): add it to slice_by or bound a slice_by column"
                )
        return self


def _slice_gap_as_fairness(data: Any) -> Any:
    """The older `max_slice_gap: {metric, max}` as the bounds it meant: a max_difference per slice_by column."""
    if not isinstance(data, dict) or "max_slice_gap" not in data:
        return data
    data = dict(data)
    gap = data.pop("max_slice_gap")
    if gap is None:
        return data
    if not isinstance(gap, dict) or set(gap) - {"metric", "max"} or "max" not in gap:
        raise ValueError(
            f"max_slice_gap {gap!r} is not {{metric: NAME, max: NUMBER}}: write the bound under evaluate.fairness "
            "instead, e.g. - {column: region, metric: roc_auc, max_difference: 0.15}"
        )
    columns = data.get("slice_by") or []
    fairness = list(data.get("fairness") or [])
    metric = gap.get("metric", "roc_auc")
    fairness += [{"column": c, "metric": metric, "max_difference": gap["max"]} for c in columns]
    data["fairness"] = fairness
    return data
