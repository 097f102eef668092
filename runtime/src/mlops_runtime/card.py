"""The model card of a version: the sections its owners write, and the sections its pipeline computes.

The sections follow "Model Cards for Model Reporting" (Mitchell et al., 2019): model details, intended
use, factors, metrics, evaluation and training data, quantitative analyses, ethical considerations,
caveats. Its Markdown opens with the metadata of a Hugging Face model card (YAML front matter).

- The written sections come from the project's card text (paths.card_text, owned in CODEOWNERS): a
  Markdown file whose `## ` headings name them, with optional YAML front matter of metadata.
- The evaluate stage computes the rest (build) and writes both forms (paths.card, paths.card_markdown);
  they travel in the model's folder, so a server shows the card of what it serves.
- A card is complete when every written section has text and every computed section is present
  (problems); promotion refuses a version whose card is not.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import ParamsError

SCHEMA = "model-card/1"
# The files a model's folder and its MLflow run carry.
JSON_FILE = "model_card.json"
MARKDOWN_FILE = "model_card.md"
# Written sections: key in the card -> the `## ` heading of the card text.
WRITTEN = {
    "intended_use": "Intended use",
    "out_of_scope_uses": "Out-of-scope uses",
    "known_limitations": "Known limitations",
    "ethical_considerations": "Ethical considerations",
}
# Computed sections and the JSON type each has: a card read from a registry is checked before it is shown.
COMPUTED: dict[str, type] = {
    "model": dict,
    "lineage": dict,
    "data": dict,
    "metrics": list,
    "slices": list,
    "fairness": list,
    "calibration": dict,
    "drift_reference": dict,
}
# What each row of a computed table has (a card read from a registry is checked before it is shown).
ROW_FIELDS = {
    "metrics": {"name", "value"},
    "slices": {"slice", "value"},
    "fairness": {"criterion"},
    "calibration": {"bin", "rows", "predicted", "observed"},
}
CALIBRATION_BINS = 10
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def read_text(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The card text's metadata (front matter) and its written sections (empty text where one is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        # The card is still written, without the owners' sections: incomplete, so promotion names them.
        return {}, dict.fromkeys(WRITTEN, "")
    except OSError as exc:
        raise ParamsError(
            f"the model card text {path} cannot be read ({exc.strerror}): write it, with the sections "
            f"{', '.join(WRITTEN.values())} (paths.card_text in params.yaml)"
        ) from None
    metadata: dict[str, Any] = {}
    if text.startswith("---\n"):
        front, sep, rest = text[4:].partition("\n---\n")
        if not sep:
            raise ParamsError(f"{path}: its front matter opens with --- and never closes: end it with a --- line")
        try:
            loaded = yaml.safe_load(front)
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path}: its front matter is not YAML ({exc}): fix it") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ParamsError(f"{path}: its front matter must be a mapping of metadata (license, tags, ...)")
        metadata, text = loaded or {}, rest
    by_heading: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = by_heading.setdefault(line[3:].strip().lower(), [])
        elif current is not None:
            current.append(line)
    sections = {
        key: _COMMENT.sub("", "\n".join(by_heading.get(heading.lower(), []))).strip()
        for key, heading in WRITTEN.items()
    }
    return metadata, sections


def calibration(y: Any, prob: Any) -> dict[str, Any]:
    """Reliability of the predicted probabilities: equal-width bins, the Brier score and the expected
    calibration error (the bins' gaps between predicted and observed, weighted by their rows)."""
    import numpy as np

    y, prob = np.asarray(y, dtype=float), np.asarray(prob, dtype=float)
    bins = np.minimum((prob * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    rows, ece = [], 0.0
    for index in range(CALIBRATION_BINS):
        mask = bins == index
        if not mask.any():
            continue
        predicted, observed = float(prob[mask].mean()), float(y[mask].mean())
        ece += mask.mean() * abs(predicted - observed)
        rows.append(
            {
                "bin": f"{index / CALIBRATION_BINS:.1f}-{(index + 1) / CALIBRATION_BINS:.1f}",
                "rows": int(mask.sum()),
                "predicted": round(predicted, 6),
                "observed": round(observed, 6),
            }
        )
    return {
        "brier": round(float(np.mean((prob - y) ** 2)), 6),
        "expected_calibration_error": round(float(ece), 6),
        "bins": rows,
    }


def roc_points(y: Any, prob: Any, points: int = 21) -> dict[str, list[float]]:
    """The ROC curve at evenly spaced false positive rates (for charts that take evenly spaced values)."""
    import numpy as np
    from sklearn.metrics import roc_curve

    grid = np.linspace(0, 1, points)
    if len(np.unique(y)) < 2:
        return {"fpr": grid.round(6).tolist(), "tpr": []}
    fpr, tpr, _ = roc_curve(y, prob)
    return {"fpr": grid.round(6).tolist(), "tpr": np.interp(grid, fpr, tpr).round(6).tolist()}


def drift_summary(profile: dict[str, Any], top: int = 5) -> dict[str, Any]:
    """What the drift check compares with: per feature, the training mean, spread and missing share, or the
    most frequent categories."""
    features = {}
    for name, feature in profile.get("features", {}).items():
        if feature.get("kind") == "numeric":
            features[name] = {
                "kind": "numeric",
                **{k: round(float(feature[k]), 6) for k in ("mean", "std", "missing") if k in feature},
            }
        else:
            frequencies = sorted(feature.get("frequencies", {}).items(), key=lambda kv: -kv[1])
            features[name] = {"kind": "categorical", "top": {k: round(v, 6) for k, v in frequencies[:top]}}
    return {"rows": profile.get("rows"), "features": features}


def build(
    *,
    text_path: Path,
    model: dict[str, Any],
    lineage: dict[str, Any],
    data: dict[str, Any],
    metrics: list[dict[str, Any]],
    decision_threshold: float,
    factors: list[str],
    slices: list[dict[str, Any]],
    fairness: list[dict[str, Any]],
    calibration_report: dict[str, Any],
    roc: dict[str, list[float]],
    drift_reference: dict[str, Any],
) -> dict[str, Any]:
    """The card as JSON: the written sections from the card text, the computed ones as given."""
    metadata, written = read_text(text_path)
    return {
        "schema": SCHEMA,
        "metadata": metadata,
        "model": model,
        "lineage": lineage,
        **written,
        "factors": factors,
        "decision_threshold": decision_threshold,
        "data": data,
        "metrics": metrics,
        "slices": slices,
        "fairness": fairness,
        "calibration": calibration_report,
        "roc": roc,
        "drift_reference": drift_reference,
    }


def malformed(card: Any) -> list[str]:
    """Why `card` cannot be shown: not of this schema, or a section of the wrong JSON type."""
    if not isinstance(card, dict) or card.get("schema") != SCHEMA:
        return [f"it is not a model card of schema {SCHEMA}"]
    wrong = [f"the section '{key}' is not text" for key in WRITTEN if not isinstance(card.get(key, ""), str)]
    wrong += [
        f"the computed section '{key}' is not a JSON {kind.__name__}"
        for key, kind in COMPUTED.items()
        if key in card and not isinstance(card[key], kind)
    ]
    if wrong:
        return wrong
    bins = card.get("calibration", {}).get("bins", [])
    for key, rows, fields in (
        ("metrics", card.get("metrics", []), ROW_FIELDS["metrics"]),
        ("slices", card.get("slices", []), ROW_FIELDS["slices"]),
        ("fairness", card.get("fairness", []), ROW_FIELDS["fairness"]),
        ("calibration", bins if isinstance(bins, list) else [None], ROW_FIELDS["calibration"]),
    ):
        if any(not isinstance(row, dict) or not fields <= set(row) for row in rows):
            wrong.append(f"a row of '{key}' is not an object with {', '.join(sorted(fields))}")
    return wrong


def problems(card: Any) -> list[str]:
    """Why a card is not complete: malformed, a written section without text, a computed section absent."""
    wrong = malformed(card)
    if wrong:
        return wrong
    found = [
        f"the section '{heading}' has no text (write it in the card text, then evaluate again)"
        for key, heading in WRITTEN.items()
        if not card.get(key, "").strip()
    ]
    found += [f"the computed section '{key}' is missing (evaluate again)" for key in COMPUTED if key not in card]
    return found


@functools.lru_cache(maxsize=8)
def recorded(storage_uri: str, run_id: str) -> dict[str, Any] | None:
    """The model card in the version's model folder (where servers read it), else the one logged with its run;
    None when neither has one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    places = [
        {"artifact_uri": f"{storage_uri.rstrip('/')}/{JSON_FILE}"},
        {"run_id": run_id, "artifact_path": f"model_card/{JSON_FILE}"},
    ]
    for place in places:
        with tempfile.TemporaryDirectory() as folder:
            try:
                local = mlflow.artifacts.download_artifacts(**place, dst_path=folder)
                found = json.loads(Path(local).read_text(encoding="utf-8"))
            except (MlflowException, OSError, json.JSONDecodeError):
                continue
        return found if isinstance(found, dict) else None
    return None


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _escaped(cell: Any) -> str:
    """A table cell that stays one cell and shows as text (values come from data files and the registry)."""
    return str(cell).replace("\n", " ").replace("|", "\\|").replace("<", "&lt;")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_escaped(cell) for cell in row) + " |" for row in rows]


def front_matter(card: dict[str, Any]) -> str:
    """Hugging Face model card metadata: the card text's own, then the library, task and results."""
    model = card.get("model", {})
    meta = {
        "library_name": "sklearn",
        "pipeline_tag": "tabular-classification",
        **card.get("metadata", {}),
        "model-index": [
            {
                "name": model.get("name", ""),
                "results": [
                    {
                        "task": {"type": "tabular-classification"},
                        "dataset": {"name": card.get("data", {}).get("source", ""), "type": "tabular"},
                        "metrics": [{"type": m["name"], "value": m["value"]} for m in card.get("metrics", [])],
                    }
                ],
            }
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def markdown(card: dict[str, Any], version: str = "", metadata: bool = True) -> str:
    """The card for people, in the order of Mitchell et al.; `metadata`: open with the front matter."""
    model, lineage, data = card.get("model", {}), card.get("lineage", {}), card.get("data", {})
    title = f"{model.get('name', 'model')}" + (f" version {version}" if version else "")
    out = [front_matter(card)] if metadata else []
    out += [f"# Model card: {title}", ""]
    out += ["## Model details", ""]
    details = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in {**model, **lineage}.items()}
    out += _table(["", ""], [[k.replace("_", " "), f"`{v}`"] for k, v in details.items()])
    for key in ("intended_use", "out_of_scope_uses"):
        out += ["", f"## {WRITTEN[key]}", "", card.get(key) or "_(not written)_"]
    out += ["", "## Factors", "", f"Slices by {', '.join(card.get('factors') or []) or 'nothing (evaluate.slice_by)'}; "
            f"decisions at the threshold {card.get('decision_threshold')}."]  # fmt: skip
    out += ["", "## Metrics", "", "Held-out metrics against the success criteria in params.yaml.", ""]
    out += _table(
        ["metric", "value", "criterion", "met"],
        [
            [m["name"], _number(m["value"]), m.get("criterion") or "", _met(m.get("passed"))]
            for m in card.get("metrics", [])
        ],
    )
    out += ["", "## Training and evaluation data", ""]
    out += _table(["", ""], [[k.replace("_", " "), v if v is not None else "–"] for k, v in data.items()])
    out += ["", "## Quantitative analyses", "", "### Slices", ""]
    names = [n for n in ("rows", "label_rate", "roc_auc", "recall", "precision", "positive_rate", "false_positive_rate")
             if any(n in s for s in card.get("slices", []))]  # fmt: skip
    out += _table(
        ["slice", "value", *names],
        [[s["slice"], s["value"], *(_cell(s.get(n)) for n in names)] for s in card.get("slices", [])],
    )
    out += ["", "### Fairness criteria", ""]
    out += _table(
        ["criterion", "value", "best vs worst", "met"],
        [
            [f["criterion"], _number(f.get("value")), f"{f.get('best', '')} vs {f.get('worst', '')}".strip(" vs"),
             _met(f.get("passed")) + (f": {f['problem']}" if f.get("problem") else "")]
            for f in card.get("fairness", [])
        ],
    )  # fmt: skip
    cal = card.get("calibration", {})
    out += ["", "### Calibration", "", f"Brier score {_number(cal.get('brier'))}, expected calibration error "
            f"{_number(cal.get('expected_calibration_error'))}.", ""]  # fmt: skip
    out += _table(
        ["predicted probability", "rows", "mean predicted", "observed rate"],
        [[b["bin"], b["rows"], _number(b["predicted"]), _number(b["observed"])] for b in cal.get("bins", [])],
    )
    ref = card.get("drift_reference", {})
    out += ["", "### Drift reference", "", f"Training rows profiled: {ref.get('rows')}.", ""]
    out += _table(
        ["feature", "kind", "summary"],
        [[name, f.get("kind", ""), _summary(f)] for name, f in ref.get("features", {}).items() if isinstance(f, dict)],
    )
    out += ["", f"## {WRITTEN['ethical_considerations']}", "", card.get("ethical_considerations") or "_(not written)_"]
    out += ["", f"## Caveats and recommendations: {WRITTEN['known_limitations'].lower()}", ""]
    out += [card.get("known_limitations") or "_(not written)_", ""]
    return "\n".join(out)


def _met(passed: Any) -> str:
    return {True: "yes", False: "**no**"}.get(passed, "")


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _number(value)


def _summary(feature: dict[str, Any]) -> str:
    if feature.get("kind") == "numeric":
        mean, std, missing = (_number(feature.get(k)) for k in ("mean", "std", "missing"))
        return f"mean {mean}, std {std}, missing {missing}"
    return ", ".join(f"{k} {_number(v)}" for k, v in dict(feature.get("top") or {}).items())


def changes(new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    """What differs between a challenger's card and the champion's, one line each."""
    if not old:
        return ["The champion has no model card to compare with."]
    lines = [
        f"- {heading}: rewritten" for key, heading in WRITTEN.items() if (new.get(key) or "") != (old.get(key) or "")
    ]
    for section in ("model", "lineage", "data"):
        for key, value in new.get(section, {}).items():
            before = old.get(section, {}).get(key)
            if key not in ("run_id", "model_uri", "created") and before != value:
                lines.append(f"- {section} {key.replace('_', ' ')}: `{before}` → `{value}`")
    before = {m["name"]: m["value"] for m in old.get("metrics", [])}
    for metric in new.get("metrics", []):
        if isinstance(before.get(metric["name"]), (int, float)):
            lines.append(f"- {metric['name']}: {_number(before[metric['name']])} → {_number(metric['value'])}")
    old_cal, new_cal = old.get("calibration", {}), new.get("calibration", {})
    if "expected_calibration_error" in old_cal and "expected_calibration_error" in new_cal:
        before_ece, after_ece = old_cal["expected_calibration_error"], new_cal["expected_calibration_error"]
        lines.append(f"- expected calibration error: {_number(before_ece)} → {_number(after_ece)}")
    old_fair = {f["criterion"]: f for f in old.get("fairness", [])}
    for result in new.get("fairness", []):
        was = old_fair.get(result["criterion"])
        if was and was.get("passed") != result.get("passed"):
            lines.append(f"- fairness {result['criterion']}: {_met(was.get('passed'))} → {_met(result.get('passed'))}")
    return lines or ["Nothing but the run differs."]
