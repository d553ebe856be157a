"""A dataset listed in a CSV or TSV file: one image per row, ``path`` and ``label`` columns.

The file needs a header row. Columns (by name, in any order; other columns are ignored):

- ``path``: the image file, relative to ``image_root`` (default: the folder holding the list file), or
  absolute. The path as written (normalised to ``/`` separators) is the image's id in split files.
- ``label``: the class name.
- ``side`` (optional): ``train`` or ``test``, the class's side in the initial partition (the default
  split); every row of a class must name the same side. Without it (or with a ``partition`` /
  ``train_classes`` / ``test_classes`` option, which takes precedence) the partition follows
  ``tasks.data.partition``.

The delimiter is ``,`` for ``.csv``, a tab for ``.tsv`` / ``.tab``, and sniffed (comma, tab, semicolon
or bar) for any other name. Every problem names the file, the line and the column: a missing image
file, an empty path or label, an unknown side, a path listed twice, a class on both sides.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.folders import FileLoader
from tasks.data.partition import ClassList, initial_partition, train_count

COLUMNS = ("path", "label")
SIDE_COLUMN = "side"
SIDES = ("train", "test")
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
SNIFFED = ",\t;|"


def _delimiter(path: Path, sample: str) -> str:
    if path.suffix.lower() in DELIMITERS:
        return DELIMITERS[path.suffix.lower()]
    try:
        return csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=SNIFFED).delimiter
    except csv.Error:
        raise DatasetError(
            f"{path}: cannot tell the delimiter from the header line; name the file .csv (comma) or .tsv (tab)"
        ) from None


def _image_id(text: str) -> str:
    """The path with ``/`` separators and no ``./`` segments (absolute paths stay absolute)."""
    return PurePosixPath(text.replace("\\", "/")).as_posix()


def read_rows(name: str, path: Path, image_root: Path) -> tuple[list[str], list[str], dict[str, str] | None]:
    """Image ids, labels and (with a side column) each class's side, checked row by row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{name}: cannot read the list file {path} ({err})") from None
    if not text.strip():
        raise DatasetError(f"{path}: empty; expected a header row naming the columns path,label[,side]")
    reader = csv.DictReader(text.splitlines(), delimiter=_delimiter(path, text))
    header = [(h or "").strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: line 1: the header lacks the column(s) {', '.join(missing)} (found {header}); the first "
            "row must name the columns: path,label and optionally side (train/test)"
        )
    has_side = SIDE_COLUMN in header
    ids: list[str] = []
    labels: list[str] = []
    sides: dict[str, tuple[str, int]] = {}
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num

        def cell(column: str, row=row) -> str:
            return (row.get(column) or "").strip()

        def fail(column: str, problem: str, line=line) -> DatasetError:
            return DatasetError(f"{path}: line {line}, column {column}: {problem}")

        if all(not (v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        image, label = cell("path"), cell("label")
        if not image:
            raise fail("path", "empty image path")
        if not label:
            raise fail("label", f"empty label for image {image!r}")
        image_id = _image_id(image)
        if image_id in first_line:
            raise fail("path", f"image {image!r} is already listed on line {first_line[image_id]}")
        if not (image_root / image_id).is_file():
            raise fail(
                "path",
                f"image file {image_root / image_id} does not exist (paths are relative to {image_root})",
            )
        if has_side:
            side = cell(SIDE_COLUMN).lower()
            if side not in SIDES:
                raise fail(SIDE_COLUMN, f"unknown side {cell(SIDE_COLUMN)!r}; allowed: {', '.join(SIDES)}")
            earlier = sides.setdefault(label, (side, line))
            if earlier[0] != side:
                raise fail(
                    SIDE_COLUMN,
                    f"class {label!r} is on side {side} here but on side {earlier[0]} on line {earlier[1]}; "
                    "a class belongs to one side of the initial partition",
                )
        first_line[image_id] = line
        ids.append(image_id)
        labels.append(label)
    if not ids:
        raise DatasetError(f"{path}: the header is followed by no image rows")
    return ids, labels, ({c: s for c, (s, _) in sides.items()} if has_side else None)


def load_csv(
    root: Path | None,
    name: str = "csv",
    image_root: str | None = None,
    train_fraction: float = 0.5,
    partition: str | None = None,
    partition_seed: int = 0,
    train_classes: ClassList | None = None,
    test_classes: ClassList | None = None,
) -> LabelledImages:
    """The images listed in the CSV/TSV file ``root`` (see the module docstring for its columns).

    The initial partition is the file's ``side`` column when it has one and no partition option is
    given, else ``tasks.data.partition``'s (``train_fraction`` of the sorted classes by default).
    ``name`` names the dataset (in results, cache keys and messages).
    """
    if root is None:
        raise DatasetError(
            f"{name}: no list file given; pass the CSV/TSV file (columns path,label[,side]) as root"
        )
    path = Path(root).expanduser()
    if not path.is_file():
        hint = "; root names the list file itself, not its folder" if path.is_dir() else ""
        raise DatasetError(
            f"{name}: list file {path} does not exist (a CSV/TSV with columns path,label[,side]){hint}"
        )
    folder = Path(image_root).expanduser() if image_root else path.parent
    if not folder.is_dir():
        raise DatasetError(f"{name}: image_root {folder} is not a folder")
    train_count(name, 2, train_fraction)
    ids, labels, sides = read_rows(name, path, folder)
    chosen = partition is not None or train_classes is not None or test_classes is not None
    if sides is not None and not chosen:
        train = tuple(sorted(c for c, s in sides.items() if s == "train"))
        test = tuple(sorted(c for c, s in sides.items() if s == "test"))
        for side, listed in (("train", train), ("test", test)):
            if not listed:
                raise DatasetError(
                    f"{path}: column side names no {side} class; each side of the initial partition needs one"
                )
    else:
        train, test = initial_partition(
            name,
            labels,
            train_fraction=train_fraction,
            partition=partition,
            partition_seed=partition_seed,
            train_classes=train_classes,
            test_classes=test_classes,
        )
    return LabelledImages(
        name=name,
        root=folder,
        image_ids=tuple(ids),
        labels=tuple(labels),
        default_train=train,
        default_test=test,
        load=FileLoader(name, folder, tuple(ids)),
    )
