"""The ooDML code's SOP pickle (product ids in train/test, class ids elsewhere) translated to class ids."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from study.cli import main
from tasks.data import build_dataset
from tasks.splits.files import SplitFileError, read_split_file
from tasks.splits.sop_pickle import read_sop_pickle

# class_id -> product id, 3 images each; classes 1-6 in Ebay_train, 7-12 in Ebay_test
PRODUCTS = {c: str(111085122800 + 7 * c) for c in range(1, 13)}


def write_sop_tree(root: Path) -> None:
    for side, classes in (("train", range(1, 7)), ("test", range(7, 13))):
        lines = ["image_id class_id super_class_id path"]
        for c in classes:
            for k in range(3):
                path = f"chair_final/{PRODUCTS[c]}_{k}.JPG"
                lines.append(f"{len(lines)} {c} 1 {path}")
                (root / "images" / "chair_final").mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (c * 20, k * 60, 0)).save(root / "images" / path, "JPEG")
        (root / "Info_Files").mkdir(exist_ok=True)
        (root / "Info_Files" / f"Ebay_{side}.txt").write_text("\n".join(lines) + "\n")


def oodml_sop_pickle(path: Path, **changes) -> Path:
    """Two splits as the ooDML SOP loader reads them: numpy strings of product ids for train/test, numpy
    ints of class ids for the train/val division and the whole-class episodes."""
    product = lambda cs: [np.str_(PRODUCTS[c]) for c in cs]  # noqa: E731
    class_ids = lambda cs: [np.int64(c) for c in cs]  # noqa: E731
    splits = {
        1: {"train": product(range(1, 7)), "test": product(range(7, 13)), "fid": np.float64(3.4),
            "split_train": class_ids([1, 2, 3, 5]), "split_val": class_ids([4, 6]),
            "test_episodes": {2: {0: class_ids([7, 9]), 1: class_ids([8, 12])}}},
        2: {"train": product([1, 2, 3, 4, 5, 12]), "test": product([6, 7, 8, 9, 10, 11]), "fid": np.float64(24.6),
            "split_train": class_ids([1, 2, 3, 12]), "split_val": class_ids([4, 5]),
            "test_episodes": {2: {0: class_ids([6, 10])}}},
    }  # fmt: skip
    splits[1].update(changes)
    path.write_bytes(pickle.dumps(splits))
    return path


def test_product_ids_and_class_ids_become_one_naming(tmp_path):
    write_sop_tree(tmp_path / "sop")
    images = build_dataset("sop", tmp_path / "sop")
    split_file = read_sop_pickle(oodml_sop_pickle(tmp_path / "sop.pkl"), images)
    first, second = split_file.splits
    assert first.train == ["1", "2", "3", "4", "5", "6"] and first.test == [str(c) for c in range(7, 13)]
    assert (first.split_train, first.split_val) == (["1", "2", "3", "5"], ["4", "6"])
    assert first.episodes == {2: [["7", "9"], ["12", "8"]]} and round(first.fid, 1) == 3.4
    assert second.train == ["1", "2", "3", "4", "5", "12"] and second.episodes[2] == [["10", "6"]]
    assert set(first.test) | set(first.train) == set(images.classes)


def test_convert_command_writes_a_split_file_the_study_reads(tmp_path, capsys):
    write_sop_tree(tmp_path / "sop")
    out = tmp_path / "sop-splits.json"
    argv = ["splits", "convert-sop", str(oodml_sop_pickle(tmp_path / "sop.pkl"))]
    assert main([*argv, "--root", str(tmp_path / "sop"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    converted = read_split_file(out)
    assert [s.fid for s in converted.splits] == [3.4, 24.6]
    assert json.loads(out.read_text())["provenance"]["format"] == "oodml-sop-pickle"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"test": [np.str_("999")]}, r"test names products \['999'\] \(1 in all\) that no image"),
        ({"split_val": [np.int64(77)]}, r"split_val names class ids \['77'\] not in dataset sop"),
        ({"split_val": [np.int64(1)]}, r"split_train and split_val must divide the train classes"),
    ],
)
def test_a_pickle_that_does_not_match_the_dataset_is_refused(tmp_path, changes, message):
    write_sop_tree(tmp_path / "sop")
    images = build_dataset("sop", tmp_path / "sop")
    with pytest.raises(SplitFileError, match=message):
        read_sop_pickle(oodml_sop_pickle(tmp_path / "sop.pkl", **changes), images)
