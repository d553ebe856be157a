"""Config validation errors in one line per field: ``field.path: what is wrong`` with the allowed keys and
the closest one for a misspelt key. Shared by the trial config (``tasks.config``) and the study spec
(``study.spec``), so ``oodml trial`` and ``oodml run`` report a bad config the same way."""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ValidationError


def allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model at ``loc`` (to list them under an 'unknown key' error)."""
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return sorted(model.model_fields) if model else []


def format_errors(
    err: ValidationError, source: str, model: type[BaseModel], what: str, empty_list_hint: str = ""
) -> str:
    """``source: invalid <what>:`` then one ``  field: message`` line per error of ``model``'s validation."""
    lines = [f"{source}: invalid {what}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = re.sub(r"^Value error, ", "", e["msg"])
        if e["type"] == "extra_forbidden":
            allowed = allowed_keys(model, e["loc"])
            match = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            message = f"unknown key; allowed: {', '.join(allowed)}{hint}"
        elif e["type"] == "missing":
            message = "required field is missing"
        elif e["type"] == "too_short" and isinstance(e["input"], list) and not e["input"] and empty_list_hint:
            message = f"List should have at least 1 item, got an empty list: {empty_list_hint}"
        lines.append(f"  {where}: {message}" if e["loc"] else f"  {message}")
    return "\n".join(lines)
