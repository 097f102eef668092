"""Pull request text: the gates, metrics, slices, lineage and plots of a promotion, in markdown."""

from __future__ import annotations

from typing import Any

from .. import card
from ..config import Bound, Params
from ..lineage import COMMIT_TAG, DATA_HASH_TAG, DIRTY_TAG, RUN_ID, TEMPLATE_VERSION, UNKNOWN
from ..registry import CHAMPION_ALIAS, Registry, Version, recorded_slices
from .charts import charts
from .criteria import fairness_results
from .pin import pin_path


def _bound(bound: Bound | None) -> str:
    return bound.describe() if bound is not None else ""


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def metrics_table(
    params: Params, new: dict[str, Any], old: dict[str, Any] | None, new_label: str, old_label: str
) -> str:
    """Markdown: each held-out metric of the challenger beside the champion's, criteria first."""
    criteria = params.evaluate.success_criteria
    names = [*criteria, *sorted(k for k in new if k not in criteria and k != "rows")]
    lines = [f"| metric | criterion | {new_label} | {old_label} | change |", "|---|---|---|---|---|"]
    for name in names:
        value, before = new.get(name), (old or {}).get(name)
        change = (
            f"{value - before:+.4f}" if isinstance(value, (int, float)) and isinstance(before, (int, float)) else ""
        )
        lines.append(f"| {name} | {_bound(criteria.get(name))} | {_number(value)} | {_number(before)} | {change} |")
    return "\n".join(lines)


def slices_table(params: Params, slices: list[dict[str, Any]] | None) -> str:
    """Markdown: the slice (bias) report, one row per value of each slice_by column."""
    if not slices:
        return "No slice report was recorded with this run."
    bounded = [b.metric for b in params.evaluate.fairness]
    names = list(dict.fromkeys(n for n in [*params.evaluate.success_criteria, *bounded] if any(n in s for s in slices)))
    lines = [
        "| slice | value | rows | label rate | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for row in slices:
        cells = [row["slice"], row["value"], str(row["rows"]), _number(row.get("label_rate"))]
        lines.append("| " + " | ".join(cells + [_number(row.get(n)) for n in names]) + " |")
    return "\n".join(lines)


def fairness_table(params: Params, slices: list[dict[str, Any]] | None) -> str:
    """Markdown: each evaluate.fairness bound, the value the slices give and whether it holds."""
    if not params.evaluate.fairness:
        return "No fairness criteria are set (evaluate.fairness in params.yaml)."
    lines = ["| criterion | value | best vs worst slice | result |", "|---|---|---|---|"]
    for result in fairness_results(slices or [], params):
        pair = f"{result['best']} vs {result['worst']}" if "best" in result else ""
        verdict = "met" if result["passed"] and not result["problem"] else result["problem"]
        lines.append(f"| {result['criterion']} | {_number(result['value'])} | {pair} | {verdict} |")
    lines.append(
        f"\nJudged on slices of at least {params.evaluate.min_slice_size} rows (evaluate.min_slice_size), "
        f"at the decision threshold {params.evaluate.decision_threshold:g}."
    )
    return "\n".join(lines)


def card_sections(params: Params, challenger: Version, champion: Version | None) -> list[str]:
    """The challenger's model card beside the champion's, what changed, and the charts of the two."""
    new = card.recorded(challenger.storage_uri, challenger.run_id) or {}
    recorded = card.recorded(champion.storage_uri, champion.run_id) if champion else None
    # Charts and changes read only a card that can be shown (the challenger's passed the card gate).
    old = recorded if recorded is not None and not card.malformed(recorded) else None
    new_label = f"challenger v{challenger.number}"
    old_label = f"champion v{champion.number}" if champion else "champion"
    drawn = charts(params, new, old, new_label, old_label) or "No model card to chart."
    parts = ["### Charts: challenger vs champion", "", drawn, "", "### Model card", ""]
    shown = [(new_label, new, challenger.number)]
    if champion:
        parts += [f"What changed from the card of champion v{champion.number}:", "", *card.changes(new, old), ""]
        shown.append((old_label, recorded or {}, champion.number))
    for label, found, number in shown:
        if not found:
            parts += [f"The {label} has no model card.", ""]
        elif wrong := card.malformed(found):
            parts += [f"The model card of the {label} cannot be shown: {'; '.join(wrong)}.", ""]
        else:
            text = card.markdown(found, version=number, metadata=False)
            parts += [f"<details><summary>Model card of the {label}</summary>", "", text, "</details>", ""]
    return parts


def pr_body(
    params: Params,
    registry: Registry,
    env: str,
    challenger: Version,
    champion: Version | None,
    rows: list[tuple[str, str]],
    lineage: dict[str, str],
    reason: str,
) -> str:
    """The promotion pull request's description: gates, metrics, slices, lineage and plots."""
    tags = challenger.tags
    old_label = f"champion v{champion.number}" if champion else "champion (none)"
    parts = [
        f"## Promote `{challenger.model}` version {challenger.number} to `{env}`",
        "",
        f"Changes only `{pin_path(params, env).relative_to(params.root)}`; "
        f"after merge the MLflow alias `{CHAMPION_ALIAS.format(env=env)}` follows it and Argo CD rolls it out.",
    ]
    if reason:
        parts += ["", f"> **Deliberately allowed to score worse than the champion:** {reason}"]
    parts += ["", "### Gates", "", "| gate | result |", "|---|---|", *(f"| {g} | {r} |" for g, r in rows)]
    parts += [
        "",
        "### Held-out metrics: challenger vs champion",
        "",
        metrics_table(params, challenger.evaluation, champion.evaluation if champion else None,
                      f"challenger v{challenger.number}", old_label),
        "",
        "### Slices (bias report) of the challenger",
        "",
        slices_table(params, recorded_slices(challenger.run_id)),
        "",
        "### Fairness criteria of the challenger",
        "",
        fairness_table(params, recorded_slices(challenger.run_id)),
        "",
        *card_sections(params, challenger, champion),
        "### Lineage",
        "",
        "| | |",
        "|---|---|",
        f"| git commit | `{lineage[COMMIT_TAG]}` (uncommitted changes: {tags.get(DIRTY_TAG, UNKNOWN)}) |",
        f"| MLflow run | `{lineage[RUN_ID]}` |",
        f"| data | `{tags.get('data_source', UNKNOWN)}`, DVC hash `{lineage[DATA_HASH_TAG]}` |",
        f"| estimator | `{tags.get('estimator', UNKNOWN)}` |",
        f"| template version | `{lineage[TEMPLATE_VERSION]}` |",
        f"| storage URI | `{challenger.storage_uri}` |",
        "",
        "### Plots",
        "",
        *registry.plot_links(challenger.run_id),
        "",
    ]  # fmt: skip
    return "\n".join(parts)
