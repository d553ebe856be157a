"""``--set a.b.c=value`` overrides of a spec mapping, applied before validation.

Values are parsed as YAML (``3`` is an int, ``[0, 2]`` a list, ``null`` None); a numeric path part
indexes a list (``methods.0.search=true``). Missing mappings along the path are created, so a typo
reaches validation and is reported there as an unknown key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml


def parse_assignments(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", ...]`` -> ``{"a.b": 1, ...}``."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY.PATH=VALUE, got {pair!r}")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"--set {key}: value {value!r} is not valid YAML ({err})") from None
    return parsed


def _set(node: Any, path: list[str], value: Any, full: str) -> None:
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        if not head.lstrip("-").isdigit() or not -len(node) <= int(head) < len(node):
            raise ValueError(f"override {full!r}: {head!r} is not an index of a list of {len(node)}")
        key: Any = int(head)
    elif isinstance(node, dict):
        key = head
    else:
        raise ValueError(f"override {full!r}: cannot set {head!r} inside a {type(node).__name__}")
    if not rest:
        node[key] = value
        return
    if isinstance(node, dict) and not isinstance(node.get(key), dict | list):
        node[key] = {}
    _set(node[key], rest, value, full)


def apply_overrides(raw: Mapping, overrides: Mapping[str, Any] | Iterable[str]) -> dict:
    """A deep copy of ``raw`` with each ``dotted.path: value`` (or ``"dotted.path=value"``) applied."""
    if not isinstance(overrides, Mapping):
        overrides = parse_assignments(overrides)
    result = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        _set(result, dotted.split("."), value, dotted)
    return result
