"""`monitor drift|outliers`: measure current rows against a model's reference, report, publish, and judge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Params, server_timeout
from ..errors import DataError, MonitorBreach, ParamsError
from ..files import json_text, write_together
from ..registry import model_dir
from .current import exists, too_few_rows
from .extra import load_extra_check, run_extra_check
from .input_log import Selection, select_logged
from .outliers import outliers
from .reference import load_profile, load_reference
from .report import html_report, metrics_registry, metrics_text, publish
from .streaming import current_frames, current_stats, drift_from_stats


@dataclass(frozen=True)
class Request:
    """One check as the command line asks for it."""

    check: str  # "drift" or "outliers"
    reference: str  # model version number, alias or folder
    current: str  # CSV or Parquet of current rows (path or URL)
    out: Path | None = None  # report folder; default monitor.reports
    textfile: Path | None = None  # Prometheus textfile collector file
    pushgateway: str | None = None
    namespace: str = "local"
    if_present: bool = False  # succeed without measuring when there is no data or model yet


def run(params: Params, request: Request) -> str:
    """The check's verdict line; MonitorBreach (exit 6) when it breaches params.yaml's thresholds."""
    out = request.out or params.root / params.monitor.reports
    # The project's own check runs with drift; a wrong name fails here, before anything is measured.
    extra_check = load_extra_check(params.hooks.monitoring) if request.check == "drift" else None
    if request.if_present and not exists(request.current):
        return f"nothing to measure: {request.current} does not exist yet"
    try:
        reference = model_dir(params, request.reference)
    except ParamsError:
        if request.if_present:
            return f"nothing to measure: no model behind {request.reference} yet"
        raise
    profile = load_profile(reference)
    settings = params.monitor
    selection = select_logged(request.current, settings.window_hours) if exists(request.current) else Selection([])
    files = selection.files
    if request.if_present and not files:
        return f"nothing to measure: no input logged in {request.current} in the last {settings.window_hours} h"
    if not exists(request.current):
        raise DataError(f"{request.current} does not exist: point --current at the logged inputs (serve.log_inputs)")
    if not files:
        raise DataError(
            f"{request.current} holds no input logged in the last {settings.window_hours} h (monitor.window_hours): "
            "point --current at the server's log folder (serve.log_inputs) or at a file"
            + (f"; {_skipped_note(selection)}" if selection.skipped else "")
        )
    # Both checks read the rows batch by batch: memory is bounded by a batch, not by the day's traffic.
    # In a folder, a file that cannot be read is skipped and named; a file named on the command line is read or refused.
    skipped = selection.skipped if selection.folder else None
    if request.check == "drift":
        stats = current_stats(profile, files, params.data, skipped)
        rows = stats.rows
    else:
        _, detector = load_reference(reference)
        result = outliers(detector, current_frames(files, params.data, skipped=skipped), settings.max_outlier_share)
        rows = result["rows"]
    skipped_note = _skipped_note(selection)
    too_few = too_few_rows(rows, request.current, settings.min_rows)
    too_few = too_few and "; ".join(filter(None, [too_few, skipped_note]))
    if too_few and request.if_present:
        return f"nothing to measure: {too_few}"
    if too_few:
        raise DataError(too_few)
    report: dict[Path, str] = {}
    if request.check == "drift":
        result = drift_from_stats(profile, stats, settings)
        drift_result, outlier_result = result, None
        title = f"Drift of {request.current} against {params.registry.model_name} {request.reference}"
        report[out / "drift.html"] = html_report(result, profile, stats, title)
        verdict = f"{len(result['drifted'])} of {len(result['features'])} features drifted {result['drifted']}"
        if extra_check is not None:
            batches = current_frames(files, params.data, skipped=[])
            extra = run_extra_check(extra_check, params.hooks.monitoring, batches, params)
            breached = [check["name"] for check in extra if check["breach"]]
            result = {**result, "extra_checks": extra, "breach": result["breach"] or bool(breached)}
            verdict += f"; {len(breached)} of {len(extra)} project check(s) breached {breached}"
    else:
        drift_result, outlier_result = None, result
        verdict = f"{result['outliers']} of {result['rows']} rows are outliers (share {result['outlier_share']:.3f})"
    skipped_files = [{"file": name, "reason": why} for name, why in selection.skipped]
    report[out / f"{request.check}.json"] = json_text(
        {**result, "reference": request.reference, "current": request.current, "skipped": skipped_files}
    )
    gauges = metrics_registry(params.registry.model_name, drift_result, outlier_result)
    if request.textfile:
        report[request.textfile] = metrics_text(gauges)
    _write(report, request.textfile)
    published = publish(
        gauges,
        request.pushgateway,
        job=f"{params.mlflow.experiment}-monitor",
        namespace=request.namespace,
        timeout=server_timeout(params),
    )
    if request.textfile:
        published.insert(0, f"metrics -> {request.textfile}")
    summary = "; ".join(filter(None, [verdict, skipped_note, f"report -> {out}", *published]))
    if result["breach"]:
        raise MonitorBreach(summary)
    return summary


def _skipped_note(selection: Selection) -> str:
    """The files of the folder the check left out, each with why (empty when none)."""
    if not selection.skipped:
        return ""
    named = ", ".join(f"{name} ({why})" for name, why in selection.skipped)
    return f"skipped {len(selection.skipped)} file(s) it cannot read: {named}"


def _write(report: dict[Path, str], textfile: Path | None) -> None:
    """Every report file, or none; a clear message naming the option to fix when one cannot be written."""
    try:
        write_together(report)
    except OSError as exc:
        is_textfile = bool(textfile) and exc.filename == str(textfile)
        fix = "--textfile a writable path" if is_textfile else "--out a writable folder (default: monitor.reports)"
        raise DataError(f"cannot write {exc.filename} ({exc.strerror}), so nothing was written: pass {fix}") from None
