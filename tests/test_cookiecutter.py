"""The cookiecutter front door: the same questions as copier, the same project, and `copier update` afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

from .conftest import REPO_ROOT
from .releases import TemplateClone
from .test_update import contents

COPIER = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
# Computed values (`when: false`) are never asked: cookiecutter has no prompt for them.
QUESTIONS = {name: spec for name, spec in COPIER.items() if not name.startswith("_") and spec.get("when") is not False}
CONTEXT = json.loads((REPO_ROOT / "cookiecutter.json").read_text())


def test_same_names_in_the_same_order() -> None:
    """cookiecutter.json asks exactly copier's questions, in copier's order."""
    assert [name for name in CONTEXT if not name.startswith("_")] == list(QUESTIONS)


def test_same_choices_with_copier_default_first() -> None:
    """Each choice question offers copier's values, its default first (cookiecutter's default is the first item)."""
    for name, spec in QUESTIONS.items():
        if "choices" not in spec:
            assert not isinstance(CONTEXT[name], list), name
            continue
        values = list(spec["choices"].values()) if isinstance(spec["choices"], dict) else spec["choices"]
        assert CONTEXT[name][0] == spec["default"], name
        assert sorted(CONTEXT[name]) == sorted(values), name


def test_same_help() -> None:
    """Cookiecutter prompts with copier's help text."""
    for name, spec in QUESTIONS.items():
        prompt = CONTEXT["__prompts__"][name]
        assert (prompt["__prompt__"] if isinstance(prompt, dict) else prompt) == spec["help"], name


def test_cookiecutter_json_is_generated_from_copier_yml() -> None:
    """The committed cookiecutter.json is what `make cookiecutter-json` writes from copier.yml."""
    done = subprocess.run(
        [sys.executable, "scripts/sync_cookiecutter.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def cookiecutter_defaults(**given: str) -> dict:
    context = generate_context(str(REPO_ROOT / "cookiecutter.json"), extra_context=given)
    return dict(prompt_for_config(context, no_input=True))


def copier_defaults(**given: str) -> dict:
    worker = copier.run_copy(
        str(REPO_ROOT), "unused", data=given, defaults=True, pretend=True, quiet=True, vcs_ref="HEAD", skip_tasks=True
    )
    return {name: worker.answers.combined[name] for name in QUESTIONS}


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"project_name": "Fraud & Risk 2"},
        {"project_name": "Churn", "dvc_remote": "s3", "github_owner": "Acme-Labs"},
    ],
    ids=["defaults", "punctuation", "s3-owner"],
)
def test_derived_defaults_agree(given: dict[str, str]) -> None:
    """Every default, derived ones included, comes out the same from cookiecutter and from copier."""
    ours = cookiecutter_defaults(**given)
    theirs = copier_defaults(**given)
    # Empty in cookiecutter: copier derives it from the template's source (hooks/post_gen_project.py).
    from_source = {name for name, value in ours.items() if value == "" and name in QUESTIONS}
    assert from_source == {"runtime_source"}
    assert {k: v for k, v in ours.items() if k in QUESTIONS and k not in from_source} == {
        k: v for k, v in theirs.items() if k not in from_source
    }


def test_cookiecutter_gives_the_copier_project(template_clone: TemplateClone, tmp_path: Path) -> None:
    """Same answers, same tree, byte for byte (answers file included); then `copier update` works on it."""
    remote = tmp_path / "remote"
    answers = {"project_name": "Fraud Detector", "serving_runtime": "deployment", "dvc_remote_url": str(remote)}
    made = Path(
        cookiecutter(str(template_clone.path), no_input=True, extra_context=answers, output_dir=str(tmp_path / "cc"))
    )
    copied = tmp_path / "copier" / "fraud-detector"
    copier.run_copy(str(template_clone.path), str(copied), data=answers, defaults=True, unsafe=True, quiet=True)

    assert made.name == "fraud-detector"
    assert contents(made) == contents(copied)
    recorded = yaml.safe_load((made / ".copier-answers.yml").read_text())
    assert recorded["_src_path"] == str(template_clone.path) and recorded["_commit"] == template_clone.newest

    copier.run_update(
        str(made), data={"description": "Flag fraud."}, defaults=True, overwrite=True, unsafe=True, quiet=True
    )
    assert 'description = "Flag fraud."' in (made / "pyproject.toml").read_text()


def test_bad_answer_stops_with_copier_message(
    template_clone: TemplateClone, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A value copier's validator refuses fails the hook with that message, and cookiecutter leaves no project."""
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(template_clone.path),
            no_input=True,
            extra_context={"project_slug": "Bad_Slug"},
            output_dir=str(tmp_path / "cc"),
        )
    assert "project_slug 'Bad_Slug' is not a valid Kubernetes name" in capfd.readouterr().err
    assert not (tmp_path / "cc" / "Bad_Slug").exists()
