"""The dataset registry: ``DATASETS`` by name, ``register_dataset``, and ``build_dataset`` resolving a name
with its options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.csv_files import load_csv
from tasks.data.folders import load_cars196, load_cub200, load_imagefolder
from tasks.data.glyphs import load_glyphs
from tasks.data.sop import load_sop
from tasks.data.verify import UNREADABLE_POLICIES, verify_images
from tasks.registry import Registry, RegistryError, doc_line


def _check_builder(name: str, builder: Callable[..., LabelledImages]) -> None:
    """A dataset builder is ``builder(root, **options)``: its options are its keyword arguments."""
    if not callable(builder):
        raise RegistryError(
            f"dataset {name!r}: register a builder function builder(root, **options), got {builder!r}"
        )
    parameters = list(inspect.signature(builder).parameters.values())
    if not parameters or parameters[0].name != "root":
        raise RegistryError(
            f"dataset {name!r}: its builder's first argument must be root (a folder, or None)"
        )
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        raise RegistryError(f"dataset {name!r}: its builder must name each option (no *args or **kwargs)")


def _describe_builder(builder: Callable[..., LabelledImages]) -> dict[str, Any]:
    parameters = list(inspect.signature(builder).parameters.values())[1:]
    options = {
        p.name: {"default": None if p.default is p.empty else p.default, "required": p.default is p.empty}
        for p in parameters
    }
    options["unreadable_images"] = {"default": "fail", "required": False}
    return {"description": doc_line(builder), "options": options}


DATASETS: Registry[Callable[..., LabelledImages]] = Registry(
    "dataset", check=_check_builder, describe=_describe_builder, error=DatasetError
)
for _name, _builder in (
    ("cub200", load_cub200),
    ("cars196", load_cars196),
    ("sop", load_sop),
    ("imagefolder", load_imagefolder),
    ("csv", load_csv),
    ("glyphs", load_glyphs),
):
    DATASETS.register(_builder, name=_name)


def register_dataset(name: str, builder: Callable[..., LabelledImages] | None = None) -> Any:
    """Register ``builder(root, **options) -> LabelledImages`` as dataset ``name`` (also as a decorator,
    ``@register_dataset("mine")``); returns the builder."""
    return DATASETS.register(builder, name=name)


def dataset_options(name: str) -> list[str]:
    """The options ``build_dataset`` takes for dataset ``name``: its builder's, plus ``unreadable_images``."""
    parameters = inspect.signature(DATASETS.get(name)).parameters
    return [p for p in parameters if p != "root"] + ["unreadable_images"]


def build_dataset(name: str, /, root: str | Path | None, **options: Any) -> LabelledImages:
    """The dataset registered as ``name``, read from ``root`` (for ``glyphs``: the cache folder, or None).

    Every dataset takes ``unreadable_images``: ``"fail"`` (default: loading an unreadable image fails,
    naming the file) or ``"skip"`` (decode every image now and leave the unreadable ones out).
    """
    builder = DATASETS.get(name)
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{name}: unknown options {unknown}; it accepts {accepted}")
    policy = options.pop("unreadable_images", "fail")
    if policy not in UNREADABLE_POLICIES:
        raise DatasetError(f"{name}: option unreadable_images must be 'fail' or 'skip', got {policy!r}")
    images = builder(Path(root) if root is not None else None, **options)
    return verify_images(images, on_error="skip")[0] if policy == "skip" else images
