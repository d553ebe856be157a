"""Datasets stored as one folder per class: CUB200-2011, CARS196 and any ImageFolder-style tree.

CUB200-2011 and CARS196 follow the ooDML/DML convention: ``<root>/images/<class folder>/<image>``,
classes in sorted order, the first half (100 of 200 birds, 98 of 196 cars) is the default train split.
Image ids are paths relative to the image folder (``<class folder>/<file>``), so they do not depend on
where the dataset lives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.partition import ClassList, initial_partition, train_count

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


@dataclass(frozen=True)
class FileLoader:
    """Opens ``folder / image_ids[i]`` fully decoded; a picklable ``LabelledImages.load``."""

    name: str
    folder: Path
    image_ids: tuple[str, ...]

    def path(self, i: int) -> Path:
        return self.folder / self.image_ids[i]

    def __call__(self, i: int) -> Image.Image:
        return self._decode(i, check_only=False)

    def check(self, i: int) -> object:
        """Decode image ``i`` only to find out whether it can be: a JPEG at 1/8 scale (libjpeg's DCT
        scaling still reads the whole compressed stream, so a truncated or corrupt file fails as in a
        full decode, at about 0.6x the cost: benchmarks/bench_verify.py), other formats fully."""
        return self._decode(i, check_only=True)

    def _decode(self, i: int, check_only: bool) -> Image.Image:
        path = self.path(i)
        try:
            with Image.open(path) as image:
                if check_only:
                    image.draft(image.mode, (max(image.width // 8, 1), max(image.height // 8, 1)))
                image.load()
                if check_only or image.mode in ("RGB", "L"):
                    return image
                return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DatasetError(
                f"{self.name}: cannot read image {path}: {error}; replace the file, or leave unreadable "
                "images out with the dataset option unreadable_images: skip"
            ) from error


def is_image_file(path: Path) -> bool:
    """A visible file with one of the supported image extensions (case-insensitive)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def scan_class_folders(name: str, folder: Path, layout: str) -> dict[str, list[str]]:
    """Sorted class folder names of ``folder`` -> their sorted image file names.

    ``layout`` describes the expected tree for error messages.
    """
    if not folder.is_dir():
        raise DatasetError(f"{name}: {folder} is not a folder; expected {layout}")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"{name}: no class folders in {folder}; expected {layout}")
    classes = {}
    for class_dir in class_dirs:
        files = sorted(p.name for p in class_dir.iterdir() if is_image_file(p))
        if not files:
            raise DatasetError(
                f"{name}: class folder {class_dir} holds no images ({'/'.join(sorted(IMAGE_EXTENSIONS))}); "
                "restore its images or remove the folder"
            )
        classes[class_dir.name] = files
    return classes


def images_from_class_folders(
    name: str,
    folder: Path,
    classes: dict[str, list[str]],
    train: tuple[str, ...],
    test: tuple[str, ...],
) -> LabelledImages:
    """The images of ``classes`` (sorted class names -> their file names) with the given default split."""
    names = sorted(classes)
    ids = tuple(f"{c}/{f}" for c in names for f in classes[c])
    labels = tuple(c for c in names for _ in classes[c])
    return LabelledImages(
        name=name,
        root=folder,
        image_ids=ids,
        labels=labels,
        default_train=train,
        default_test=test,
        load=FileLoader(name, folder, ids),
    )


def require_root(name: str, root: Path | None, layout: str) -> Path:
    """``root`` as an existing folder, or a DatasetError saying what to pass."""
    if root is None:
        raise DatasetError(f"{name}: no dataset root given; pass the folder laid out as {layout}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset root {root} does not exist; expected {layout}")
    return root


def _images_folder(name: str, root: Path | None, layout: str) -> Path:
    root = require_root(name, root, layout)
    folder = root / "images"
    if folder.is_dir():
        return folder
    hint = ""
    if root.name == "images" or any(
        is_image_file(f) for d in root.iterdir() if d.is_dir() for f in d.iterdir()
    ):
        hint = f"; {root} holds class folders itself: pass its parent, or use the 'imagefolder' dataset"
    raise DatasetError(f"{name}: no images/ folder in {root}; expected {layout}{hint}")


def _paper_folder_dataset(name: str, full_size: int, example: str) -> Callable[..., LabelledImages]:
    """The loader of a paper dataset stored as ``<root>/images/<class folder>/<image>``."""
    layout = f"<root>/images/<class folder>/<image>, e.g. images/{example}"

    def build(
        root: Path | None,
        num_train_classes: int = full_size // 2,
        partition: str | None = None,
        partition_seed: int = 0,
        train_classes: ClassList | None = None,
        test_classes: ClassList | None = None,
    ) -> LabelledImages:
        folder = _images_folder(name, root, layout)
        classes = scan_class_folders(name, folder, layout)
        given = train_classes is not None or test_classes is not None
        if not given and not 0 < num_train_classes < len(classes):
            raise DatasetError(
                f"{name}: found {len(classes)} classes in {folder} but the default split puts the first "
                f"{num_train_classes} in train and needs at least one test class ({name} has {full_size} "
                "classes); the copy looks incomplete, or pass num_train_classes= for a subset"
            )
        train, test = initial_partition(
            name,
            list(classes),
            partition=partition,
            partition_seed=partition_seed,
            train_classes=train_classes,
            test_classes=test_classes,
            num_train=num_train_classes,
        )
        return images_from_class_folders(name, folder, classes, train, test)

    build.__name__ = build.__qualname__ = f"load_{name}"
    build.__doc__ = (
        f"{name} from ``{layout}``: sorted classes, the first {full_size // 2} of {full_size} train "
        "(ooDML's default split); ``partition``, ``train_classes``, ``test_classes``: another initial "
        "partition (``tasks.data.partition``)."
    )
    return build


load_cub200 = _paper_folder_dataset(
    "cub200", 200, "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg"
)
load_cars196 = _paper_folder_dataset("cars196", 196, "AM General Hummer SUV 2000/00163.jpg")


def load_imagefolder(
    root: Path | None,
    train_fraction: float = 0.5,
    name: str = "imagefolder",
    partition: str | None = None,
    partition_seed: int = 0,
    train_classes: ClassList | None = None,
    test_classes: ClassList | None = None,
) -> LabelledImages:
    """Any ``<root>/<class>/<image>`` tree; by default the first ``train_fraction`` of sorted classes is
    the train split (``partition``, ``train_classes``, ``test_classes``: ``tasks.data.partition``).

    ``name`` names the dataset (in results, cache keys and messages).
    """
    layout = "<root>/<class folder>/<image>"
    folder = require_root(name, root, layout)
    train_count(name, 2, train_fraction)  # a bad fraction is refused before the folder is scanned
    classes = scan_class_folders(name, folder, layout)
    train, test = initial_partition(
        name,
        list(classes),
        train_fraction=train_fraction,
        partition=partition,
        partition_seed=partition_seed,
        train_classes=train_classes,
        test_classes=test_classes,
    )
    return images_from_class_folders(name, folder, classes, train, test)
