"""Exit codes: the tables and sentences of the docs say what the generated CLI does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "runtime" / "src" / "mlops_runtime"
# What each code is about: its row in a table, and any paragraph that says a command exits with it,
# must name this. A new code needs its entry here.
SUBJECT = {
    "EXIT_BAD_INPUT": r"param|argument|input|data|file|column|rows?\b|--out|environment",
    "EXIT_GATE_FAILED": r"criteri|\bgate",
    "EXIT_CONTRACT_VIOLATED": r"contract",
    "EXIT_SUBMIT_FAILED": r"server|reach|answer",
    "EXIT_MONITOR_BREACH": r"drift|outlier|breach",
    "EXIT_MANIFESTS_INVALID": r"manifest",
    "EXIT_NOT_IN_REGISTRY": r"not in the (MLflow )?registry",
    "EXIT_CRITERIA_NOT_MET": r"criteri",
    "EXIT_WORSE_THAN_CHAMPION": r"worse",
    "EXIT_SKIPS_ENVIRONMENT": r"previous environment|skips",
    "EXIT_PIN_MISMATCH": r"pin disagrees",
    "EXIT_RULES_CHANGED": r"\brules\b",
    "EXIT_TASK_FAILED": r"\btask",
    "EXIT_NOT_REPRODUCIBLE": r"uncommitted",
    "EXIT_REGISTRY_OUT_OF_SYNC": r"alias",
    "EXIT_NO_MODEL_CARD": r"model card",
}
# The full table of every command, and the tables of one command (a subset).
FULL_TABLES = [REPO_ROOT / "docs" / "lifecycle.md", REPO_ROOT / "template" / "README.md.jinja"]
PROMOTION_TABLE = REPO_ROOT / "template" / "docs" / "promotion.md.jinja"
PROSE = [
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "template").rglob("*.md.jinja")),
    *sorted((REPO_ROOT / "template").rglob("*.md")),
]
MENTION = re.compile(r"\bexit(?:s|ed)?(?:\s+with)?(?:\s+code)?\s+`?(\d+)`?", re.IGNORECASE)
LISTED = re.compile(r"Exit codes of `[^`]+`:\s*(.*)", re.DOTALL)


def module(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text(encoding="utf-8"))


def code_table() -> tuple[dict[str, int], dict[str, str]]:
    """From cli.py: each EXIT_* constant's value, and which constant each exception class maps to."""
    constants: dict[str, int] = {}
    mapping: dict[str, str] = {}
    for node in module("cli.py").body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if not isinstance(target, ast.Name):
            continue
        if target.id.startswith("EXIT_") and isinstance(value, ast.Constant) and isinstance(value.value, int):
            constants[target.id] = value.value
        if target.id == "EXIT_CODES" and isinstance(value, ast.Dict):
            mapping = {key.id: val.id for key, val in zip(value.keys, value.values, strict=True)}  # type: ignore[union-attr]
    return constants, mapping


def error_classes() -> dict[str, str]:
    """Each exception class of errors.py and its base class."""
    return {
        node.name: node.bases[0].id  # type: ignore[attr-defined]
        for node in module("errors.py").body
        if isinstance(node, ast.ClassDef)
    }


def doc_table(path: Path, header: str) -> dict[int, str]:
    """The rows of the markdown table whose header row starts with `header`: code -> the rest of the row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.replace(" ", "").startswith(header)), None)
    assert start is not None, f"{path.relative_to(REPO_ROOT)} has no table headed {header}"
    rows: dict[int, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0].isdigit(), f"{path.relative_to(REPO_ROOT)}: {line}"
        assert int(cells[0]) not in rows, f"{path.relative_to(REPO_ROOT)}: code {cells[0]} twice"
        rows[int(cells[0])] = " ".join(cells[1:])
    return rows


def subject_of(code: int) -> tuple[str, str]:
    constants, _ = code_table()
    [name] = [name for name, value in constants.items() if value == code]
    return name, SUBJECT[name]


def test_every_error_has_one_code_and_every_code_a_subject() -> None:
    """cli.py maps every concrete exception of errors.py to an EXIT_* constant; codes are distinct."""
    constants, mapping = code_table()
    classes = error_classes()
    bases = set(classes.values())
    concrete = {name for name in classes if name not in bases}
    assert set(mapping) == concrete, "errors.py and EXIT_CODES in cli.py list different exceptions"
    assert set(mapping.values()) <= set(constants)
    assert len(set(constants.values())) == len(constants), "two EXIT_* constants share a value"
    assert 0 not in constants.values() and 1 not in constants.values()
    assert set(constants) <= set(SUBJECT), "give every EXIT_* constant its subject in SUBJECT above"


@pytest.mark.parametrize("path", FULL_TABLES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_full_tables_match_the_code(path: Path) -> None:
    """The table of every command lists exactly the codes of cli.py, each row about its code."""
    constants, _ = code_table()
    rows = doc_table(path, "|code|meaning|")
    assert set(rows) == {0, *constants.values()}, f"{path.relative_to(REPO_ROOT)} lists other codes than cli.py"
    for code, meaning in rows.items():
        if code:
            name, subject = subject_of(code)
            assert re.search(subject, meaning, re.IGNORECASE), f"{path.name}: code {code} ({name}) reads {meaning!r}"


def test_promotion_runbook_matches_the_code() -> None:
    """The promotion runbook lists the code of every promotion refusal, each row about its code."""
    constants, mapping = code_table()
    refusals = {constants[mapping[name]] for name, base in error_classes().items() if base == "PromotionRefused"}
    rows = doc_table(PROMOTION_TABLE, "|exitcode|refusal|")
    assert refusals <= set(rows) <= set(constants.values())
    for code, text in rows.items():
        name, subject = subject_of(code)
        assert re.search(subject, text, re.IGNORECASE), f"promotion.md: code {code} ({name}) reads {text!r}"


def wrong_sentences(paths: list[Path]) -> tuple[list[str], int]:
    """Paragraphs that say a command exits with a code but speak of something else; and how many mentions."""
    constants, _ = code_table()
    wrong, seen = [], 0
    for path in dict.fromkeys(paths):
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if paragraph.lstrip().startswith("|"):
                continue  # tables are checked above
            codes = [int(code) for code in MENTION.findall(paragraph)]
            listed = LISTED.search(paragraph)
            if listed:
                codes += [int(code) for code in re.findall(r"`(\d+)`", listed.group(1))]
            seen += len(codes)
            for code in codes:
                if code == 0:
                    continue
                if code not in constants.values():
                    wrong.append(f"{path.name}: exit {code} is no code of cli.py")
                    continue
                name, subject = subject_of(code)
                if not re.search(subject, paragraph, re.IGNORECASE):
                    wrong.append(f"{path.name}: exit {code} ({name}) in a paragraph that names no {subject!r}")
    return wrong, seen


def test_sentences_name_the_right_code() -> None:
    """A paragraph that says a command exits N speaks of what N means."""
    wrong, seen = wrong_sentences(PROSE)
    assert seen > 10, "the docs should mention exit codes"
    assert not wrong, "\n".join(wrong)


def test_a_wrong_code_in_prose_is_caught(tmp_path: Path) -> None:
    """The check itself: `manifests validate` said to exit 5 (a server code) is reported, exit 7 is not."""
    doc = tmp_path / "serving.md"
    text = "`manifests validate` builds each overlay with kustomize and validates it;\nthe command exits {}.\n"
    doc.write_text(text.format(5))
    assert wrong_sentences([doc])[0] == [
        "serving.md: exit 5 (EXIT_SUBMIT_FAILED) in a paragraph that names no 'server|reach|answer'"
    ]
    doc.write_text(text.format(7))
    assert wrong_sentences([doc]) == ([], 1)
