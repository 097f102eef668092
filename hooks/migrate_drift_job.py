"""Update migration to 0.3.0: the drift check runs as each environment's CronJob; the Argo CronWorkflow is gone.

Before 0.3.0 a project with monitoring also had `pipelines/monitoring.py`, a
CronWorkflow that `make render` wrote to `pipelines/monitoring.yaml`. It disagreed
with the drift CronJob of deploy/components/monitoring (schedule, data, thresholds),
so the template dropped it: each environment's CronJob, driven by
deploy/overlays/<env>/thresholds.yaml, checks drift and sends a breach to GitHub.
`copier update` deletes the module, which the template rendered, but the YAML was
written by `make render`, so the update would leave it behind, and `make validate`
would then check a CronWorkflow nothing builds any more.

Copier runs this before the merge, while params.yaml still holds the values the
module read. When the YAML is what the module renders from them (the workflow the
module names, its schedule, its two commands and the project image), it deletes the
file and says so. A YAML that differs was edited by hand: it is kept, named, with
what to do. Safe to rerun: without the file there is nothing to do. It never stops
the update.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

RENDERED = Path("pipelines/monitoring.yaml")
PARAMS = Path("params.yaml")
ANSWERS = Path(".copier-answers.yml")
LIMITS = ("requests", "limits")
NEW_HOME = "now the drift CronJob of each environment, set in deploy/overlays/<env>/thresholds.yaml"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def expected_commands(params: dict[str, Any], package: str) -> dict[str, list[str]]:
    """The container command of each step, as pipelines/monitoring.py built them from params.yaml."""
    monitor = params["monitor"]
    check = ["python", "-m", package, "monitor", "drift", "--reference", str(monitor.get("reference", "challenger"))]
    check += ["--current", str(monitor["current"]), "--if-present"]
    if monitor.get("pushgateway"):
        check += ["--pushgateway", str(monitor["pushgateway"])]
    result = f"{str(monitor.get('reports', 'reports/monitoring')).rstrip('/')}/drift.json"
    return {"check": check, "dispatch": ["python", "-m", package, "monitor", "dispatch", "--result", result]}


def differences(doc: Any, params: dict[str, Any], package: str) -> list[str]:
    """Where `doc` is not the CronWorkflow pipelines/monitoring.py renders from `params`; empty when it is."""
    if not isinstance(doc, dict) or doc.get("kind") != "CronWorkflow":
        return ["it is not a CronWorkflow"]
    found = []
    metadata, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    name = f"{params['mlflow']['experiment']}-drift"
    if metadata.get("name") != name or metadata.get("namespace") != params["argo"]["namespace"]:
        found.append(f"it is not the workflow {name} in namespace {params['argo']['namespace']}")
    schedules = spec.get("schedules") or ([spec["schedule"]] if spec.get("schedule") else [])
    if schedules != [str(params["monitor"].get("schedule", "0 6 * * *"))]:
        found.append(f"its schedule {schedules} is not monitor.schedule of {PARAMS}")
    workflow = spec.get("workflowSpec") or {}
    templates = {t.get("name"): t for t in workflow.get("templates") or [] if isinstance(t, dict)}
    if workflow.get("entrypoint") != "drift" or set(templates) != {"check", "dispatch", "drift"}:
        found.append("its steps are not check, dispatch and the drift DAG")
    for step, command in expected_commands(params, package).items():
        container = (templates.get(step) or {}).get("container") or {}
        if container.get("command") != command:
            found.append(f"the command of step {step} is not the one {PARAMS} gives")
        if not str(container.get("image", "")).startswith(f"{params['argo']['image']}:"):
            found.append(f"step {step} does not run the project image")
        wanted = params["argo"]["resources"].get(step) or params["argo"]["resources"]["default"]
        size = {"cpu": str(wanted["cpu"]), "memory": str(wanted["memory"])}
        resources = container.get("resources") or {}
        if any({k: str(v) for k, v in (resources.get(kind) or {}).items() if k in size} != size for kind in LIMITS):
            found.append(f"the resources of step {step} are not argo.resources of {PARAMS}")
        retries = ((templates.get(step) or {}).get("retryStrategy") or {}).get("limit")
        if str(retries) != str(params["argo"].get("retries", 3)):
            found.append(f"the retries of step {step} are not argo.retries of {PARAMS}")
    return found


def main() -> int:
    if not RENDERED.exists():
        return 0
    try:
        doc, params = _load(RENDERED), _load(PARAMS)
        package = str(_load(ANSWERS)["package_name"])
        found = differences(doc, params, package)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        found = [f"it cannot be compared with {PARAMS} ({type(exc).__name__}: {str(exc).splitlines()[0]})"]
    if found:
        print(
            f"migration to 0.3.0: kept {RENDERED}, which is not what pipelines/monitoring.py rendered "
            f"({'; '.join(found)}). The drift check is {NEW_HOME}: carry over what you changed "
            f"there, then delete {RENDERED} (`make validate` refuses a CronWorkflow, having no schema for it).",
            file=sys.stderr,
        )
        return 0
    RENDERED.unlink()
    # Copier diffs the git index against the old release and replays the difference: a file
    # only deleted from the work tree would come back. Staged, the deletion is part of the update.
    subprocess.run(["git", "rm", "--cached", "--quiet", "--ignore-unmatch", "--", str(RENDERED)], check=False)
    print(f"migration to 0.3.0: deleted {RENDERED}, the rendered Argo drift workflow; the drift check is {NEW_HOME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
