"""mkdocs hooks of the template's site: pages made at build time from the example run and the API list.

Every example these pages show is read from build/docs-run/ (written by scripts/docs_run.py, which
`make docs` runs first) or from a file committed by a real run (bench/*.json): nothing is typed here.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "build" / "docs-run"
API = Path(__file__).with_name("api.yml")
RUNTIME = "mlops_runtime"
# What a generated project's package holds itself; every other module of api.yml is the runtime's.
PROJECT_PARTS = {"stages"}
BENCH = ROOT / "template" / "bench"
SCENARIOS = ROOT / "build" / "scenarios.md"
RUN_HELP = "run `make docs` (it runs `python scripts/docs_run.py` first)"


def api_modules() -> tuple[str, dict[str, str]]:
    spec = yaml.safe_load(API.read_text())
    return spec["package"], spec["modules"]


def qualified(package: str, name: str) -> str:
    """The importable name: the project's own modules (its stages) under its package, the rest in the runtime."""
    return f"{package}.{name}" if name.split(".")[0] in PROJECT_PARTS else f"{RUNTIME}.{name}"


def on_config(config: Any) -> Any:
    """The API section of the navigation lists every module of docs_site/api.yml."""
    if not (RUN / "run.json").is_file():
        raise PluginError(f"no example run in {RUN}: {RUN_HELP}")
    package, modules = api_modules()
    entries: list[Any] = ["reference/index.md"]
    entries += [{name: f"reference/{name}.md"} for name in modules]
    if not _replace_nav(config["nav"], "reference/index.md", entries):
        raise PluginError("mkdocs.yml nav has no 'API reference: reference/index.md' entry to fill")
    return config


def _replace_nav(nav: list[Any], target: str, entries: list[Any]) -> bool:
    for index, item in enumerate(nav):
        if isinstance(item, dict):
            (title, value), *_ = item.items()
            if value == target:
                nav[index] = {title: entries}
                return True
            if isinstance(value, list) and _replace_nav(value, target, entries):
                return True
    return False


def on_files(files: Files, config: Any) -> Files:
    pages = {
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(),
        "run/index.md": run_page(),
        "run/promotion.md": promotion_page(),
        "run/drift-report.md": drift_page(),
        "run/cli.md": cli_page(),
        "run/benchmarks.md": bench_page(),
        "run/scenarios.md": scenarios_page(),
        "run/model-card.md": model_card_page(),
        "reference/index.md": api_index_page(),
    }
    package, modules = api_modules()
    for name, title in modules.items():
        pages[f"reference/{name}.md"] = f"# {title}\n\n::: {qualified(package, name)}\n"
    for uri, text in pages.items():
        files.append(File.generated(config, uri, content=text))
    report = RUN / "monitoring" / "drift.html"
    files.append(File.generated(config, "run/drift-report/report.html", content=report.read_bytes()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """The changelog is a page of the site: links to it from docs/ point there, not outside the site."""
    depth = page.file.src_uri.count("/")
    return markdown.replace("](../CHANGELOG.md)", f"]({'../' * depth}changelog.md)")


def run_record() -> dict[str, Any]:
    return json.loads((RUN / "run.json").read_text())


def provenance() -> str:
    record = run_record()
    commit = record["template_commit"] + (" with uncommitted changes" if record["uncommitted_changes"] else "")
    return (
        f'!!! info "From the example run"\n    Produced by the example run of {record["started"]} '
        f"(template {commit}, Python {record['python']}): see [the example run](index.md).\n"
    )


def run_page() -> str:
    record = run_record()
    rows = "\n".join(f"| `{c['command']}` | {c['exit_code']} | {c['seconds']} |" for c in record["commands"])
    return f"""# The example run

Every example on this site comes from one run of `scripts/docs_run.py`, made by the
build of this site: it generates a project with the default answers and runs its
lifecycle, then keeps what the commands printed and wrote. A docs build reruns it
whenever a file the project is generated from changes.

- started: {record["started"]}, {record["minutes"]} minutes
- template commit: `{record["template_commit"]}`{" (with uncommitted changes)" if record["uncommitted_changes"] else ""}

| command (in the generated project) | exit code | seconds |
|---|---|---|
{rows}
"""


def promotion_page() -> str:
    body = (RUN / "promote-dev.md").read_text()
    diff = (RUN / "pin-dev.diff").read_text()
    metrics = (RUN / "promote-diff-dev.md").read_text()
    return f"""# The promotion pull request

`make promote ENV=dev VERSION=1 BODY=pr.md` pins the model version 1 in dev,
behind the promotion gates ([runbook of a generated project](../lifecycle.md)),
and writes the pull request body. Below is what it wrote in the example run, as
the pull request shows it and as markdown, then the one file the promotion changed.

{provenance()}
=== "Pull request body"

{_indent(_demote_headings(body))}

=== "Markdown"

    ```markdown
{_indent(body, 4)}
    ```

## The pin file it changed

```diff
{diff.rstrip()}
```

## `make promote-diff ENV=dev`

The workspace's reports against the model now pinned in dev, as `promote --diff` prints them:

```markdown
{metrics.rstrip()}
```
"""


def _demote_headings(markdown: str) -> str:
    """A PR body's headings sit under the page's own (##), and its relative links are shown as text."""
    markdown = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", markdown, flags=re.M)
    return re.sub(r"\[([^\]]+)\]\((?!https?://)[^)]*\)", r"`\1`", markdown)


def _indent(text: str, spaces: int = 4) -> str:
    return "\n".join((" " * spaces + line) if line.strip() else "" for line in text.rstrip().splitlines())


def drift_page() -> str:
    result = json.loads((RUN / "monitoring" / "drift.json").read_text())
    traffic = json.loads((RUN / "traffic.json").read_text())
    features = result.get("features", {})
    rows = "\n".join(
        f"| {name} | {spec.get('method', '')} | {spec.get('distance', '')} | {'yes' if spec.get('drifted') else 'no'} |"
        for name, spec in sorted(features.items(), key=lambda kv: (not kv[1].get("drifted"), kv[0]))
    )
    return f"""# The drift report

`make serve` logged every row it predicted; `make monitor REFERENCE=challenger` measured
those rows against the training data of the served model and wrote this report
(`reports/monitoring/drift.html`) and its figures in `drift.json`. The traffic of the
example run: {traffic["held_out_rows"]} held-out rows as they are, then
{traffic["shifted_rows"]} of them with monthly charges times 1.6 and tenures 24 months
longer, so that two features drift. The check measured {result["rows"]} logged rows against
{result["reference_rows"]} reference rows, and said (exit code 6, a breach):

```text
{(RUN / "monitor.txt").read_text().strip()}
```

{provenance()}
| feature | measure | distance | drifted |
|---|---|---|---|
{rows}

## The report, as `make monitor` wrote it

<iframe class="drift-report" src="report.html" title="Drift report"
 style="width:100%;height:900px;border:1px solid #ddd"></iframe>

[Open the report on its own](drift-report/report.html)
"""


def cli_page() -> str:
    helps = json.loads((RUN / "cli-help.json").read_text())
    parts = [
        "# The command line",
        "",
        "Each stage and tool of a generated project is one command, `python -m <package> COMMAND`, "
        "the same locally and on the cluster; the Makefile's targets call them. "
        "Below is each command's `--help`, printed by the project of the example run "
        "(package `customer_churn`).",
        "",
        provenance(),
    ]
    for words, text in helps.items():
        title = f"python -m customer_churn {words}".rstrip()
        parts += [f"## `{title}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(parts)


def bench_page() -> str:
    parts = [
        "# Benchmark figures",
        "",
        "The figures a generated project's benchmarks wrote on their last committed run, read from the JSON "
        "files they committed (`bench/*.json` of a generated project). The prose around them is in "
        "[Serving](../serving.md#figures) and [Monitoring](../monitoring.md#figures).",
        "",
    ]
    found = sorted(BENCH.glob("*.json"))
    if not found:
        raise PluginError(f"no bench/*.json in {BENCH}: run make bench-monitor in a generated project and commit it")
    for path in found:
        parts += [f"## `bench/{path.name}`", "", "| figure | value |", "|---|---|"]
        parts += [f"| `{key}` | {html.escape(str(value))} |" for key, value in _flatten(json.loads(path.read_text()))]
        parts.append("")
    return "\n".join(parts)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [pair for key, value in data.items() for pair in _flatten(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), data)]


def scenarios_page() -> str:
    head = (
        "# The lifecycle as pull requests\n\n"
        "`make scenarios` plays the lifecycle of one generated project as a series of pull requests, "
        "each judged by the project's own `ci.yml`, and writes the table to `build/scenarios.md` "
        "([how it works](../lifecycle.md#the-lifecycle-as-pull-requests-make-scenarios)).\n\n"
    )
    if not SCENARIOS.is_file():
        return head + (
            '!!! note "No table in this build"\n'
            "    No run of `make scenarios` preceded this build, so this page shows no table: run "
            "`make scenarios` (10-15 minutes), then `make docs`.\n"
        )
    return head + "The table of the last `make scenarios` run on this machine:\n\n" + SCENARIOS.read_text()


def model_card_page() -> str:
    return (
        "# Model card\n\n"
        '!!! warning "Not produced yet"\n'
        "    A generated project does not write a model card yet. When it does, the card of the example "
        "run's model version appears on this page, taken from that run like every other example here.\n"
    )


def api_index_page() -> str:
    package, modules = api_modules()
    rows = "\n".join(f"| [`{qualified(package, name)}`]({name}.md) | {title} |" for name, title in modules.items())
    return f"""# API reference

The modules a team calls, extends or reads when it customises its project, documented from
their docstrings: its stages, in its own package (here `{package}`, the default answers), and
the runtime's (`{RUNTIME}`). Which modules appear is listed in one file, `docs_site/api.yml`.

| module | what it is |
|---|---|
{rows}
"""
