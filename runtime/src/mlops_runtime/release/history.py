"""Promotion history: which model version each environment's pin named, and since when, read from git.

The pins (deploy/overlays/<env>/model.yaml) are the source of truth, so their git log on the
current branch (first parent: what landed, in the order it landed) is the record of what served.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Params
from ..errors import ParamsError, RegistryOutOfSync, SubmitError
from ..project import package
from ..registry import CHAMPION_ALIAS
from .gates import check_env
from .pin import git, pin_at, pin_path, read_pin

# GitHub's merge commit ("Merge pull request #12 from owner/branch") and squash merge ("Title (#12)").
PR_SUBJECT = re.compile(r"^Merge pull request #(?P<merge>[0-9]+)\b|\(#(?P<squash>[0-9]+)\)\s*$")
# NUL between fields: no subject, name or e-mail can hold it.
LOG_FORMAT = "%H%x00%cI%x00%an%x00%ae%x00%s%x00"
LOG_FIELDS = 5


@dataclass(frozen=True)
class Change:
    """One commit that changed an environment's pin; `version` is None while nothing is pinned."""

    commit: str
    date: str  # when it landed on the branch (committer date, ISO 8601 with offset)
    author: str
    email: str
    subject: str
    pr: int | None
    model: str | None
    version: str | None


@dataclass(frozen=True)
class Unreadable:
    """A commit whose pin the strict reader refuses (or that removed the pin): named, then skipped."""

    commit: str
    date: str
    problem: str


@dataclass
class EnvHistory:
    env: str
    pin: str  # the pin file, relative to the project
    changes: list[Change] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    # Filled by `compare_registry`: the alias, the version it is on (None: not set), the pinned version.
    registry: dict[str, Any] | None = None


def pr_number(subject: str) -> int | None:
    """The pull request a commit subject names as GitHub writes it on merge or squash, else None."""
    found = PR_SUBJECT.search(subject)
    return int(found["merge"] or found["squash"]) if found else None


def parse_when(text: str) -> datetime:
    """--at: an ISO date (midnight UTC) or date and time (UTC unless an offset is given)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ParamsError(
            f"--at '{text}' is not an ISO date or datetime: write 2026-03-01 or 2026-03-01T14:30 (UTC) "
            "or 2026-03-01T14:30+02:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _log(params: Params, relative: str) -> list[list[str]]:
    """(commit, date, author, email, subject) of every first-parent commit that changed `relative`, oldest first."""
    listed = git(params.root, "log", "--first-parent", "--reverse", f"--format={LOG_FORMAT}", "--", relative)
    if listed.returncode != 0:
        raise ParamsError(
            f"cannot read the git history of {relative} ({listed.stderr.strip() or 'git failed'}): "
            "run history in a git clone of the project"
        )
    fields = listed.stdout.split("\0")
    records = [[part.strip() for part in fields[i : i + LOG_FIELDS]] for i in range(0, len(fields) - 1, LOG_FIELDS)]
    return [record for record in records if len(record) == LOG_FIELDS]


def env_history(params: Params, env: str) -> EnvHistory:
    """Every change of `env`'s pin on this branch, each read with the strict pin reader at its commit."""
    relative = pin_path(params, env).relative_to(params.root).as_posix()
    history = EnvHistory(env=env, pin=relative)
    for commit, date, author, email, subject in _log(params, relative):
        try:
            pin = pin_at(params, commit, env)
        except ParamsError as exc:
            history.unreadable.append(Unreadable(commit, date, str(exc)))
            continue
        if pin is None:
            history.unreadable.append(Unreadable(commit, date, f"{relative} was removed in this commit"))
            continue
        change = Change(commit, date, author, email, subject, pr_number(subject), pin.model, pin.version or None)
        history.changes.append(change)
    return history


def served_at(history: EnvHistory, when: datetime) -> Change | None:
    """The change in force at `when`: the last one landed at or before it, None before the first."""
    landed = [change for change in history.changes if datetime.fromisoformat(change.date) <= when]
    return landed[-1] if landed else None


def _alias_versions(params: Params, envs: list[str]) -> dict[str, str | None]:
    """The version behind champion-<env> for each env; a SQLite store that does not exist yet has no aliases."""
    from ..registry import alias_version, tracking_uri

    uri = tracking_uri(params)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        # Reading must not create an empty store (MLflow would), nor report every alias as unset.
        raise SubmitError(
            f"no MLflow registry at {uri}: set MLFLOW_TRACKING_URI (else mlflow.tracking_uri in params.yaml) "
            "to the registry the aliases live in"
        )
    found = {env: alias_version(params, CHAMPION_ALIAS.format(env=env)) for env in envs}
    return {env: (str(version.version) if version is not None else None) for env, version in found.items()}


def compare_registry(params: Params, histories: list[EnvHistory]) -> list[str]:
    """Fill each history's registry entry from the current pin and champion-<env>; the disagreements, as lines."""
    aliases = _alias_versions(params, [history.env for history in histories])
    wrong = []
    for history in histories:
        pinned = read_pin(params, history.env).version or None
        alias = CHAMPION_ALIAS.format(env=history.env)
        history.registry = {
            "alias": alias,
            "alias_version": aliases[history.env],
            "pin_version": pinned,
            "agrees": aliases[history.env] == pinned,
        }
        if aliases[history.env] != pinned:
            wrong.append(
                f"{history.env}: the pin ({history.pin}) names version {pinned or 'none'}, but the registry's alias "
                f"{alias} is on {_alias_text(aliases[history.env])}"
            )
    return wrong


def _alias_text(version: str | None) -> str:
    return f"version {version}" if version else "no version (not set)"


def _short(change: Change | Unreadable) -> str:
    return change.commit[:12]


def _table(history: EnvHistory) -> list[str]:
    lines = [f"{history.env} ({history.pin})"]
    if not history.changes and not history.unreadable:
        return [*lines, "  no commit of this pin on this branch"]
    rows = [("landed", "version", "commit", "PR", "author", "subject")]
    rows += [
        (c.date, c.version or "none", _short(c), f"#{c.pr}" if c.pr else "-", c.author, c.subject)
        for c in history.changes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines += [
        "  " + "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in rows
    ]
    lines += [f"  skipped {_short(u)} ({u.date}): {u.problem}".replace("\n", "\n    ") for u in history.unreadable]
    if history.registry is not None:
        entry = history.registry
        verdict = "agrees with the pin" if entry["agrees"] else f"DISAGREES: the pin names {entry['pin_version']}"
        lines.append(f"  registry: {entry['alias']} is on {_alias_text(entry['alias_version'])}, {verdict}")
    return lines


def _at_line(history: EnvHistory, when: datetime) -> str:
    change = served_at(history, when)
    if change is None:
        return f"{history.env}: nothing (its pin has no commit on this branch before then)"
    pr = f", PR #{change.pr}" if change.pr else ""
    return f"{history.env}: version {change.version or 'none'} (since {change.date}, commit {_short(change)}{pr})"


def as_json(histories: list[EnvHistory], when: datetime | None) -> dict[str, Any]:
    """The documented JSON shape (docs/promotion.md): stable keys, versions as strings or null."""
    environments = {}
    for history in histories:
        entry = {
            "pin": history.pin,
            "changes": [asdict(change) for change in history.changes],
            "unreadable": [asdict(skipped) for skipped in history.unreadable],
            "registry": history.registry,
        }
        if when is not None:
            change = served_at(history, when)
            entry["at"] = asdict(change) if change else None
        environments[history.env] = entry
    return {"at": when.isoformat() if when else None, "environments": environments}


def history(
    params: Params, envs: list[str], at: str | None = None, check_registry: bool = False, as_json_text: bool = False
) -> str:
    """The history of the pins of `envs` (default: all), what served `at`, and the aliases against the pins.

    A registry that cannot be reached is noted and skipped, unless `check_registry` asks for it
    (SubmitError then); with `check_registry`, RegistryOutOfSync when an alias disagrees with its pin.
    """
    import json

    chosen = [check_env(params, env) for env in envs] or list(params.deploy.environments)
    when = parse_when(at) if at else None
    histories = [env_history(params, env) for env in dict.fromkeys(chosen)]
    if not any(h.changes or h.unreadable for h in histories):
        raise ParamsError(
            f"no commit on this branch changes {', '.join(h.pin for h in histories)}: history is read from git, "
            "so commit the pins (a shallow clone has no history: fetch it with fetch-depth: 0)"
        )
    try:
        wrong, unreached = compare_registry(params, histories), None
    except SubmitError as exc:
        if check_registry:
            raise
        wrong, unreached = [], str(exc)
    if as_json_text:
        text = json.dumps({**as_json(histories, when), "registry_error": unreached}, indent=2)
    else:
        lines = [line for h in histories for line in _table(h)]
        if when is not None:
            lines += [f"at {when.isoformat()}:", *("  " + _at_line(h, when) for h in histories)]
        if unreached:
            lines.append(f"registry not compared: {unreached}")
        if git(params.root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
            lines.append("note: this clone is shallow, so older changes are missing (git fetch --unshallow)")
        text = "\n" + "\n".join(lines)
    if wrong and check_registry:
        raise RegistryOutOfSync(
            "\n".join(wrong) + "\nthe aliases follow the pins after merge: run the sync-aliases workflow "
            f"(make promote-sync, python -m {package()} promote --sync); to serve the alias's version instead, "
            f"promote it (python -m {package()} promote --env ENV --version N)\n" + text
        )
    return text
