"""Write cookiecutter.json from the questions in copier.yml (`make cookiecutter-json`); --check only compares."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[1]
COPIER = ROOT / "copier.yml"
COOKIECUTTER = ROOT / "cookiecutter.json"
# Copier's regex filters come from this extension; it is installed with copier, which the
# post-generation hook needs anyway.
EXTENSIONS = ["jinja2_ansible_filters.AnsibleCoreFiltersExtension"]
# Copier derives these defaults from where the template comes from, which cookiecutter's context lacks: cookiecutter
# offers them empty, and its hook (hooks/post_gen_project.py) leaves an empty one to copier's default.
FROM_SOURCE = "_copier_answers"


def questions(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The questions a user answers: computed values (`when: false`) are never asked, so cookiecutter lists none."""
    return {
        name: spec
        for name, spec in config.items()
        if not name.startswith("_") and not (isinstance(spec, dict) and spec.get("when") is False)
    }


def to_cookiecutter_expression(source: str, names: set[str]) -> str:
    """Rewrite a copier default so that every reference to an answer reads `cookiecutter.<name>`."""
    out, previous = [], None
    for _, kind, value in Environment().lex(source):
        # Attribute names (after a dot) and string contents are not answers.
        out.append(f"cookiecutter.{value}" if kind == "name" and value in names and previous != "dot" else value)
        if kind != "whitespace":
            previous = kind
    return "".join(out)


def choice_values(spec: dict[str, Any]) -> list[Any]:
    choices = spec["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def cookiecutter_json(config: dict[str, Any]) -> dict[str, Any]:
    """The cookiecutter context equivalent to copier's questions: same names, defaults, choices and help."""
    specs = questions(config)
    names = set(specs)
    context: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    for name, spec in specs.items():
        default = spec.get("default")
        if isinstance(default, str) and FROM_SOURCE in default:
            default = ""
        elif isinstance(default, str):
            default = to_cookiecutter_expression(default, names)
        if "choices" in spec:
            # Cookiecutter offers a list and defaults to its first item.
            values = choice_values(spec)
            context[name] = [default, *(v for v in values if v != default)]
            labels = spec["choices"] if isinstance(spec["choices"], dict) else {}
            prompts[name] = {"__prompt__": spec.get("help", name), **{str(v): k for k, v in labels.items()}}
        else:
            context[name] = default
            prompts[name] = spec.get("help", name)
    return {**context, "__prompts__": prompts, "_extensions": EXTENSIONS}


def render() -> str:
    return json.dumps(cookiecutter_json(yaml.safe_load(COPIER.read_text(encoding="utf-8"))), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if COOKIECUTTER.read_text(encoding="utf-8") != text:
            print(
                "cookiecutter.json does not match copier.yml: run `make cookiecutter-json` and commit it",
                file=sys.stderr,
            )
            return 1
        return 0
    COOKIECUTTER.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
