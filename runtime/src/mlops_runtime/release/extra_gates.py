"""The project's promotion hook (params.yaml `hooks.promotion`): gate criteria of its own, judged with the rest.

The hook is a function `gate(params, env, challenger, champion) -> [result, ...]`: `challenger` and `champion`
are registry Versions (number, tags, evaluation: the metrics evaluate recorded; champion None when nothing is
pinned in `env`). Each result is a mapping: `name` (text), `passed` (bool), `detail` (text). A failed result
refuses the promotion as a missed success criterion does (exit 9); every result is a row of the PR's gates.
The hook's name is one of the promotion rules: a pull request that changes it with a pin is refused.
docs/hooks.md has an example.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Params
from ..errors import CriteriaNotMet, ParamsError
from ..extensions import load_hook
from ..registry import Version

SETTING = "hooks.promotion"


def extra_gates(params: Params, env: str, challenger: Version, champion: Version | None) -> list[tuple[str, str]]:
    """(gate, result) rows of the project's gate; CriteriaNotMet naming every failed one."""
    name = params.hooks.promotion
    if not name:
        return []
    gate = load_hook(SETTING, name)
    if not callable(gate):
        raise ParamsError(f"{SETTING}: {name} is not a function taking (params, env, challenger, champion)")
    results = gate(params, env, challenger, champion)
    if isinstance(results, Mapping) or not isinstance(results, list | tuple):
        raise ParamsError(f"{SETTING}: {name} must return a list of results ({{name, passed, detail}})")
    rows, failed = [], []
    for number, result in enumerate(results, 1):
        if not isinstance(result, Mapping) or not isinstance(result.get("name"), str) or not result["name"]:
            raise ParamsError(f"{SETTING}: {name} result {number} needs a 'name' (text)")
        if not isinstance(result.get("passed"), bool):
            raise ParamsError(f"{SETTING}: {name} result {number} ({result['name']}) needs 'passed': true or false")
        detail = str(result.get("detail", ""))
        rows.append((f"{result['name']} ({SETTING})", ("passed" if result["passed"] else "failed") + f": {detail}"))
        if not result["passed"]:
            failed.append(f"{result['name']}: {detail}")
    if failed:
        raise CriteriaNotMet(
            f"{challenger.model} version {challenger.number} fails the project's promotion gate ({SETTING}: {name}) "
            f"for {env}:\n  " + "\n  ".join(failed)
        )
    return rows
