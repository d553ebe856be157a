"""Config validation errors in one line per field: ``field.path: what is wrong`` with the allowed keys and
the closest one for a misspelt key. Shared by the trial config (``tasks.config``) and the study spec
(``study.spec``), so ``oodml trial`` and ``oodml run`` report a bad config the same way."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


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
    lines += [f"  {error_line(e, model, empty_list_hint)}" for e in err.errors()]
    return "\n".join(lines)


def error_line(error: Any, model: type[BaseModel], empty_list_hint: str = "") -> str:
    """One error of ``model``'s validation as ``field.path: what is wrong`` (the message alone for the
    whole model)."""
    where = ".".join(str(p) for p in error["loc"])
    message = re.sub(r"^Value error, ", "", error["msg"])
    if error["type"] == "extra_forbidden":
        allowed = allowed_keys(model, error["loc"])
        match = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1, cutoff=0.5)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        message = f"unknown key; allowed: {', '.join(allowed)}{hint}"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif (
        error["type"] == "too_short"
        and isinstance(error["input"], list)
        and not error["input"]
        and empty_list_hint
    ):
        message = f"List should have at least 1 item, got an empty list: {empty_list_hint}"
    return f"{where}: {message}" if error["loc"] else message


def field_error(model: type[BaseModel], field: str, message: str, value: Any) -> ValidationError:
    """An error of ``field`` (a dotted path) found by a check across fields (a model validator), to raise
    from it: pydantic then reports it at that field, under the model's own place, as a field's validator
    would, so the report names the value to change."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    loc = tuple(field.split("."))
    return ValidationError.from_exception_data(
        model.__name__, [InitErrorDetails(type=error, loc=loc, input=value)]
    )
