"""The original ooDML code's SOP split pickle, translated to our class names.

That file names classes two ways (read off the original SOP loader, ``datasets/stanford_online_products.py``
of the ooDML code): ``train`` and ``test`` hold product ids, the file-name prefix of each class's images
(``bicycle_final/111085122871_0.JPG`` -> ``111085122871``), while ``split_train`` / ``split_val`` and the
few-shot episodes (whole test classes) hold ``class_id`` values. Our SOP classes are the ``class_id``s
(``tasks.data.sop``), so the product ids are mapped through the dataset's own images and the result is an
ordinary split file. The pickle itself goes through the same restricted unpickler as any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from tasks.data.base import LabelledImages
from tasks.splits.files import Split, SplitFile, SplitFileError, describe_validation, load_pickle_safely


def product_id(image_id: str) -> str:
    """The product id of an SOP image: its file name up to the first underscore."""
    return PurePosixPath(image_id).name.split("_")[0]


def class_of_product(images: LabelledImages) -> dict[str, str]:
    """Product id -> class name (``class_id``); each product must be one class."""
    mapping: dict[str, str] = {}
    for image_id, label in zip(images.image_ids, images.labels, strict=True):
        if mapping.setdefault(product_id(image_id), label) != label:
            raise SplitFileError(
                f"sop at {images.root}: product {product_id(image_id)} appears in classes "
                f"{mapping[product_id(image_id)]} and {label}; the product-id translation needs one class each"
            )
    return mapping


class _Names:
    """Translates one split's class references: product ids via the images, class ids as they are."""

    def __init__(self, products: dict[str, str], known: set[str], root: Path, where: str) -> None:
        self.products = products
        self.known = known
        self.root = root
        self.where = where

    def of_products(self, values: Iterable[Any], field: str) -> list[str]:
        unknown = [str(v) for v in values if str(v) not in self.products]
        if unknown:
            raise SplitFileError(
                f"{self.where}: {field} names products {unknown[:3]} ({len(unknown)} in all) that no image "
                f"under {self.root} belongs to"
            )
        return [self.products[str(v)] for v in values]

    def of_class_ids(self, values: Iterable[Any], field: str) -> list[str]:
        names = [str(v) for v in values]
        unknown = [n for n in names if n not in self.known]
        if unknown:
            raise SplitFileError(f"{self.where}: {field} names class ids {unknown[:3]} not in dataset sop")
        return names


def _split(split_id: Any, entry: Any, names: _Names) -> Split:
    if not isinstance(entry, dict) or {"train", "test", "fid"} - set(entry):
        raise SplitFileError(f"{names.where}: expected a dict with train, test and fid")
    train = names.of_products(entry["train"], "train")
    episodes = {
        int(shots): [
            sorted(names.of_class_ids(by_episode[e], f"{shots}-shot episode {e}")) for e in sorted(by_episode)
        ]
        for shots, by_episode in entry.get("test_episodes", {}).items()
    }
    try:
        return Split(
            id=int(split_id),
            key=str(split_id),
            fid=float(entry["fid"]),
            train=train,
            test=names.of_products(entry["test"], "test"),
            split_train=names.of_class_ids(entry["split_train"], "split_train")
            if "split_train" in entry
            else train,
            split_val=names.of_class_ids(entry.get("split_val", []), "split_val"),
            episodes=episodes,
        )
    except ValidationError as err:
        raise SplitFileError(f"{names.where}: {describe_validation(err)}") from None


def read_sop_pickle(path: str | Path, images: LabelledImages) -> SplitFile:
    """The splits of an ooDML SOP pickle with every class named by its ``class_id``."""
    path = Path(path)
    raw = load_pickle_safely(path)
    if not isinstance(raw, dict) or not raw:
        raise SplitFileError(f"{path}: expected a dict {{split_id: split}}, got {type(raw).__name__}")
    products, known = class_of_product(images), set(images.classes)
    splits = [
        _split(i, entry, _Names(products, known, images.root, f"{path}: split {i!r}"))
        for i, entry in sorted(raw.items())
    ]
    return SplitFile(provenance={"source": str(path), "format": "oodml-sop-pickle"}, splits=splits)
