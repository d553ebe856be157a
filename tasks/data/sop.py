"""Stanford Online Products (Song et al. 2016): 22,634 product classes in 12 super-categories.

The info files ``Ebay_train.txt`` / ``Ebay_test.txt`` (header ``image_id class_id super_class_id path``)
define the default split: their classes are disjoint (11,318 train, 11,316 test). They are read from
``<root>/Info_Files/`` (the layout the ooDML code expects) or ``<root>/`` (the official archive); the
``path`` column is resolved against ``<root>/images/`` or ``<root>/``, whichever holds the files, and
is the image id. Class names are the ``class_id`` values; the superclass of a class is its folder name
without the ``_final`` suffix (``bicycle_final/...`` -> ``bicycle``).
"""

from __future__ import annotations

from pathlib import Path

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.folders import FileLoader, require_root

LAYOUT = (
    "<root>/Info_Files/Ebay_train.txt and Ebay_test.txt (or both at <root>/) with images at "
    "<root>/images/<path> or <root>/<path>"
)
HEADER = ["image_id", "class_id", "super_class_id", "path"]


def _info_file(root: Path, file_name: str) -> Path:
    for folder in (root / "Info_Files", root):
        if (folder / file_name).is_file():
            return folder / file_name
    raise DatasetError(f"sop: {file_name} not found in {root / 'Info_Files'} or {root}; expected {LAYOUT}")


def _read_info(path: Path) -> list[tuple[str, str]]:
    """``(class_id, path)`` rows of one info file, with its header checked."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != HEADER:
        raise DatasetError(f"sop: {path} must start with the header line '{' '.join(HEADER)}'")
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != 4 or not fields[1].isdigit():
            raise DatasetError(f"sop: {path} line {number} is not 'image_id class_id super_class_id path'")
        rows.append((fields[1], fields[3]))
    if not rows:
        raise DatasetError(f"sop: {path} lists no images")
    return rows


def _image_folder(root: Path, first_path: str) -> Path:
    for folder in (root / "images", root):
        if (folder / first_path).is_file():
            return folder
    raise DatasetError(
        f"sop: image {first_path} is neither at {root / 'images' / first_path} nor at {root / first_path}; "
        f"expected {LAYOUT}"
    )


def load_sop(root: Path | None) -> LabelledImages:
    """SOP with the info files' train/test classes as the default split."""
    root = require_root("sop", root, LAYOUT)
    train = _read_info(_info_file(root, "Ebay_train.txt"))
    test = _read_info(_info_file(root, "Ebay_test.txt"))
    folder = _image_folder(root, train[0][1])
    train_classes = sorted({c for c, _ in train}, key=int)
    test_classes = sorted({c for c, _ in test}, key=int)
    superclasses = {c: p.split("/")[0].removesuffix("_final") for c, p in train + test}
    ids = tuple(p for _, p in train + test)
    if len(set(ids)) != len(ids):
        raise DatasetError(f"sop: the info files in {root} list some image paths twice")
    return LabelledImages(
        name="sop",
        root=folder,
        image_ids=ids,
        labels=tuple(c for c, _ in train + test),
        default_train=tuple(train_classes),
        default_test=tuple(test_classes),
        load=FileLoader("sop", folder, ids),
        superclasses=superclasses,
    )
