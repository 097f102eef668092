"""Promotion gates: success criteria, environment order and the champion, judged by the base branch's rules."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from ..card import problems, recorded
from ..config import PARAMS_FILE, Params, load_params
from ..errors import (
    CriteriaNotMet,
    NoModelCard,
    NotInRegistry,
    NotReproducible,
    ParamsError,
    SkipsEnvironment,
    WorseThanChampion,
)
from ..lineage import DIRTY_TAG
from ..registry import Registry, Version, recorded_slices
from .criteria import gate
from .extra_gates import extra_gates
from .pin import Pin, git


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
    missing = [name for name in params.evaluate.success_criteria if name not in version.evaluation]
    if missing:
        return [f"no recorded {name} in the version's 'evaluation' tag (register it with the register stage)"
                for name in missing]  # fmt: skip
    slices = recorded_slices(version.run_id)
    if slices is None and params.evaluate.fairness:
        return ["no slice report recorded with the version's run, so evaluate.fairness cannot be judged "
                "(evaluate and register it again)"]  # fmt: skip
    return gate(version.evaluation, slices or [], params)


def check_criteria(params: Params, version: Version) -> None:
    failures = criteria_failures(params, version)
    if failures:
        raise CriteriaNotMet(
            f"{version.model} version {version.number} fails the success criteria in params.yaml:\n  "
            + "\n  ".join(failures)
        )


def check_card(version: Version) -> str:
    """The card gate: a version is promoted with a complete model card of its own run."""
    found = recorded(version.storage_uri, version.run_id)
    if found is None:
        raise NoModelCard(
            f"{version.model} version {version.number} has no model card (model_card.json in its model folder "
            "or run): evaluate and register it with this version of the project, which writes the card"
        )
    missing = problems(found)
    if not missing and found["model"].get("run_id") not in (None, version.run_id):
        missing.append(f"it is the card of run {found['model']['run_id']}, not of the version's run {version.run_id}")
    if missing:
        raise NoModelCard(
            f"the model card of {version.model} version {version.number} is not complete:\n  " + "\n  ".join(missing)
        )
    return "complete: every written and computed section"


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


def check_reproducible(params: Params, env: str, version: Version) -> str:
    """A model trained from uncommitted changes may serve in the first environment, to try it, and no further."""
    dirty = version.tags.get(DIRTY_TAG, "unknown")
    if dirty == "false":
        return "trained from a clean commit"
    first = params.deploy.environments[0]
    if env == first:
        return f"{DIRTY_TAG} is {dirty}: allowed in {first} only"
    raise NotReproducible(
        f"{version.model} version {version.number} was trained from a work tree with uncommitted changes "
        f"({DIRTY_TAG}: {dirty}), so its commit does not reproduce it: it may serve in {first}, not in {env}. "
        "Commit the change and retrain (make all, or the training workflow), then promote the new version"
    )


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
    card_state = check_card(challenger)
    order = check_order(params, env, challenger.number, previous)
    reproducible = check_reproducible(params, env, challenger)
    name, _ = compare_metric(params)
    against = check_not_worse(params, env, challenger, champion, reason)
    project = extra_gates(params, env, challenger, champion)
    return [
        ("in the registry", f"version {challenger.number}, run `{challenger.run_id}`"),
        ("success criteria (params.yaml)", "met: " + ", ".join(params.evaluate.success_criteria)),
        (
            "fairness criteria (params.yaml)",
            "met: " + (", ".join(b.name for b in params.evaluate.fairness) or "none set"),
        ),
        ("model card", card_state),
        (f"order {' → '.join(params.deploy.environments)}", order),
        ("trained from a commit", reproducible),
        (f"not worse than the champion on {name}", against),
        *project,
    ]


def check_env(params: Params, env: str | None) -> str:
    if not env or env not in params.deploy.environments:
        raise ParamsError(
            f"--env '{env or ''}' is not an environment: use one of {', '.join(params.deploy.environments)}"
        )
    return env


def previous_pin(params: Params, env: str, read: Callable[[str], Pin | None]) -> Pin | None:
    index = params.deploy.environments.index(env)
    return read(params.deploy.environments[index - 1]) if index else None


# The promotion rules: what a pull request is judged by, so it must not change them itself.
RULES = {
    "evaluate.success_criteria": lambda p: p.evaluate.success_criteria,
    "evaluate.fairness": lambda p: p.evaluate.fairness,
    "deploy.environments": lambda p: p.deploy.environments,
    "deploy.compare_on": lambda p: p.deploy.compare_on,
    "deploy.overlays": lambda p: p.deploy.overlays,
    "register.model_name": lambda p: p.registry.model_name,
    "hooks.promotion": lambda p: p.hooks.promotion,
}


def rules_at(params: Params, base: str) -> Params:
    """`params` judged by the base branch: success criteria, environments and their order, the model's name."""
    relative = PARAMS_FILE
    shown = git(params.root, "show", f"{base}:./{relative}")
    if shown.returncode != 0:
        raise ParamsError(f"{base} has no {relative}: pass --base the branch the pull request merges into")
    with tempfile.TemporaryDirectory(prefix="base-params-") as tmp:
        path = Path(tmp) / relative
        path.write_text(shown.stdout, encoding="utf-8")
        try:
            ruled = load_params(path)
        except ParamsError as exc:
            raise ParamsError(f"{base}:{relative} does not load, so the gates have no rules: {exc}") from None
    hooks = params.hooks.model_copy(update={"promotion": ruled.hooks.promotion})
    return params.model_copy(
        update={"evaluate": ruled.evaluate, "deploy": ruled.deploy, "registry": ruled.registry, "hooks": hooks}
    )
