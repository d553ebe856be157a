"""CUB200 / CARS196 / ImageFolder loaders on tiny trees of real JPEGs, and verify_images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.data import DatasetError, build_dataset, find_unreadable, verify_images
from tasks.data.folders import FileLoader

CLASSES = ["001.Albatross", "002.Auklet", "003.Blackbird", "004.Bobolink", "005.Bunting", "006.Catbird"]


def write_tree(folder: Path, classes: list[str] = CLASSES, per_class: int = 3, ext: str = ".jpg") -> None:
    """``per_class`` 16x16 images of a distinct flat colour in each class folder."""
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for k in range(per_class):
            Image.new("RGB", (16, 16), (40 * c, 60 * k, 200)).save(folder / name / f"img{k}{ext}")


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    write_tree(tmp_path / "cub" / "images")
    return tmp_path / "cub"


def test_cub200_sorted_classes_first_half_train(cub_root: Path) -> None:
    images = build_dataset("cub200", cub_root, num_train_classes=3)
    assert images.default_train == tuple(CLASSES[:3]) and images.default_test == tuple(CLASSES[3:])
    assert images.root == cub_root / "images"
    assert len(images) == 18 and images.image_ids[:2] == ("001.Albatross/img0.jpg", "001.Albatross/img1.jpg")
    assert images.labels[3] == "002.Auklet"
    picture = images.load(4)
    assert picture.size == (16, 16) and picture.mode == "RGB"
    assert np.allclose(np.asarray(picture)[8, 8], (40, 60, 200), atol=8)  # JPEG is lossy


def test_paper_split_on_an_incomplete_copy_says_what_to_do(cub_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"first 100 in train.*has 200 classes.*num_train_classes"):
        build_dataset("cub200", cub_root)


def test_cars196_first_98_of_196(tmp_path: Path) -> None:
    names = [f"Car {i:03d}" for i in range(196)]
    for name in names:
        (tmp_path / "images" / name).mkdir(parents=True)
        (tmp_path / "images" / name / "00001.jpg").touch()  # only listed, never decoded here
    images = build_dataset("cars196", tmp_path)
    assert images.default_train == tuple(names[:98]) and images.default_test == tuple(names[98:])


def test_imagefolder_extensions_hidden_files_and_train_fraction(tmp_path: Path) -> None:
    write_tree(tmp_path, CLASSES[:4], per_class=1, ext=".PNG")
    Image.new("L", (8, 8)).save(tmp_path / CLASSES[0] / "extra.WebP")
    (tmp_path / CLASSES[0] / ".hidden.jpg").write_bytes(b"junk")
    (tmp_path / CLASSES[0] / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    images = build_dataset("imagefolder", tmp_path)
    assert images.image_ids[:2] == (f"{CLASSES[0]}/extra.WebP", f"{CLASSES[0]}/img0.PNG")
    assert images.default_train == tuple(CLASSES[:2])
    assert build_dataset("imagefolder", tmp_path, train_fraction=0.75).default_test == (CLASSES[3],)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"cub200: dataset root .*nowhere does not exist; expected <root>/images/"
    ):
        build_dataset("cub200", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no dataset root given"):
        build_dataset("cars196", None)


def test_wrong_layout_names_the_expected_one(tmp_path: Path) -> None:
    write_tree(tmp_path / "photos")
    with pytest.raises(
        DatasetError, match=r"no images/ folder in .*expected <root>/images/<class folder>/<image>"
    ):
        build_dataset("cub200", tmp_path)
    with pytest.raises(DatasetError, match="holds class folders itself: pass its parent"):
        build_dataset("cub200", tmp_path / "photos")


def test_empty_class_folder(cub_root: Path) -> None:
    (cub_root / "images" / "007.Empty").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*007\.Empty holds no images"):
        build_dataset("cub200", cub_root, num_train_classes=3)


def test_truncated_jpeg_named_at_load_and_by_verify(cub_root: Path) -> None:
    bad = cub_root / "images" / CLASSES[1] / "img2.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    images = build_dataset("cub200", cub_root, num_train_classes=3)
    index = images.image_ids.index(f"{CLASSES[1]}/img2.jpg")
    with pytest.raises(DatasetError, match=rf"cannot read image {bad}"):
        images.load(index)
    with pytest.raises(
        DatasetError, match=rf"1 unreadable images .*\n  {CLASSES[1]}/img2.jpg: .+\n.*on_error='skip'"
    ):
        verify_images(images)
    kept, report = verify_images(images, on_error="skip")
    assert [(r.index, r.image_id) for r in report] == [(index, f"{CLASSES[1]}/img2.jpg")]
    assert len(kept) == 17 and f"{CLASSES[1]}/img2.jpg" not in kept.image_ids
    assert kept.load(index).size == (16, 16)  # positions after the dropped image map past it
    assert kept.image_ids[index] == images.image_ids[index + 1]


def test_verify_refuses_to_empty_a_class(tmp_path: Path) -> None:
    write_tree(tmp_path, CLASSES[:2], per_class=1)
    (tmp_path / CLASSES[1] / "img0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    images = build_dataset("imagefolder", tmp_path)
    with pytest.raises(DatasetError, match=r"classes \['002.Auklet'\] .* would have no images left"):
        verify_images(images, on_error="skip")


def test_registry_suggests_the_closest_name_and_lists_options(cub_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'cub2000'; did you mean 'cub200'\?"):
        build_dataset("cub2000", cub_root)
    with pytest.raises(
        DatasetError, match=r"cub200: unknown options \['train_fraction'\]; it accepts \['num_train"
    ):
        build_dataset("cub200", cub_root, train_fraction=0.5)


def test_verified_files_are_decoded_once_until_they_change(
    cub_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OODML_CACHE", str(tmp_path / "cache"))
    decoded: list[int] = []
    decode = FileLoader.check
    monkeypatch.setattr(FileLoader, "check", lambda self, i: decoded.append(i) or decode(self, i))
    images = build_dataset("cub200", cub_root, num_train_classes=3)
    assert find_unreadable(images) == [] and len(decoded) == 18
    decoded.clear()
    assert find_unreadable(images) == [] and decoded == []  # remembered: nothing decoded again

    changed = cub_root / "images" / CLASSES[4] / "img1.jpg"
    changed.write_bytes(changed.read_bytes()[:150])  # truncated later: new size, new mtime
    (problem,) = find_unreadable(images)
    assert problem.image_id == f"{CLASSES[4]}/img1.jpg" and decoded == [problem.index]
    decoded.clear()
    assert len(find_unreadable(images)) == 1 and decoded == [problem.index]  # a bad file is never remembered
