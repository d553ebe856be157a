"""MLflow names and values: the record-key mapping, flattening, and the limits of ``log_batch``.

MLflow keys may hold letters, digits, ``_ - . / :`` and spaces, so ``@`` becomes ``_at_``
(``test/recall@1`` -> ``test/recall_at_1``, ``map@r`` -> ``map_at_r``) and any other character ``_``;
colons are replaced too, as MLflow refuses them on Windows.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterator, Sequence
from typing import TypeVar

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,200}")
T = TypeVar("T")


def mlflow_key(key: str) -> str:
    """A valid MLflow metric/param/tag key for a record key (see the module docstring)."""
    cleaned = re.sub(r"[^\w.\- /]", "_", key.replace("@", "_at_"), flags=re.ASCII)
    # MLflow also refuses names that change under path normalisation ("a//b", "./a", "../a", "/a").
    cleaned = "/".join(part for part in cleaned.split("/") if part not in ("", ".", ".."))[:MAX_KEY].rstrip(
        "/"
    )
    if not cleaned:
        raise ValueError(f"{key!r} gives no usable MLflow key")
    return cleaned


def check_id(kind: str, value: str) -> str:
    """Ids end up in MLflow search filters: allow only characters that need no quoting there."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(
            f"{kind} {value!r} must start with a letter or digit and hold only letters, digits, '_', '-', "
            "'.' and spaces (at most 201 characters)"
        )
    return value


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts to dotted keys; lists and scalars are leaves."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def param_value(value: object, limit: int = MAX_PARAM_VALUE) -> str:
    """A param/tag value: JSON for lists and dicts, ``str`` otherwise, cut to MLflow's limit."""
    text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= limit else text[: limit - 15] + "...(truncated)"


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
