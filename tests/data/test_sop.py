"""Stanford Online Products loader: both info-file layouts, superclasses, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tasks.data import DatasetError, build_dataset

# (image_id, class_id, super_class_id, path): classes 1-3 train, 4-5 test
TRAIN = [
    (1, 1, 1, "bicycle_final/111_0.JPG"),
    (2, 1, 1, "bicycle_final/111_1.JPG"),
    (3, 2, 2, "chair_final/222_0.JPG"),
]
TRAIN += [(4, 3, 2, "chair_final/333_0.JPG"), (5, 3, 2, "chair_final/333_1.JPG")]
TEST = [
    (1, 4, 1, "bicycle_final/444_0.JPG"),
    (2, 5, 3, "mug_final/555_0.JPG"),
    (3, 5, 3, "mug_final/555_1.JPG"),
]


def write_sop(root: Path, info_folder: str, image_folder: str) -> None:
    for name, rows in (("Ebay_train.txt", TRAIN), ("Ebay_test.txt", TEST)):
        lines = ["image_id class_id super_class_id path"] + [" ".join(map(str, row)) for row in rows]
        (root / info_folder).mkdir(parents=True, exist_ok=True)
        (root / info_folder / name).write_text("\n".join(lines) + "\n")
        for *_, path in rows:
            (root / image_folder / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (100, 20, 20)).save(root / image_folder / path, "JPEG")


@pytest.mark.parametrize(("info_folder", "image_folder"), [("Info_Files", "images"), (".", ".")])
def test_sop_layouts(tmp_path: Path, info_folder: str, image_folder: str) -> None:
    write_sop(tmp_path, info_folder, image_folder)
    images = build_dataset("sop", tmp_path)
    assert images.root == tmp_path / image_folder
    assert images.default_train == ("1", "2", "3") and images.default_test == ("4", "5")
    assert images.image_ids[0] == "bicycle_final/111_0.JPG" and images.labels[-1] == "5"
    assert images.superclasses == {"1": "bicycle", "2": "chair", "3": "chair", "4": "bicycle", "5": "mug"}
    assert images.load(len(images) - 1).size == (16, 16)


def test_sop_missing_info_file(tmp_path: Path) -> None:
    write_sop(tmp_path, "Info_Files", "images")
    (tmp_path / "Info_Files" / "Ebay_test.txt").unlink()
    with pytest.raises(
        DatasetError, match=r"Ebay_test.txt not found in .*Info_Files or .*expected <root>/Info_Files/"
    ):
        build_dataset("sop", tmp_path)


def test_sop_bad_header_and_missing_images(tmp_path: Path) -> None:
    write_sop(tmp_path, "Info_Files", "images")
    (tmp_path / "images").rename(tmp_path / "pictures")
    with pytest.raises(DatasetError, match=r"image bicycle_final/111_0.JPG is neither at .*images.* nor at"):
        build_dataset("sop", tmp_path)
    (tmp_path / "Info_Files" / "Ebay_train.txt").write_text("id class path\n1 1 a.jpg\n")
    with pytest.raises(
        DatasetError, match="must start with the header line 'image_id class_id super_class_id path'"
    ):
        build_dataset("sop", tmp_path)
