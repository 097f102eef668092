"""Promote: pin a registered model version in one environment, behind the gates, and write the PR body.

Git is the source of truth for which model runs where (deploy/overlays/<env>/model.yaml); the
MLflow aliases `champion-<env>` follow the pins after merge (`sync`), never the other way round.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import PARAMS_FILE, Params, env_name_problem
from ..errors import (
    ParamsError,
    PinMismatch,
    RulesChanged,
)
from ..files import read_json, write_atomic
from ..lineage import COMMIT_TAG, LINEAGE, TEMPLATE_VERSION, UNKNOWN, annotation, is_commit_id, template_version
from ..project import package
from ..registry import CHAMPION_ALIAS, Registry, open_registry
from . import served
from .gates import RULES, champion_of, check_env, gates, previous_pin, rules_at
from .manifests import build
from .pin import (
    Pin,
    git,
    image_for,
    pin_at,
    pin_state,
    pinned_image,
    pinned_text,
    read_pin,
)
from .pr_text import metrics_table, pr_body, slices_table

# Lineage a pin must agree on with the registry; the template version is the project's, not the model's.
CHECKED_LINEAGE = tuple(name for name in LINEAGE if name != TEMPLATE_VERSION)


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
    env = check_env(params, env)
    if version is not None and not re.fullmatch(r"[1-9][0-9]*", version):
        raise ParamsError(f"--version '{version}' is not a registry version number: write a number such as 3")
    if commit is not None and not is_commit_id(commit):
        raise ParamsError(f"--commit '{commit}' is not a git commit: give its hexadecimal id (git rev-parse HEAD)")
    current = read_pin(params, env)
    previous = previous_pin(params, env, lambda name: read_pin(params, name))
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
        f"{annotation(name)} is {head.lineage[name]!r}, the registry has {expected[name]!r}"
        for name in CHECKED_LINEAGE
        if head.lineage[name] != expected[name]
    ]
    wrong += ['serving is off (stopped "true" or replicas 0) while a version is pinned'] * (not head.serving)
    image = pinned_image(params, expected[COMMIT_TAG])
    wrong += [f"image is {head.image!r}, the version was trained at {image!r}"] * (head.image != image)
    if wrong:
        raise PinMismatch(
            f"{head.path} does not match {head.model} version {head.version} in the registry:\n  "
            + "\n  ".join(wrong)
            + f"\nwrite pins with `python -m {package()} promote --env {env} --version {head.version}`"
        )
    if base_pin is not None and base_pin.version == head.version:
        return f"{env}: version {head.version} unchanged, pin consistent with the registry"
    # A reason counts only when this change writes it: an old one left in the file allows nothing.
    reason = head.reason if head.reason and (base_pin is None or head.reason != base_pin.reason) else ""
    champion_pin = base_pin if base_pin is not None else head
    champion = champion_of(registry, champion_pin, head.version, reason)
    previous = previous_pin(params, env, lambda name: pin_at(params, base, name))
    gates(params, env, challenger, champion, previous, reason)
    return f"{env}: version {head.version} passes every promotion gate"


def changed_pin_files(params: Params, base: str) -> list[str]:
    """Environments whose model.yaml differs from `base` in any way, including overlays `base` does not list.

    Paths are read as git stores them (-z, unquoted), whatever their characters; an
    overlay folder whose name is no environment name is refused here, by name.
    """
    overlays = params.deploy.overlays.as_posix()
    listed = [
        git(params.root, "-c", "core.quotePath=false", *args, "--", overlays).stdout.split("\0")
        for args in (("diff", "-z", "--name-only", base), ("ls-files", "-z", "--others", "--exclude-standard"))
    ]
    pins = [Path(name) for names in listed for name in names if name and Path(name).name == "model.yaml"]
    envs = sorted({pin.parent.name for pin in pins if pin.parent.parent.as_posix() == overlays})
    wrong = [f"{overlays}/{env}/model.yaml: {problem}" for env in envs if (problem := env_name_problem(env))]
    if wrong:
        raise ParamsError("\n".join(wrong))
    return envs


def check_served(params: Params) -> list[str]:
    """Every environment's overlay, built by kustomize, serves exactly its pin: PinMismatch listing what differs."""
    overlays = params.root / params.deploy.overlays
    found = {
        env: served.problems(build(overlays / env)[0], read_pin(params, env)) for env in params.deploy.environments
    }
    wrong = [f"{params.deploy.overlays.as_posix()}/{env}: {line}" for env, lines in found.items() for line in lines]
    if wrong:
        raise PinMismatch(
            "kustomize renders something else than the pin (model.yaml) would serve:\n  "
            + "\n  ".join(wrong)
            + "\nthe model and its image change only through the pin: remove the overlay's images:/patches: (or the "
            f"base/components change) that alter them, and promote with `python -m {package()} promote`"
        )
    return [f"{env}: kustomize serves its pin" for env in found]


def check(params: Params, base: str, body: Path | None = None) -> str:
    """Every pin file changed against `base` passes the same gates as `promote` (CI on pull requests).

    The gates take their rules (criteria, environments and their order, the champion)
    from `base`: a pull request that changes the rules and a pin at once is refused.
    """
    if git(params.root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}").returncode != 0:
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
        if pin_state(head := read_pin(rules, env)) != pin_state(base_pin := pin_at(rules, base, env))
    ]
    # What Argo CD will apply, whether a pin changed or not: an overlay alone can swap the image.
    served_lines = check_served(rules)
    if not changed:
        return "\n".join([f"no pin file changed against {base}", *served_lines])
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
    lines += served_lines
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
    env = check_env(params, env)
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
