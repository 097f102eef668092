"""Promote: pin a registered model version in one environment, behind the gates, and write the PR body.

Git is the source of truth for which model runs where (deploy/overlays/<env>/model.yaml); the
MLflow aliases `champion-<env>` follow the pins after merge (`sync`), never the other way round.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import PARAMS_FILE, Bound, Params, load_params
from .errors import (
    CriteriaNotMet,
    NotInRegistry,
    ParamsError,
    PinMismatch,
    RulesChanged,
    SkipsEnvironment,
    WorseThanChampion,
)
from .files import read_json
from .lineage import UNKNOWN, is_commit_id
from .pin import ANNOTATION_PREFIX, REASON_KEY, Pin, parse_pin, pin_path, pinned_image, read_pin

CHAMPION_ALIAS = "champion-{env}"
# Lineage a pin must agree on with the registry; the template version is the project's, not the model's.
CHECKED_LINEAGE = ("git-commit", "mlflow-run", "dvc-data-hash")
PLOTS = {"confusion matrix": "evaluation/confusion.csv", "ROC curve": "evaluation/roc.csv"}
POLL_SECONDS = 30


@dataclass(frozen=True)
class Version:
    """A registered model version and what its registration recorded."""

    model: str
    number: str
    run_id: str
    storage_uri: str
    tags: dict[str, str]
    evaluation: dict[str, float]

    def lineage(self, template_version: str) -> dict[str, str]:
        return {
            "git-commit": self.tags.get("git_commit", UNKNOWN),
            "mlflow-run": self.run_id,
            "dvc-data-hash": self.tags.get("dvc_data_hash", UNKNOWN),
            "template-version": template_version,
        }


@dataclass
class Registry:
    """The MLflow client and where it points, for messages."""

    client: Any
    uri: str

    def version(self, model: str, number: str, role: str = "") -> Version:
        """The registered version; NotInRegistry naming the model, version and registry when it is absent."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(model, number)
            storage_uri = self.client.get_model_version_download_uri(model, number)
        except MlflowException as exc:
            from .tracking import lost

            if unanswered := lost(exc):
                raise unanswered from None
            what = f"{role} " if role else ""
            raise NotInRegistry(
                f"{what}{model} version {number} is not in the MLflow registry at {self.uri}: "
                "check the number (the register stage prints it), and MLFLOW_TRACKING_URI"
            ) from None
        tags = dict(found.tags or {})
        try:
            evaluation = json.loads(tags.get("evaluation", "{}"))
        except json.JSONDecodeError:
            evaluation = {}
        return Version(model, str(found.version), found.run_id or "", storage_uri, tags, evaluation)

    def version_for_commit(self, model: str, commit: str, wait: int) -> str:
        """The newest version registered from `commit`, polling up to `wait` seconds while training runs."""
        deadline = time.monotonic() + wait
        while True:
            found = [
                v
                for v in self.client.search_model_versions(f"name = '{model}'")
                if (v.tags or {}).get("git_commit") == commit
            ]
            if found:
                return str(max(int(v.version) for v in found))
            if time.monotonic() >= deadline:
                raise NotInRegistry(
                    f"no version of {model} registered from commit {commit} in {self.uri} "
                    f"(waited {wait} s): its training run failed or missed the success criteria; see its workflow"
                )
            time.sleep(POLL_SECONDS)

    def plot_links(self, run_id: str) -> list[str]:
        """Where the evaluation plots of a run are: the MLflow UI for a server, artifact URIs otherwise."""
        links = [f"- {title}: `runs:/{run_id}/{path}`" for title, path in PLOTS.items()]
        if self.uri.startswith(("http://", "https://")):
            experiment = self.client.get_run(run_id).info.experiment_id
            page = f"{self.uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}/artifacts"
            links.insert(0, f"- [run artifacts in MLflow]({page})")
        return links


def open_registry(params: Params) -> Registry:
    from mlflow import MlflowClient

    from .tracking import connect

    return Registry(MlflowClient(), connect(params))


@functools.lru_cache(maxsize=8)
def recorded_slices(run_id: str) -> list[dict[str, Any]] | None:
    """The slice report the evaluate stage logged with the run, or None when it has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # A progress bar per small JSON file would bury the command's own message.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="evaluation/slices.json", dst_path=folder
            )
            return json.loads(Path(local).read_text(encoding="utf-8"))
        except (MlflowException, OSError, json.JSONDecodeError):
            return None


def template_version(params: Params) -> str:
    """The template commit this project was generated or last updated from (.copier-answers.yml)."""
    try:
        answers = yaml.safe_load((params.root / ".copier-answers.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return UNKNOWN
    return str(answers.get("_commit") or UNKNOWN)


# Gates ------------------------------------------------------------------------


def compare_metric(params: Params) -> tuple[str, bool]:
    """The criterion champion and challenger are compared on, and whether higher is better."""
    criteria = params.evaluate.success_criteria
    name = params.deploy.compare_on or next(iter(criteria))
    if name not in criteria:
        raise ParamsError(
            f"deploy.compare_on '{name}' is not one of evaluate.success_criteria ({', '.join(criteria)}): name one"
        )
    bound = criteria[name]
    return name, not (bound.max is not None and bound.min is None)


def criteria_failures(params: Params, version: Version) -> list[str]:
    """Why the version's recorded evaluation fails today's success criteria (params.yaml); empty when it passes."""
    from .evaluate import gate

    missing = [name for name in params.evaluate.success_criteria if name not in version.evaluation]
    if missing:
        return [f"no recorded {name} in the version's 'evaluation' tag (register it with the register stage)"
                for name in missing]  # fmt: skip
    return gate(version.evaluation, recorded_slices(version.run_id) or [], params)


def check_criteria(params: Params, version: Version) -> None:
    failures = criteria_failures(params, version)
    if failures:
        raise CriteriaNotMet(
            f"{version.model} version {version.number} fails the success criteria in params.yaml:\n  "
            + "\n  ".join(failures)
        )


def check_order(params: Params, env: str, number: str, previous: Pin | None) -> str:
    """The order gate: a version reaches an environment only after the one before it."""
    environments = params.deploy.environments
    index = environments.index(env)
    if index == 0:
        return "first environment"
    before = environments[index - 1]
    pinned = previous.version if previous else ""
    if pinned != number:
        raise SkipsEnvironment(
            f"version {number} is not pinned in {before} (it runs {pinned or 'nothing'}): promote it to {before} "
            f"first; a version moves {' -> '.join(environments)}"
        )
    return f"pinned in {before}"


def check_not_worse(params: Params, env: str, challenger: Version, champion: Version | None, reason: str) -> str:
    """The champion gate; a reason (`--allow-worse --reason`) lets a deliberate rollback through."""
    if champion is None:
        return f"no champion in {env} yet"
    name, higher = compare_metric(params)
    new, old = challenger.evaluation.get(name), champion.evaluation.get(name)
    if old is None or new is None:
        return f"champion version {champion.number} recorded no {name}: not compared"
    worse = new < old if higher else new > old
    verdict = f"{name} {new:.4f} vs {old:.4f} of champion version {champion.number}"
    if not worse:
        return verdict
    if reason:
        return f"{verdict}: worse, allowed ({reason})"
    direction = "higher" if higher else "lower"
    raise WorseThanChampion(
        f"version {challenger.number} is worse than the champion of {env} on {name} ({direction} is better): "
        f"{new:.4f} vs {old:.4f} of version {champion.number}. For a deliberate rollback pass "
        "--allow-worse --reason TEXT"
    )


def champion_of(registry: Registry, pin: Pin, number: str, reason: str) -> Version | None:
    """The version the challenger replaces; None when nothing (or the same version) is pinned."""
    if not pin.version or pin.version == number:
        return None
    try:
        return registry.version(pin.model, pin.version, role="the champion,")
    except NotInRegistry as exc:
        if reason:
            return None
        raise NotInRegistry(
            f"{exc}; it is pinned in {pin.path}, so the challenger cannot be compared with it. "
            "Pass --allow-worse --reason TEXT to replace it without a comparison"
        ) from None


def gates(
    params: Params, env: str, challenger: Version, champion: Version | None, previous: Pin | None, reason: str
) -> list[tuple[str, str]]:
    """Every promotion gate in turn; the first refusal raises. Returns (gate, result) rows for the PR body."""
    check_criteria(params, challenger)
    order = check_order(params, env, challenger.number, previous)
    name, _ = compare_metric(params)
    against = check_not_worse(params, env, challenger, champion, reason)
    return [
        ("in the registry", f"version {challenger.number}, run `{challenger.run_id}`"),
        ("success criteria (params.yaml)", "met: " + ", ".join(params.evaluate.success_criteria)),
        (f"order {' → '.join(params.deploy.environments)}", order),
        (f"not worse than the champion on {name}", against),
    ]


# The pin file -------------------------------------------------------------------


def image_for(params: Params, version: Version, lineage: dict[str, str]) -> str:
    """The image that serves `version`; refused when the version records no commit, so no image can match it."""
    commit = lineage["git-commit"]
    if not is_commit_id(commit):
        raise PinMismatch(
            f"{version.model} version {version.number} records no git commit ({commit!r}), so no image is built "
            "for it: register models trained from a commit (make all in a git checkout, or the training workflow)"
        )
    return pinned_image(params, commit)


def pinned_text(text: str, version: Version, lineage: dict[str, str], reason: str, image: str) -> str:
    """The pin's YAML with `version` and its `image` pinned, serving on; comments and layout kept (ruamel)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString as Quoted

    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096
    round_trip.indent(mapping=2, sequence=4, offset=2)
    doc = round_trip.load(text)
    spec = doc["spec"]
    # Quoted: kustomize copies the values as strings, and "3" must not become the number 3.
    spec["version"] = Quoted(version.number)
    spec["storageUri"] = Quoted(version.storage_uri)
    spec["image"] = Quoted(image)
    if "suspendDrift" in spec:
        spec["suspendDrift"] = False
    if "stopped" in spec:
        spec["stopped"] = Quoted("false")
    elif not (str(spec.get("replicas", 0)).isdigit() and int(spec.get("replicas", 0)) > 0):
        spec["replicas"] = 1
    metadata = doc.setdefault("metadata", {})
    if metadata.get("annotations") is None:
        metadata["annotations"] = {}
    annotations = metadata["annotations"]
    for key, value in lineage.items():
        annotations[ANNOTATION_PREFIX + key] = Quoted(value)
    if reason:
        annotations[ANNOTATION_PREFIX + REASON_KEY] = Quoted(reason)
    else:
        annotations.pop(ANNOTATION_PREFIX + REASON_KEY, None)
    out = io.StringIO()
    round_trip.dump(doc, out)
    return out.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so that a failure leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# The pull request body ------------------------------------------------------------


def _bound(bound: Bound | None) -> str:
    if bound is None:
        return ""
    parts = [f">= {bound.min:g}" if bound.min is not None else "", f"<= {bound.max:g}" if bound.max is not None else ""]
    return ", ".join(p for p in parts if p)


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
    names = [n for n in params.evaluate.success_criteria if any(n in s for s in slices)]
    lines = [
        "| slice | value | rows | positive rate | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for row in slices:
        cells = [row["slice"], row["value"], str(row["rows"]), _number(row.get("positive_rate"))]
        lines.append("| " + " | ".join(cells + [_number(row.get(n)) for n in names]) + " |")
    gap = params.evaluate.max_slice_gap
    if gap:
        lines.append(
            f"\nThe gate bounds the gap of {gap.metric} between slices of at least "
            f"{params.evaluate.min_slice_size} rows at {gap.max:g} (evaluate.max_slice_gap)."
        )
    return "\n".join(lines)


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
        "### Lineage",
        "",
        "| | |",
        "|---|---|",
        f"| git commit | `{lineage['git-commit']}` (uncommitted changes: {tags.get('git_dirty', UNKNOWN)}) |",
        f"| MLflow run | `{lineage['mlflow-run']}` |",
        f"| data | `{tags.get('data_source', UNKNOWN)}`, DVC hash `{lineage['dvc-data-hash']}` |",
        f"| estimator | `{tags.get('estimator', UNKNOWN)}` |",
        f"| template version | `{lineage['template-version']}` |",
        f"| storage URI | `{challenger.storage_uri}` |",
        "",
        "### Plots",
        "",
        *registry.plot_links(challenger.run_id),
        "",
    ]  # fmt: skip
    return "\n".join(parts)


# Commands ------------------------------------------------------------------------


def _check_env(params: Params, env: str | None) -> str:
    if not env or env not in params.deploy.environments:
        raise ParamsError(
            f"--env '{env or ''}' is not an environment: use one of {', '.join(params.deploy.environments)}"
        )
    return env


def _previous(params: Params, env: str, read: Callable[[str], Pin | None]) -> Pin | None:
    index = params.deploy.environments.index(env)
    return read(params.deploy.environments[index - 1]) if index else None


def promote(
    params: Params,
    env: str | None,
    version: str | None = None,
    commit: str | None = None,
    wait: int = 0,
    reason: str = "",
    body: Path | None = None,
) -> str:
    """Pin a version in `env` if every gate passes: only the pin file changes, and the PR body is written."""
    env = _check_env(params, env)
    if version is not None and not re.fullmatch(r"[1-9][0-9]*", version):
        raise ParamsError(f"--version '{version}' is not a registry version number: write a number such as 3")
    if commit is not None and not is_commit_id(commit):
        raise ParamsError(f"--commit '{commit}' is not a git commit: give its hexadecimal id (git rev-parse HEAD)")
    current = read_pin(params, env)
    previous = _previous(params, env, lambda name: read_pin(params, name))
    registry = open_registry(params)
    number = version or registry.version_for_commit(current.model, str(commit), wait)
    challenger = registry.version(current.model, number)
    champion = champion_of(registry, current, number, reason)
    rows = gates(params, env, challenger, champion, previous, reason)
    lineage = challenger.lineage(template_version(params))
    old_text = current.path.read_text(encoding="utf-8")
    new_text = pinned_text(old_text, challenger, lineage, reason, image_for(params, challenger, lineage))
    text = pr_body(params, registry, env, challenger, champion, rows, lineage, reason)
    if body:
        write_atomic(body, text)
    if new_text == old_text:
        summary = f"{challenger.model} version {number} is already pinned in {env}: {current.path} unchanged"
    else:
        write_atomic(current.path, new_text)
        summary = f"pinned {challenger.model} version {number} in {env}: {current.path}"
    return summary + (f"\npull request body -> {body}" if body else "\n\n" + text)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def pin_at(params: Params, ref: str, env: str) -> Pin | None:
    """The pin of `env` in git at `ref`; None when that commit has no such file (a new environment)."""
    relative = pin_path(params, env).relative_to(params.root).as_posix()
    shown = _git(params.root, "show", f"{ref}:{relative}")
    return parse_pin(params, shown.stdout, f"{ref}:{relative}") if shown.returncode == 0 else None


def _state(pin: Pin | None) -> tuple[Any, ...] | None:
    return (
        None
        if pin is None
        else (pin.model, pin.version, pin.storage_uri, pin.lineage, pin.serving, pin.reason, pin.image)
    )


def check_pin(params: Params, registry: Registry, env: str, head: Pin, base_pin: Pin | None, base: str) -> str:
    """The gates on one changed pin, as CI sees it: the pin in the PR against the base branch."""
    if not head.version:
        if head.serving or head.storage_uri or head.image:
            raise PinMismatch(
                f"{head.path}: version is none, so storageUri and image must be none and serving off (stopped/replicas)"
            )
        return f"{env}: unpinned, serving stops"
    challenger = registry.version(head.model, head.version)
    expected = challenger.lineage(UNKNOWN)
    wrong = [f"storageUri is {head.storage_uri!r}, the registry has {challenger.storage_uri!r}"] * (
        head.storage_uri != challenger.storage_uri
    )
    wrong += [
        f"{ANNOTATION_PREFIX}{key} is {head.lineage[key]!r}, the registry has {expected[key]!r}"
        for key in CHECKED_LINEAGE
        if head.lineage[key] != expected[key]
    ]
    wrong += ['serving is off (stopped "true" or replicas 0) while a version is pinned'] * (not head.serving)
    image = pinned_image(params, expected["git-commit"])
    wrong += [f"image is {head.image!r}, the version was trained at {image!r}"] * (head.image != image)
    if wrong:
        raise PinMismatch(
            f"{head.path} does not match {head.model} version {head.version} in the registry:\n  "
            + "\n  ".join(wrong)
            + f"\nwrite pins with `python -m {__package__} promote --env {env} --version {head.version}`"
        )
    if base_pin is not None and base_pin.version == head.version:
        return f"{env}: version {head.version} unchanged, pin consistent with the registry"
    # A reason counts only when this change writes it: an old one left in the file allows nothing.
    reason = head.reason if head.reason and (base_pin is None or head.reason != base_pin.reason) else ""
    champion_pin = base_pin if base_pin is not None else head
    champion = champion_of(registry, champion_pin, head.version, reason)
    previous = _previous(params, env, lambda name: pin_at(params, base, name))
    gates(params, env, challenger, champion, previous, reason)
    return f"{env}: version {head.version} passes every promotion gate"


# The promotion rules: what a pull request is judged by, so it must not change them itself.
RULES = {
    "evaluate.success_criteria": lambda p: p.evaluate.success_criteria,
    "deploy.environments": lambda p: p.deploy.environments,
    "deploy.compare_on": lambda p: p.deploy.compare_on,
    "deploy.overlays": lambda p: p.deploy.overlays,
}


def rules_at(params: Params, base: str) -> Params:
    """`params` judged by the base branch: success criteria, environments and their order as `base` has them."""
    relative = PARAMS_FILE
    shown = _git(params.root, "show", f"{base}:./{relative}")
    if shown.returncode != 0:
        raise ParamsError(f"{base} has no {relative}: pass --base the branch the pull request merges into")
    with tempfile.TemporaryDirectory(prefix="base-params-") as tmp:
        path = Path(tmp) / relative
        path.write_text(shown.stdout, encoding="utf-8")
        try:
            ruled = load_params(path)
        except ParamsError as exc:
            raise ParamsError(f"{base}:{relative} does not load, so the gates have no rules: {exc}") from None
    return params.model_copy(update={"evaluate": ruled.evaluate, "deploy": ruled.deploy})


def changed_pin_files(params: Params, base: str) -> list[str]:
    """Environments whose model.yaml differs from `base` in any way, including overlays `base` does not list."""
    overlays = params.deploy.overlays.as_posix()
    names = _git(params.root, "diff", "--name-only", base, "--", overlays).stdout.split()
    pins = [Path(name) for name in names if Path(name).name == "model.yaml"]
    return sorted({pin.parent.name for pin in pins if pin.parent.parent.as_posix() == overlays})


def check(params: Params, base: str, body: Path | None = None) -> str:
    """Every pin file changed against `base` passes the same gates as `promote` (CI on pull requests).

    The gates take their rules (criteria, environments and their order, the champion)
    from `base`: a pull request that changes the rules and a pin at once is refused.
    """
    if _git(params.root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").returncode != 0:
        raise ParamsError(
            f"base '{base}' is not a commit here: fetch it (actions/checkout with fetch-depth: 0) or pass --base REF"
        )
    rules = rules_at(params, base)
    environments = rules.deploy.environments
    unknown = [env for env in changed_pin_files(rules, base) if env not in environments]
    if unknown:
        raise RulesChanged(
            f"{', '.join(unknown)}: not an environment on {base} ({', '.join(environments)}); add an environment "
            "to deploy.environments in a pull request of its own, then pin a model in it"
        )
    changed = [
        (env, head, base_pin)
        for env in environments
        if _state(head := read_pin(rules, env)) != _state(base_pin := pin_at(rules, base, env))
    ]
    if not changed:
        return f"no pin file changed against {base}"
    edited = [name for name, rule in RULES.items() if rule(params) != rule(rules)]
    if edited:
        raise RulesChanged(
            f"this change edits the promotion rules in {PARAMS_FILE} ({', '.join(edited)}) and pins a model in "
            f"{', '.join(env for env, _, _ in changed)}: split it, the rule change first in a pull request of its "
            "own (reviewed by the code owners of params.yaml), then the promotion, judged by the merged rules"
        )
    params = rules
    registry = open_registry(params)
    lines = [check_pin(params, registry, env, head, base_pin, base) for env, head, base_pin in changed]
    if body:
        write_atomic(body, "\n".join(f"- {line}" for line in lines) + "\n")
    return "\n".join(lines)


def sync(params: Params) -> str:
    """MLflow aliases champion-<env> follow the pins in git: set on the pinned version, removed when unpinned."""
    from mlflow.exceptions import MlflowException

    pins = {env: read_pin(params, env) for env in params.deploy.environments}
    registry = open_registry(params)
    # Every pinned version must exist before any alias moves: all aliases change, or none.
    for pin in pins.values():
        if pin.version:
            registry.version(pin.model, pin.version)
    lines = []
    for env, pin in pins.items():
        alias = CHAMPION_ALIAS.format(env=env)
        if pin.version:
            registry.client.set_registered_model_alias(pin.model, alias, pin.version)
            lines.append(f"{alias} -> {pin.model} version {pin.version}")
            continue
        try:
            registry.client.get_model_version_by_alias(pin.model, alias)
        except MlflowException:
            lines.append(f"{alias}: not set (nothing pinned in {env})")
            continue
        registry.client.delete_registered_model_alias(pin.model, alias)
        lines.append(f"{alias} removed (nothing pinned in {env})")
    return "\n".join(lines)


def diff(params: Params, env: str | None) -> str:
    """Markdown: this workspace's evaluation (reports/) against the model pinned in `env`."""
    env = _check_env(params, env)
    metrics = read_json(params.path("metrics"), "evaluate")
    gate = read_json(params.path("gate"), "evaluate")
    pin = read_pin(params, env)
    champion = open_registry(params).version(pin.model, pin.version, role=f"the model pinned in {env},") if (
        pin.version
    ) else None  # fmt: skip
    old_label = f"{env} v{champion.number}" if champion else f"{env} (nothing pinned)"
    verdict = "meets" if gate.get("passed") else "**fails**"
    parts = [
        f"### Model metrics: this change vs `{env}`",
        "",
        f"The model trained on this change {verdict} the success criteria in params.yaml"
        + ("." if gate.get("passed") else ":\n" + "\n".join(f"- {f}" for f in gate.get("failures", []))),
        "",
        metrics_table(params, metrics, champion.evaluation if champion else None, "this change", old_label),
        "",
        "<details><summary>Slices (bias report) of this change</summary>",
        "",
        slices_table(params, read_json(params.path("slices"), "evaluate")),
        "",
        "</details>",
        "",
    ]
    return "\n".join(parts)
