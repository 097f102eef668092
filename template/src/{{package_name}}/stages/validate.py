"""Validate stage: check the ingested table against the data contract in params.yaml."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from mlops_runtime.config import Column, DataContract, Params
from mlops_runtime.errors import ContractViolation
from mlops_runtime.files import read_table, write_json, write_table
from pandera.errors import SchemaErrors

MAX_ROWS_SHOWN = 10


def _column_schema(spec: Column) -> pa.Column:
    if spec.kind == "numeric":
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        return pa.Column(float, checks, nullable=spec.nullable, coerce=True)
    checks = [pa.Check.isin(spec.allowed)] if spec.allowed else []
    return pa.Column(str, checks, nullable=spec.nullable, coerce=True)


def build_schema(contract: DataContract) -> pa.DataFrameSchema:
    """A pandera schema from the contract; columns not named in it pass through."""
    columns = {name: _column_schema(spec) for name, spec in contract.columns.items()}
    columns[contract.label] = pa.Column(int, pa.Check.isin([0, 1]), coerce=True)
    if contract.id_column:
        columns[contract.id_column] = pa.Column(str, unique=True, coerce=True)
    return pa.DataFrameSchema(columns, strict=False)


def summarise_failures(failures: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per (column, check): how many rows fail, which rows, which values."""
    failures = failures.assign(
        column=failures["column"].where(failures["column"].notna(), failures["failure_case"]),
    )
    report = []
    for (column, check), group in failures.groupby(["column", "check"], sort=True, dropna=False):
        rows = sorted({int(i) for i in group["index"].dropna()})
        values = sorted({str(v) for v in group["failure_case"].dropna()})
        report.append(
            {
                "column": str(column),
                "check": str(check),
                "failing_rows": len(rows),
                "rows": rows[:MAX_ROWS_SHOWN],
                "values": values[:MAX_ROWS_SHOWN],
            }
        )
    return report


def check(frame: pd.DataFrame, contract: DataContract) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The validated (typed) frame and an empty report, or the original frame and the failures."""
    try:
        return build_schema(contract).validate(frame, lazy=True), []
    except SchemaErrors as exc:
        return frame, summarise_failures(exc.failure_cases)


def format_report(report: list[dict[str, Any]]) -> str:
    lines = [f"data contract violated ({len(report)} problem(s)); fix the data or data: in params.yaml:"]
    for item in report:
        rows = f" rows {item['rows']}" if item["rows"] else ""
        more = " ..." if item["failing_rows"] > len(item["rows"]) else ""
        lines.append(
            f"  column {item['column']!r}: {item['check']} failed for {item['failing_rows'] or 'all'} row(s)"
            f"{rows}{more}; values {item['values']}"
        )
    return "\n".join(lines)


def main(params: Params) -> str:
    frame = read_table(params.path("ingested"), produced_by="ingest")
    validated, report = check(frame, params.data)
    write_json({"passed": not report, "rows": len(frame), "problems": report}, params.path("validation_report"))
    if report:
        raise ContractViolation(format_report(report) + f"\nfull report: {params.paths.validation_report}")
    write_table(validated, params.path("validated"))
    return f"{len(validated)} rows meet the data contract -> {params.paths.validated}"
