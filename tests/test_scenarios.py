"""Slow: the lifecycle of one generated project played as pull requests, each judged by its ci.yml.

One project, a bare git remote, a local DVC remote and one shared MLflow registry (a
SQLite store standing for the team's tracking server). A user checkout makes each
change the way a person (or the project's workflows) would, on a branch from main,
with the project's own commands; a CI checkout runs the `run:` steps of ci.yml on
that branch (tests/ci_harness.py) like a runner that keeps its workspace between
jobs: the environment, DVC cache and ignored outputs stay, everything else is the
branch as pushed. A passing branch is merged into main (fast-forward) so the next one
builds on it; an expected failure must fail at the named step with the named reason
and is not merged. `make scenarios` prints the table.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest
import yaml
from packaging.version import Version

from .ci_harness import EXPRESSIONS, run_ci
from .conftest import run
from .releases import make_template_clone

pytestmark = pytest.mark.slow

PASS = "PASS"
GATES = "Promotion gates on changed pin files"
RENDER = "Argo workflows render and match the committed YAML"
# The Tests step (the project's whole suite, two to three minutes on two cores) runs when a
# branch changes the code, the tests or what they run with; elsewhere it is skipped for time
# (params.yaml too, which the suite copies) and the table says so on each such row.
TESTED_PATHS = ("src/", "tests/", "pyproject.toml", "uv.lock", "dvc.yaml", "Makefile")
TESTS_SKIPPED = "(Tests step skipped for time)"


@dataclass(frozen=True)
class Expected:
    """A failure CI must report: the step that fails and a phrase of its message."""

    step: str
    phrase: str

    def __str__(self) -> str:
        return f"FAIL at {self.step}: “{self.phrase}”"


@dataclass
class Row:
    transition: str
    change: str
    verdict: str
    expected: str
    ok: bool


def table(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| transition | change | CI verdict | expected |", "|---|---|---|---|"]
    lines += [
        f"| {cell(r.transition)} | {cell(r.change)} | {cell(r.verdict)}{'' if r.ok else ' ✗'} | {cell(r.expected)} |"
        for r in rows
    ]
    if any(TESTS_SKIPPED in r.change for r in rows):
        lines += [
            "",
            f"{TESTS_SKIPPED}: the project's test suite runs where a branch changes {', '.join(TESTED_PATHS)}.",
        ]
    return "\n".join(lines)


class DispatchCatcher(http.server.BaseHTTPRequestHandler):
    """GitHub's repository_dispatch endpoint: records what `monitor drift --dispatch` sends, answers 204."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append({"path": self.path, "payload": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dispatch_endpoint() -> Iterator[tuple[str, list[dict]]]:
    DispatchCatcher.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DispatchCatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", DispatchCatcher.received
    server.shutdown()
    server.server_close()


class Lifecycle:
    """The user's checkout, the CI checkout and the shared stores of one generated project."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        # Generated from a tagged clone of the working tree (not this repository itself), so that
        # the template update at the end can add a newer release to update to.
        self.template = make_template_clone(tmp / "template")
        origin = tmp / "origin"
        copier.run_copy(
            str(self.template.path),
            str(origin),
            data={"dvc_remote_url": str(tmp / "dvc-remote")},
            defaults=True,
            unsafe=True,
            vcs_ref=self.template.newest,
            quiet=True,
        )
        answers = yaml.safe_load((origin / ".copier-answers.yml").read_text())
        self.package = answers["package_name"]
        self.remote = tmp / "remote.git"
        run(["git", "clone", "--quiet", "--bare", str(origin), str(self.remote)], cwd=tmp)
        self.user, self.ci = tmp / "user", tmp / "ci"
        for checkout in (self.user, self.ci):
            run(["git", "clone", "--quiet", str(self.remote), str(checkout)], cwd=tmp)
        # The team's tracking server and registry; artifacts live beside it, as a server keeps them.
        registry = tmp / "registry"
        registry.mkdir()
        self.registry_uri = f"sqlite:///{registry / 'mlflow.db'}"
        self.user_env = {"MLFLOW_TRACKING_URI": self.registry_uri, "OMP_NUM_THREADS": "1"}
        self.expressions = {**EXPRESSIONS, "vars.MLFLOW_TRACKING_URI": self.registry_uri}
        self.rows: list[Row] = []
        self.sh("make", "setup", "data")
        experiment = yaml.safe_load((self.user / "params.yaml").read_text())["mlflow"]["experiment"]
        self.python(
            "-c",
            "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
            "mlflow.create_experiment(sys.argv[2], artifact_location=sys.argv[3])",
            self.registry_uri,
            experiment,
            (registry / "artifacts").as_uri(),
        )

    # The user's side: commands in the user's checkout, with the shared registry.
    def sh(self, *cmd: str, cwd: Path | None = None) -> str:
        return run(list(cmd), cwd=cwd or self.user, env=self.user_env)

    def python(self, *args: str) -> str:
        return self.sh(str(self.user / ".venv/bin/python"), *args)

    def cli(self, *args: str) -> str:
        """`python -m <package> ...` as a user types it."""
        return self.python("-m", self.package, *args)

    def git(self, *args: str) -> str:
        return self.sh("git", *args)

    def switch(self, *args: str) -> None:
        # With the project's hooks, as a person switches: DVC's post-checkout restores each branch's data.
        self.git("switch", "--quiet", *args)

    def branch(self, name: str) -> None:
        self.switch("main")
        self.switch("-c", name)

    def commit(self, message: str, *paths: str) -> None:
        """Commit with the project's pre-commit hooks, as a person does."""
        self.git("add", "--", *paths)
        self.git("commit", "--quiet", "-m", message)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def retrain(self) -> str:
        """What the training run on main does: the pipeline, tracked to the shared registry; returns its summary."""
        return self.sh("make", "all")

    def judge(self, name: str, change: str, expected: Expected | str = PASS) -> Row:
        """Push the user's branch, run ci.yml on it in the CI checkout, merge it into main if it passed."""
        branch = self.git("branch", "--show-current").strip()
        self.git("push", "--quiet", "--force", "origin", branch)
        ci = lambda *args: run(list(args), cwd=self.ci)  # noqa: E731
        ci("git", "fetch", "--quiet", "--prune", "origin")
        # A runner's checkout runs no hooks of the project.
        ci(
            "git",
            "-c",
            f"core.hooksPath={self.tmp / 'no-hooks'}",
            "checkout",
            "--quiet",
            "--force",
            "-B",
            "pull-request",
            f"origin/{branch}",
        )
        ci("git", "clean", "-ffdq")
        changed = ci("git", "diff", "--name-only", "origin/main...HEAD").split()
        skip = frozenset() if any(p.startswith(TESTED_PATHS) for p in changed) else frozenset({"Tests"})
        if skip:
            change += f" {TESTS_SKIPPED}"
        started = time.monotonic()
        done = run_ci(self.ci, self.tmp / "runner" / branch, self.expressions, skip)
        seconds = f"{time.monotonic() - started:.0f} s"
        if done.passed:
            verdict, ok = f"PASS ({seconds})", expected == PASS
        else:
            step = done.failed.split(" / ", 1)[1]
            lines = [line.strip() for line in done.output.splitlines() if line.strip()]
            at = next(
                (i for i, line in enumerate(lines) if isinstance(expected, Expected) and expected.phrase in line), -1
            )
            if at < 0:
                at = next((i for i in reversed(range(len(lines))) if not lines[i].startswith("make:")), 0)
            reason = lines[at] if lines else ""
            if reason.endswith(":") and at + 1 < len(lines):  # the message goes on with what failed
                reason += " " + lines[at + 1]
            verdict = f"FAIL at {step}: {reason[:240]} ({seconds})"
            ok = isinstance(expected, Expected) and step == expected.step and expected.phrase in done.output
            if not ok:
                verdict += f"\n{done.output}"
        row = Row(name, change, verdict, str(expected), ok)
        self.rows.append(row)
        print(f"{name}: {verdict.splitlines()[0]}", file=sys.stderr, flush=True)
        if done.passed and ok:
            self.switch("main")
            self.git("merge", "--quiet", "--ff-only", branch)
            self.git("push", "--quiet", "origin", "main")
        self.switch("main")
        return row

    def pin(self, env: str) -> dict:
        return yaml.safe_load((self.user / f"deploy/overlays/{env}/model.yaml").read_text())

    def pin_path(self, env: str) -> str:
        return f"deploy/overlays/{env}/model.yaml"


def append_customers(lifecycle: Lifecycle, path: Path, rows: int, seed: int, first_id: int, where: str = "") -> None:
    """Append `rows` labelled customers from the project's data generator; `where` keeps only matching rows."""
    script = (
        "import csv, random, sys\n"
        "from mlops_runtime.sample_data import COLUMNS, make_row\n"
        "path, where = sys.argv[1], sys.argv[5]\n"
        "rows, seed, first = (int(value) for value in sys.argv[2:5])\n"
        "rng, kept, index = random.Random(seed), [], first\n"
        "while len(kept) < rows:\n"
        "    row, index = make_row(rng, index), index + 1\n"
        "    if not where or eval(where, {}, dict(row)):\n"
        "        kept.append(row)\n"
        "with open(path, 'a', newline='', encoding='utf-8') as handle:\n"
        "    csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator='\\n').writerows(kept)\n"
    )
    lifecycle.python("-c", script, str(path), str(rows), str(seed), str(first_id), where)


def test_lifecycle_as_pull_requests(tmp_path: Path, dispatch_endpoint: tuple[str, list[dict]]) -> None:
    """Every lifecycle change passes CI and merges; every bad pin or stale file fails at its step, with its reason."""
    life = Lifecycle(tmp_path)
    pkg, raw = life.package, "data/raw/customers.csv"

    def edit(path: str, old: str, new: str) -> None:
        text = (life.user / path).read_text()
        assert old in text, f"{path} has no {old!r}"
        (life.user / path).write_text(text.replace(old, new, 1))

    # New data: more customers in the DVC-tracked folder; only the pointer goes to git.
    life.branch("new-data")
    append_customers(life, life.user / raw, rows=1000, seed=5, first_id=100_000)
    life.sh(".venv/bin/dvc", "add", "data/raw")
    life.sh(".venv/bin/dvc", "push", "data/raw.dvc")
    life.commit("Add 1000 customers", "data/raw.dvc")
    life.judge("new data", "1000 more customers: `dvc add data/raw`, `dvc push`, data/raw.dvc changes")

    # New params: another search space.
    life.branch("new-params")
    edit("params.yaml", "max_depth: [3, 6]", "max_depth: [3, 4]")
    life.commit("Search shallower trees", "params.yaml")
    life.judge("new params", "params.yaml: train.search.space.max_depth [3, 6] -> [3, 4]")

    # A code change: the numeric imputation of the feature pipeline.
    life.branch("code-change")
    featurize = f"src/{pkg}/stages/featurize.py"
    edit(featurize, 'SimpleImputer(strategy="median")', 'SimpleImputer(strategy="mean")')
    life.commit("Impute numeric columns with the mean", featurize)
    life.judge("code change", f"{featurize}: numeric imputation median -> mean")

    # The retraining result: main trained (registered in the shared registry), its outputs committed.
    trained_at = life.head()
    summary = life.retrain()
    line = next(line for line in summary.splitlines() if "commit these" in line)
    life.branch("retraining-result")
    life.sh("bash", "-c", line.split("commit these", 1)[1].strip())
    life.git("commit", "--quiet", "-m", "Retraining result: dvc.lock, metrics, reports, rendered workflow")
    life.judge(
        "retraining result",
        f"`make all` on main {trained_at[:7]} registered version 1; dvc.lock, reports/, models/model_info.json, "
        "pipelines/training.yaml committed",
    )

    # Promotion to dev, as train.yml's promote-dev job does it: by the commit that trained the model.
    for env, how in (("dev", ["--commit", trained_at]), ("staging", ["--version", "1"]), ("prod", ["--version", "1"])):
        life.branch(f"promote-{env}")
        life.cli("promote", "--env", env, *how, "--body", str(tmp_path / f"pr-{env}.md"))
        life.commit(f"Promote model version 1 to {env}", life.pin_path(env))
        shown = " ".join(arg[:7] if len(arg) == 40 else arg for arg in how)
        life.judge(f"promotion to {env}", f"`{pkg} promote --env {env} {shown}`: {life.pin_path(env)}")
        life.cli("promote", "--sync")  # sync-aliases.yml after the merge: champion-<env> follows the pin
    assert life.pin("prod")["spec"]["version"] == "1"

    # Drift: production data shifted to fiber customers in the north; the check sends the breach to GitHub.
    url, received = dispatch_endpoint
    current = tmp_path / "current.csv"
    shutil.copy(life.user / raw, current)
    current.write_text(current.read_text().splitlines()[0] + "\n")
    shifted = "internet_service == 'fiber' and region == 'north'"
    append_customers(life, current, rows=1500, seed=23, first_id=200_000, where=shifted)
    drift = subprocess.run(
        [str(life.user / ".venv/bin/python"), "-m", pkg, "monitor", "drift", "--reference", "champion-prod"]
        + ["--current", str(current), "--out", str(tmp_path / "drift"), "--dispatch"],
        cwd=life.user,
        capture_output=True,
        text=True,
        env={**os.environ, **life.user_env, "GITHUB_API_URL": url, "GITHUB_TOKEN": "token"}
        | {"GITHUB_REPOSITORY": "your-org/customer-churn"},
    )
    assert drift.returncode != 0 and "sent drift-detected" in drift.stdout + drift.stderr, drift.stderr
    [sent] = received
    assert sent["path"] == "/repos/your-org/customer-churn/dispatches"
    assert sent["payload"]["event_type"] == "drift-detected"
    drifted = sent["payload"]["client_payload"]["drifted"]
    assert {"internet_service", "region"} <= set(drifted), drifted
    # drift-response.yml opens an issue proposing: add the recent labelled data under data/raw and
    # commit its DVC pointer in a pull request. That pull request:
    proposal = (life.user / ".github/workflows/drift-response.yml").read_text()
    assert "update the data under `data/raw` and commit its DVC pointer" in proposal
    life.branch("drift-response")
    append_customers(life, life.user / raw, rows=1500, seed=23, first_id=200_000, where=shifted)
    life.sh(".venv/bin/dvc", "add", "data/raw")
    life.sh(".venv/bin/dvc", "push", "data/raw.dvc")
    life.commit("Retrain on the drifted data: add 1500 labelled recent customers", "data/raw.dvc")
    life.judge(
        "drift response",
        f"`monitor drift --dispatch` breached ({', '.join(drifted)} drifted); the proposed retraining: the 1500 "
        "labelled recent rows added to data/raw, data/raw.dvc changes",
    )

    trained_at = life.head()
    summary = life.retrain()
    line = next(line for line in summary.splitlines() if "commit these" in line)
    life.branch("retraining-result-2")
    life.sh("bash", "-c", line.split("commit these", 1)[1].strip())
    life.git("commit", "--quiet", "-m", "Retraining result on the drifted data")
    life.judge("retraining result", f"`make all` on main {trained_at[:7]} registered version 2; outputs committed")

    life.branch("promote-dev-2")
    life.cli("promote", "--env", "dev", "--commit", trained_at, "--body", str(tmp_path / "pr-dev-2.md"))
    life.commit("Promote model version 2 to dev", life.pin_path("dev"))
    life.judge("promotion to dev", f"`{pkg} promote --env dev --commit {trained_at[:7]}`: version 2")
    life.cli("promote", "--sync")

    # Prod pinned to version 2, which never ran in staging: dev's pin copied by hand.
    life.branch("prod-skips-staging")
    (life.user / life.pin_path("prod")).write_text((life.user / life.pin_path("dev")).read_text())
    life.commit("Pin version 2 in prod", life.pin_path("prod"))
    life.judge(
        "prod skips staging",
        "dev's pin (version 2) copied into deploy/overlays/prod/model.yaml",
        Expected(GATES, "version 2 is not pinned in staging"),
    )

    # Rollback of dev to version 1, with the reason in the pin and the pull request.
    life.branch("rollback-dev")
    reason = "version 2 mislabels the new fiber customers in review"
    life.cli("promote", "--env", "dev", "--version", "1", "--allow-worse", "--reason", reason)
    life.commit("Roll dev back to model version 1", life.pin_path("dev"))
    assert life.pin("dev")["metadata"]["annotations"]["model.mlops/allow-worse-reason"] == reason
    life.judge("rollback", f"`{pkg} promote --env dev --version 1 --allow-worse --reason '{reason}'`")
    life.cli("promote", "--sync")

    # A pin edited by hand to a version the registry does not have.
    life.branch("pin-missing-version")
    edit(life.pin_path("staging"), 'version: "1"', 'version: "99"')
    life.commit("Pin version 99 in staging", life.pin_path("staging"))
    life.judge(
        "pin to a missing version",
        'deploy/overlays/staging/model.yaml hand-edited: version "1" -> "99"',
        Expected(GATES, "version 99 is not in the MLflow registry"),
    )

    # The rendered workflow edited instead of its module.
    life.branch("stale-yaml")
    edit("pipelines/training.yaml", "limit: 3", "limit: 5")
    life.commit("More retries", "pipelines/training.yaml")
    life.judge(
        "stale rendered YAML",
        "pipelines/training.yaml hand-edited (retry limit 3 -> 5), pipelines/training.py unchanged",
        Expected(RENDER, "diff --git a/pipelines/training.yaml"),
    )

    # An experiment registered from a branch with its own, lower bar (not a pull request itself).
    life.branch("experiment")
    lowered = {"f1: {min: 0.55}": "f1: {min: 0.1}", "accuracy: {min: 0.7}": "accuracy: {min: 0.6}"}
    for old, new in {**lowered, "decision_threshold: 0.5": "decision_threshold: 0.8"}.items():
        edit("params.yaml", old, new)
    edit("params.yaml", "max_depth: [3, 4]", "max_depth: [2]")
    life.commit("Experiment: a stricter decision threshold, judged by a lower bar", "params.yaml")
    life.sh("make", "pipeline")
    registered = life.cli("register")
    assert "version 3" in registered, registered
    life.cli("promote", "--env", "dev", "--version", "3", "--allow-worse", "--reason", "try the experiment in dev")
    experiment_pin = (life.user / life.pin_path("dev")).read_text()
    life.git("checkout", "--quiet", "--", "dvc.lock", "reports", "models/model_info.json", life.pin_path("dev"))

    life.branch("criteria-with-pin")
    for old, new in lowered.items():
        edit("params.yaml", old, new)
    (life.user / life.pin_path("dev")).write_text(experiment_pin)
    life.commit("Pin the experiment in dev, with its bar", "params.yaml", life.pin_path("dev"))
    life.judge(
        "criteria lowered with a pin",
        "params.yaml lowers evaluate.success_criteria (f1 0.55 -> 0.1, accuracy 0.7 -> 0.6) and pins the "
        "experiment's version 3 in dev, in one PR",
        Expected(GATES, "edits the promotion rules in params.yaml"),
    )
    life.branch("pin-fails-criteria")
    (life.user / life.pin_path("dev")).write_text(experiment_pin)
    life.commit("Pin version 3 in dev", life.pin_path("dev"))
    life.judge(
        "pin fails the criteria",
        "dev pinned to version 3 (registered under the experiment's f1 >= 0.1 at threshold 0.8); main requires "
        "f1 >= 0.55",
        Expected(GATES, "version 3 fails the success criteria in params.yaml"),
    )

    # A model built to be unfair: an experiment that trains with every western customer labelled as staying,
    # registered under its own rules (no fairness bounds), then pinned in dev by a pull request.
    life.branch("unfair-experiment")
    edit(
        featurize,
        'write_table(train.reset_index(drop=True), params.path("train"))',
        "label = params.data.label\n"
        '    unfair = train.assign(**{label: train[label] * (train["region"] != "west")})\n'
        '    write_table(unfair.reset_index(drop=True), params.path("train"))',
    )
    text = (life.user / "params.yaml").read_text()
    start, end = text.index("  fairness:\n"), text.index("\nregister:")
    (life.user / "params.yaml").write_text(text[:start] + "  fairness: []\n" + text[end:])
    life.commit("Experiment: western customers labelled as staying, no fairness bounds", featurize, "params.yaml")
    life.sh("make", "pipeline")
    registered = life.cli("register")
    assert "version 4" in registered, registered
    life.cli("promote", "--env", "dev", "--version", "4", "--allow-worse", "--reason", "try the experiment in dev")
    unfair_pin = (life.user / life.pin_path("dev")).read_text()
    life.git("checkout", "--quiet", "--", "dvc.lock", "reports", "models/model_info.json", life.pin_path("dev"))
    life.branch("pin-fails-fairness")
    (life.user / life.pin_path("dev")).write_text(unfair_pin)
    life.commit("Pin version 4 in dev", life.pin_path("dev"))
    life.judge(
        "pin fails a fairness bound",
        "dev pinned to version 4, trained with every western customer labelled as staying and registered with no "
        "fairness bounds; main bounds the recall gap across regions (evaluate.fairness)",
        Expected(GATES, "recall differs by"),
    )

    # A template update: a newer template release with a change, by `copier update` as template-update.yml runs it.
    clone = life.template.path
    newer = Version(life.template.newest.removeprefix("v")).release
    tag = f"v{newer[0]}.{newer[1]}.{newer[2] + 1}"
    page = clone / "template/docs/promotion.md.jinja"
    page.write_text(
        page.read_text() + "\nA pin file is YAML that `promote` writes; review its diff, never edit it by hand.\n"
    )
    run(["git", "commit", "--quiet", "--no-verify", "-am", "Runbook: review pins, never edit them"], cwd=clone)
    run(["git", "tag", tag], cwd=clone)
    life.branch("template-update")
    life.sh(sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--conflict", "inline")
    answers = yaml.safe_load((life.user / ".copier-answers.yml").read_text())
    assert answers["_commit"] == tag, answers
    life.git("add", "--all")
    life.git("commit", "--quiet", "-m", f"Update from the template to {tag}")
    changed = life.git("diff", "--name-only", "main...HEAD").split()
    life.judge(
        "template update",
        f"`copier update` {life.template.newest} -> {tag}: {', '.join(changed)}",
    )

    report = table(life.rows)
    out = Path(__file__).resolve().parents[1] / "build" / "scenarios.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report + "\n")
    print("\n" + report)
    assert all(row.ok for row in life.rows), "a transition's CI verdict differs from the expected one:\n" + report
