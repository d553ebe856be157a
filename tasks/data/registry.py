"""The dataset registry: ``DATASETS`` by name, ``register_dataset``, and ``build_dataset`` resolving a name
with its options.

The built-in datasets are declared below, each builder named by reference with its description and
options, and imported on first build: listing and checking datasets imports no torch and reads no images.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.data.base import DatasetError, LabelledImages
from tasks.registry import LazyReference, Registry, RegistryError, doc_line, keyword_signature


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


def register_dataset(
    name: str,
    builder: Callable[..., LabelledImages] | str | None = None,
    *,
    description: str | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Register ``builder(root, **options) -> LabelledImages`` as dataset ``name`` (also as a decorator,
    ``@register_dataset("mine")``); returns the builder.

    ``builder`` may be a reference, ``"package.module:name"``, with its ``description`` and its
    ``options`` (name -> default) declared: it is imported, and its signature checked against them, when
    the dataset is first built (:class:`~tasks.registry.LazyReference`)."""
    if isinstance(builder, str):
        if description is None or options is None:
            raise RegistryError(
                f"dataset {name!r}: a builder given by reference ({builder!r}) declares its description= "
                "and options= (name -> default), which are listed without importing it"
            )
        signature = keyword_signature("root", options)
        builder = LazyReference(f"dataset {name!r}", builder, signature=signature, doc=description)
    elif description is not None or options is not None:
        raise RegistryError(
            f"dataset {name!r}: description= and options= declare a builder given by reference; a "
            "callable builder's docstring and keyword arguments say them"
        )
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
    from tasks.data.verify import UNREADABLE_POLICIES, verify_images

    policy = options.pop("unreadable_images", "fail")
    if policy not in UNREADABLE_POLICIES:
        raise DatasetError(f"{name}: option unreadable_images must be 'fail' or 'skip', got {policy!r}")
    images = builder(Path(root) if root is not None else None, **options)
    return verify_images(images, on_error="skip")[0] if policy == "skip" else images


# --- the built-in datasets: each builder by reference, with its description and options (name -> default),
# as ``oodml list datasets`` shows them; imported, and its signature checked, on first build

register_dataset(
    "cub200",
    "tasks.data.folders:load_cub200",
    description="cub200 from ``<root>/images/<class folder>/<image>, e.g. images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg``: sorted classes, the first 100 of 200 train (ooDML's default split); ``partition``, ``train_classes``, ``test_classes``: another initial partition (``tasks.data.partition``).",
    options={
        "num_train_classes": 100,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "cars196",
    "tasks.data.folders:load_cars196",
    description="cars196 from ``<root>/images/<class folder>/<image>, e.g. images/AM General Hummer SUV 2000/00163.jpg``: sorted classes, the first 98 of 196 train (ooDML's default split); ``partition``, ``train_classes``, ``test_classes``: another initial partition (``tasks.data.partition``).",
    options={
        "num_train_classes": 98,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "sop",
    "tasks.data.sop:load_sop",
    description="SOP with the info files' train/test classes as the default split.",
    options={},
)

register_dataset(
    "imagefolder",
    "tasks.data.folders:load_imagefolder",
    description="Any ``<root>/<class>/<image>`` tree; by default the first ``train_fraction`` of sorted classes is the train split (``partition``, ``train_classes``, ``test_classes``: ``tasks.data.partition``).",
    options={
        "train_fraction": 0.5,
        "name": "imagefolder",
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

register_dataset(
    "csv",
    "tasks.data.csv_files:load_csv",
    description="The images listed in the CSV/TSV file ``root`` (see the module docstring for its columns).",
    options={
        "name": "csv",
        "image_root": None,
        "train_fraction": 0.5,
        "partition": None,
        "partition_seed": 0,
        "train_classes": None,
        "test_classes": None,
    },
)

# The glyph demo's font faces (matplotlib ships them): the option's default, read by tasks.data.glyphs.
GLYPH_FACES = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSerif-BoldItalic",
    "STIXGeneral",
)

register_dataset(
    "glyphs",
    "tasks.data.glyphs:load_glyphs",
    description="The CUB-like glyph benchmark: ``num_classes`` classes drawn with ``seed``, half of them train.",
    options={
        "num_classes": 200,
        "seed": 0,
        "jitters": 2,
        "render_seed": 0,
        "faces": GLYPH_FACES,
        "max_chars": None,
        "name": "glyphs",
    },
)
