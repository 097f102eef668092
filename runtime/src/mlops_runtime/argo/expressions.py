"""Argo's small languages, as `pipeline run-local` needs them: placeholders, `depends` and `when`.

- `{{name}}` is replaced by a value (`workflow.parameters.x`, `inputs.parameters.x`,
  `tasks.X.outputs.parameters.y`, ...); `{{=expression}}` by what the expression gives.
- `depends: "A && (B.Succeeded || C.Failed)"`: a bare task name means A.Succeeded || A.Skipped || A.Daemoned.
- `when`: placeholders first, then the condition (`heads == heads`, `{{=jsonpath(x, '$.passed') == true}}`).

Only what workflows use is covered: comparison, `&&`/`||`/`!` (and `and`/`or`/`not`), parentheses,
string, number and boolean literals, and the functions in FUNCTIONS. Anything else fails (ParamsError)
naming itself and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ParamsError

# The task results `depends` may name; Argo's phase names.
RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
# What each result of a task satisfies: AnySucceeded/AllFailed concern loops, one run here is one item.
SATISFIES = {
    "Succeeded": {"Succeeded", "AnySucceeded"},
    "Failed": {"Failed", "AllFailed"},
    "Errored": {"Errored"},
    "Skipped": {"Skipped"},
    "Omitted": {"Omitted"},
}
# A bare name in `depends` (Argo's documented default).
BARE = {"Succeeded", "Skipped", "Daemoned"}

# Parentheses and calls nest this deep at most: workflows use a few levels, and each level is a
# Python call here, so a deeper one is refused by name instead of exhausting the interpreter's stack.
MAX_DEPTH = 50
SHOWN = 120  # characters of an expression quoted in a message

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<number>\d+(?:\.\d+)?(?![\w-]))
    |(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,|\.)
    |(?P<word>[A-Za-z_][\w-]*)
    )""",
    re.VERBOSE,
)


def _jsonpath(document: Any, path: Any) -> Any:
    """jsonpath(json_text, '$.a.b[0]'): the simple dotted and indexed paths workflows use."""
    data = json.loads(document) if isinstance(document, str) else document
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"jsonpath wants a path starting with $, got {path!r}")
    for key, index in re.findall(r"\.([\w-]+)|\[['\"]?([^\]'\"]+)['\"]?\]", path[1:]):
        step = key or index
        data = data[int(step)] if isinstance(data, list) else data[step]
    return data


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "jsonpath": _jsonpath,
    "asInt": lambda value: int(value),
    "asFloat": lambda value: float(value),
    "string": lambda value: value if isinstance(value, str) else json.dumps(value),
}


def _literal(text: str) -> str:
    return bytes(text[1:-1], "utf-8").decode("unicode_escape")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        found = TOKEN.match(text, position)
        if not found or found.end() == position:
            raise ValueError(f"cannot read {text[position:]!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


class _Parser:
    """Recursive descent over one expression, evaluated as it is read."""

    def __init__(self, text: str, lookup: Callable[[str], Any], words_are_strings: bool) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0
        self.lookup = lookup
        # After placeholder substitution, a plain `when` compares bare words as text (`heads == heads`).
        self.words_are_strings = words_are_strings

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ValueError(f"ends early{f', expected {expected!r}' if expected else ''}")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.at += 1
        return token

    def parse(self) -> Any:
        value = self.either()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def either(self) -> Any:
        # Every nesting (parentheses, a call's arguments) comes through here.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"nests deeper than {MAX_DEPTH} levels of parentheses or calls: simplify it")
        value = self.both()
        while self.peek() in ("||", "or"):
            self.take()
            right = self.both()
            value = bool(value) or bool(right)
        self.depth -= 1
        return value

    def both(self) -> Any:
        value = self.negation()
        while self.peek() in ("&&", "and"):
            self.take()
            right = self.negation()
            value = bool(value) and bool(right)
        return value

    def negation(self) -> Any:
        flips = 0
        while self.peek() in ("!", "not"):  # counted, not recursed: `!!!!x` is as deep as `x`
            self.take()
            flips += 1
        value = self.comparison()
        for _ in range(flips):
            value = not value
        return value

    def comparison(self) -> Any:
        left = self.primary()
        operator = self.peek()
        if operator not in ("==", "!=", "<", "<=", ">", ">="):
            return left
        self.take()
        right = self.primary()
        if operator == "==":
            return left == right
        if operator == "!=":
            return left != right
        if isinstance(left, str) != isinstance(right, str):
            raise ValueError(f"cannot order {left!r} and {right!r}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]

    def primary(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.either()
            self.take(")")
            return value
        if kind == "string":
            return _literal(text)
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind != "word":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if self.peek() == "(":
            return self.call(text)
        parts = [text]
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                parts.append(self.take()[1])
            else:
                key_kind, key = self.take()
                parts.append(_literal(key) if key_kind == "string" else key)
                self.take("]")
        name = ".".join(parts)
        return name if self.words_are_strings else self.lookup(name)

    def call(self, name: str) -> Any:
        if name not in FUNCTIONS:
            raise ValueError(f"unknown function {name}() (known: {', '.join(FUNCTIONS)})")
        self.take("(")
        arguments = []
        while self.peek() != ")":
            arguments.append(self.either())
            if self.peek() == ",":
                self.take()
        self.take(")")
        return FUNCTIONS[name](*arguments)


def _evaluate(text: str, lookup: Callable[[str], Any], where: str, words_are_strings: bool = False) -> Any:
    try:
        return _Parser(text, lookup, words_are_strings).parse()
    except ParamsError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        shown = repr(text) if len(text) <= SHOWN else f"{text[:SHOWN]!r}... ({len(text)} characters)"
        raise ParamsError(f"{where}: cannot evaluate {shown}: {exc}") from None


def _value(values: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in values:
        known = ", ".join(sorted(values)) or "none"
        raise ParamsError(f"{where}: unknown placeholder {{{{{name}}}}} (known here: {known})")
    return values[name]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def substitute(text: str, values: Mapping[str, Any], where: str) -> str:
    """`text` with every `{{name}}` and `{{=expression}}` replaced; ParamsError naming an unknown one."""

    def replace(found: re.Match[str]) -> str:
        inner = found.group(1).strip()
        if inner.startswith("="):
            return _text(_evaluate(inner[1:], lambda name: _value(values, name, where), where))
        return _text(_value(values, inner, where))

    return PLACEHOLDER.sub(replace, text)


def when_holds(condition: str, values: Mapping[str, Any], where: str) -> bool:
    """A task's `when`: substituted, then evaluated as a condition."""
    text = substitute(condition, values, where).strip()
    if text in ("true", "false"):
        return text == "true"
    result = _evaluate(text, lambda name: name, where, words_are_strings=True)
    if not isinstance(result, bool):
        raise ParamsError(f"{where}: {condition!r} gives {result!r}, not true or false")
    return result


def _reference(word: str) -> tuple[str, str | None]:
    """`evaluate.Succeeded` -> ("evaluate", "Succeeded"); a bare `evaluate` -> ("evaluate", None)."""
    task, _, result = word.rpartition(".")
    if task and result in RESULTS:
        return task, result
    if "." in word:
        raise ValueError(f"{word!r}: a task result is one of {', '.join(RESULTS)}")
    return word, None


def depends_words(expression: str) -> list[str]:
    """The task references of a `depends` expression, as written (`A`, `B.Failed`)."""
    try:
        tokens = _tokens(expression)
    except ValueError as exc:
        raise ParamsError(f"depends {expression!r}: {exc}") from None
    words, position = [], 0
    while position < len(tokens):
        kind, text = tokens[position]
        if kind == "word" and text not in ("and", "or", "not"):
            # A dotted reference arrives as word, '.', word.
            while position + 2 < len(tokens) and tokens[position + 1][1] == ".":
                text += "." + tokens[position + 2][1]
                position += 2
            words.append(text)
        position += 1
    return words


def depends_tasks(expression: str) -> list[str]:
    """The tasks a `depends` expression waits for, in order of appearance."""
    try:
        return list(dict.fromkeys(_reference(word)[0] for word in depends_words(expression)))
    except ValueError as exc:
        raise ParamsError(f"depends {expression!r}: {exc}") from None


def depends_met(expression: str, phases: Mapping[str, str]) -> bool:
    """Whether `expression` holds once every task it names has finished with the phase in `phases`."""

    def holds(name: str) -> bool:
        task, result = _reference(name)
        if task not in phases:
            raise ValueError(f"{task!r} has not finished (or is no task of this DAG)")
        reached = SATISFIES.get(phases[task], {phases[task]})
        return bool(reached & BARE) if result is None else result in reached

    return bool(_evaluate(expression, holds, f"depends {expression!r}"))
