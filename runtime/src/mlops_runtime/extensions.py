"""The project's own code around the platform's: hooks named in params.yaml (`hooks:`), as "module:attribute".

A hook is looked up once, where it is used (the server at start-up, a check when it runs), so a wrong name
fails before any request is answered or any verdict is written, with the setting that names it.
docs/hooks.md says what each hook receives and returns.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ParamsError


def load_hook(setting: str, name: str) -> Any:
    """The object `name` ("module:attribute") names; ParamsError naming `setting` (e.g. hooks.serving)."""
    module_name, _, attribute = name.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParamsError(
            f"{setting}: cannot import module {module_name!r} ({exc}): name a module of your package, "
            "installed in this environment (e.g. <package>.hooks:ServingHooks)"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ParamsError(f"{setting}: module {module_name!r} has no {attribute!r}: check the name") from None
    return found
