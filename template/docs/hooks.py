"""mkdocs hooks of this project's site: the README and deploy/README.md as pages, and the latest reports.

The reports page shows what the pipeline and monitoring last wrote under reports/ (the files git keeps),
so the site of a commit shows that commit's evaluation.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
# Markdown files outside docs/ that the site shows, and the page each becomes.
PAGES = {"README.md": "index.md", "deploy/README.md": "deploy.md"}


def on_files(files: Files, config: Any) -> Files:
    for source, page in PAGES.items():
        files.append(File.generated(config, page, content=_site_links((ROOT / source).read_text())))
    files.append(File.generated(config, "reports.md", content=reports_page()))
    for report in sorted((REPORTS / "monitoring").glob("*.html")):
        files.append(File.generated(config, f"reports/{report.name}", content=report.read_bytes()))
    return files


def _site_links(markdown: str) -> str:
    """Links between the README files and docs/ as links between the site's pages."""
    for source, page in PAGES.items():
        markdown = markdown.replace(f"]({source})", f"]({page})")
    return markdown.replace("](docs/", "](")


def reports_page() -> str:
    parts = ["# Latest reports", "", "What the pipeline and monitoring last wrote under `reports/`.", ""]
    parts += _table("Held-out metrics", "metrics.json", lambda data: sorted(data.items()))
    parts += _table("The gate", "gate.json", lambda data: sorted(data.items()))
    slices = REPORTS / "slices.json"
    if slices.is_file():
        rows = json.loads(slices.read_text())
        rows = rows.get("slices", rows) if isinstance(rows, dict) else rows
        columns = sorted({key for row in rows for key in row})
        parts += ["## Slices", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        parts += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
        parts.append("")
    monitoring = sorted((REPORTS / "monitoring").glob("*.html"))
    parts += ["## Monitoring", ""]
    if not monitoring:
        parts += ["No monitoring report yet: `make serve`, some traffic, then `make monitor` writes one.", ""]
    for report in monitoring:
        parts += [
            f"### `reports/monitoring/{report.name}`",
            "",
            f'<iframe src="../reports/{report.name}" title="{report.stem}" '
            'style="width:100%;height:900px;border:1px solid #ddd"></iframe>',
            "",
        ]
    return "\n".join(parts)


def _table(title: str, name: str, rows: Any) -> list[str]:
    path = REPORTS / name
    if not path.is_file():
        return [f"## {title}", "", f"No `reports/{name}` yet: `make all` writes it.", ""]
    lines = [f"## {title}", "", f"`reports/{name}`", "", "| name | value |", "|---|---|"]
    lines += [f"| {html.escape(str(key))} | {_cell(value)} |" for key, value in rows(json.loads(path.read_text()))]
    return [*lines, ""]


def _cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return html.escape(text).replace("|", "\\|")
