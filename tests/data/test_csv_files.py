"""The CSV/TSV dataset: columns by name, delimiters, the side column, and errors naming file, line, column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.data import DatasetError, build_dataset, dataset_options


def _image(path: Path, colour: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (colour, 100, 50)).save(path)


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    """tmp_path/img/<k>.png for k in 0..7."""
    for k in range(8):
        _image(tmp_path / "img" / f"{k}.png", 30 * k)
    return tmp_path


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_with_paths_relative_to_its_folder(pictures: Path) -> None:
    rows = [
        f"img/{k}.png,{'bird' if k < 2 else 'cat' if k < 4 else 'dog' if k < 6 else 'eel'}" for k in range(8)
    ]
    listed = _write(pictures / "list.csv", ["path,label", *rows])
    images = build_dataset("csv", listed)
    assert images.name == "csv" and images.root == pictures
    assert images.image_ids[:2] == ("img/0.png", "img/1.png") and images.labels[2] == "cat"
    assert images.default_train == ("bird", "cat") and images.default_test == ("dog", "eel")
    assert np.asarray(images.load(3))[5, 5, 0] == pytest.approx(90, abs=3)
    assert "name" in dataset_options("csv") and "image_root" in dataset_options("csv")


def test_tsv_side_column_extra_columns_and_image_root(pictures: Path) -> None:
    lists = pictures / "lists"
    lists.mkdir()
    rows = [
        "label\tnote\tpath\tside",
        "a\tx\t0.png\ttrain",
        "a\t\t./1.png\tTrain",
        "b\t\t2.png\ttest",
        "c\t\t3.png\ttest",
    ]
    images = build_dataset(
        "csv", _write(lists / "birds.tsv", rows), image_root=str(pictures / "img"), name="birds"
    )
    assert images.name == "birds" and images.root == pictures / "img"
    assert images.image_ids == ("0.png", "1.png", "2.png", "3.png")
    assert images.default_train == ("a",) and images.default_test == ("b", "c")
    # a partition option takes precedence over the column
    again = build_dataset("csv", lists / "birds.tsv", image_root=str(pictures / "img"), train_classes=["b"])
    assert again.default_train == ("b",) and again.default_test == ("a", "c")


@pytest.mark.parametrize(("suffix", "delimiter"), [(".txt", ";"), (".list", "\t"), (".dat", "|")])
def test_other_extensions_sniff_the_delimiter(pictures: Path, suffix: str, delimiter: str) -> None:
    rows = [delimiter.join(r) for r in (["path", "label"], ["img/0.png", "x"], ["img/1.png", "y"])]
    images = build_dataset("csv", _write(pictures / f"list{suffix}", rows))
    assert images.labels == ("x", "y")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["path,label", "img/0.png,a", "img/9.png,b"],
            r"list.csv: line 3, column path: image file .*img/9.png does not exist",
        ),
        (
            ["path,label", "img/0.png,a", "img/1.png, "],
            r"list.csv: line 3, column label: empty label for image 'img/1.png'",
        ),
        (["path,label", ",a"], r"list.csv: line 2, column path: empty image path"),
        (
            ["path,label", "img/0.png,a", "img/1.png,b", "./img/0.png,c"],
            r"line 4, column path: image './img/0.png' is already listed on line 2",
        ),
        (
            ["path,label,side", "img/0.png,a,train", "img/1.png,b,val"],
            r"line 3, column side: unknown side 'val'; allowed: train, test",
        ),
        (
            ["path,label,side", "img/0.png,a,train", "img/1.png,a,test"],
            r"line 3, column side: class 'a' is on side test here but on side train on line 2",
        ),
        (["path,label,side", "img/0.png,a,train", "img/1.png,b,train"], r"column side names no test class"),
        (["img/0.png,a", "img/1.png,b"], r"list.csv: line 1: the header lacks the column\(s\) path, label"),
        (
            ["file,label", "img/0.png,a"],
            r"the header lacks the column\(s\) path \(found \['file', 'label'\]\)",
        ),
        (["path,label"], r"the header is followed by no image rows"),
        (
            ["path,label", "img/0.png,a"],
            r"found 1 class\(es\); a train/test partition needs at least 2 classes",
        ),
    ],
)
def test_bad_rows_name_file_line_and_column(pictures: Path, rows: list[str], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        build_dataset("csv", _write(pictures / "list.csv", rows))


def test_missing_or_misnamed_list_file(pictures: Path) -> None:
    with pytest.raises(DatasetError, match=r"list file .*nope.csv does not exist"):
        build_dataset("csv", pictures / "nope.csv")
    with pytest.raises(DatasetError, match="root names the list file itself, not its folder"):
        build_dataset("csv", pictures)
    with pytest.raises(DatasetError, match="no list file given"):
        build_dataset("csv", None)
    with pytest.raises(DatasetError, match="cannot tell the delimiter"):
        build_dataset("csv", _write(pictures / "list.txt", ["pathlabel", "x"]))
