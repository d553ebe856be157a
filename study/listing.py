"""``oodml list [methods|backbones|datasets|extractors|episodes] [--json] [--plugin P]``: every registered
component with its declared options (hyperparameters with default and search range, a dataset's builder
options, a backbone's feature size, preprocessing and pretrained source, what an extractor needs).

Installed plugins (entry point group ``oodml.plugins``) are listed too; ``--plugin`` loads a module or a
``.py`` file first, as a spec's ``plugins:`` would.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

KINDS = {
    "methods": ("tasks.methods", "METHODS"),
    "backbones": ("tasks.models", "BACKBONES"),
    "datasets": ("tasks.data", "DATASETS"),
    "extractors": ("tasks.splits.extractors", "EXTRACTORS"),
    "episodes": ("tasks.splits.episodes", "EPISODE_BUILDERS"),
}
NOTES = {"backbones": "also any timm model, as timm:<name> (its own preprocessing and feature size)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=list(KINDS), help="what to list (default: everything)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="load a plugin first (a module name or a .py file), as a spec's plugins: would; repeatable",
    )


def registry(kind: str):
    import importlib

    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def described(kind: str) -> list[dict[str, Any]]:
    """Every entry of ``kind``, as ``Registry.describe`` gives it."""
    entries = registry(kind)
    return [entries.describe(name) for name in entries.names()]


def _range(hp: dict[str, Any]) -> str:
    return f"[{hp['low']:g}, {hp['high']:g}{', log' if hp['log'] else ''}]"


def _method_lines(entry: dict[str, Any]) -> list[str]:
    lines = []
    if entry["variants"]:
        variants = ", ".join(
            f"{v}{' (default)' if v == entry['default_variant'] else ''}" for v in entry["variants"]
        )
        lines.append(f"    variants: {variants}")
    width = max((len(k) for k in entry["hyperparameters"]), default=0)
    for name, hp in entry["hyperparameters"].items():
        lines.append(f"    {name:<{width}}  default {hp['default']:<8g} search {_range(hp)}")
    if not entry["hyperparameters"]:
        lines.append("    (no hyperparameters)")
    return lines


def _dataset_lines(entry: dict[str, Any]) -> list[str]:
    return [
        f"    {name}: " + ("required" if o["required"] else f"default {o['default']!r}")
        for name, o in entry["options"].items()
    ]


def _backbone_lines(entry: dict[str, Any]) -> list[str]:
    p = entry["preprocess"]
    pretrained = entry["pretrained"]
    source = (
        "none (trained from scratch)"
        if pretrained is None
        else ", ".join(f"{v}" for v in pretrained.values())
    )
    return [
        f"    feature_dim {entry['feature_dim']}, embedding_dim {entry['embedding_dim']}, "
        f"frozen BatchNorm {'yes' if entry['freeze_bn'] else 'no'}",
        f"    preprocessing: {p['channels']} channels, {p['size']} px (resize {p['resize']}), "
        f"mean {tuple(p['mean'])}, std {tuple(p['std'])}",
        f"    pretrained: {source}",
    ]


def _extractor_lines(entry: dict[str, Any]) -> list[str]:
    return [f"    needs: {entry['needs']}"] if entry.get("needs") else []


DETAILS = {
    "methods": _method_lines,
    "datasets": _dataset_lines,
    "backbones": _backbone_lines,
    "extractors": _extractor_lines,
}


def format_kind(kind: str, entries: list[dict[str, Any]]) -> str:
    lines = [f"{kind} ({len(entries)}):"]
    for entry in entries:
        origin = "" if entry["origin"] == "oodml" else f"  [{entry['origin']}]"
        description = entry.get("description", "")
        lines.append(f"  {entry['name']}{origin}" + (f": {description}" if description else ""))
        lines.extend(DETAILS.get(kind, lambda e: [])(entry))
    if kind in NOTES:
        lines.append(f"  ({NOTES[kind]})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from study.plugins import load_plugins

    load_plugins(args.plugin)
    kinds = [args.kind] if args.kind else list(KINDS)
    listing = {kind: described(kind) for kind in kinds}
    if args.json:
        print(json.dumps(listing if not args.kind else listing[args.kind], indent=2, default=str))
    else:
        print("\n\n".join(format_kind(kind, entries) for kind, entries in listing.items()))
    return 0
