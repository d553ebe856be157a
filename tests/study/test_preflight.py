"""The preflight (``study.preflight``): a list of named checks, each run once per dataset entry (or once on
the spec), whose first refusal names its check; the inputs it reads are read once and handed on.

The data is a 12-class ImageFolder tree of generated JPEGs with a hand-written split file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import study.inputs
from study.preflight import CHECKS, Check, PreflightError, check_inputs
from study.spec import SpecError, load_spec
from tasks.splits.files import Split, SplitFile, write_json

TRAIN = [f"c{i:02d}" for i in range(6)]
TEST = [f"c{i:02d}" for i in range(6, 12)]


def _tree(folder: Path, images: int = 6) -> Path:
    for c, name in enumerate(TRAIN + TEST):
        (folder / name).mkdir(parents=True)
        for k in range(images):
            Image.new("RGB", (16, 16), (15 * c, 40 * k, 200)).save(folder / name / f"img{k}.jpg")
    return folder


def _split_file(path: Path, test: list[str] = TEST) -> Path:
    episodes = {2: [{c: [f"{c}/img{k}.jpg" for k in range(2)] for c in test}]}
    split = Split(
        id=1,
        key="0",
        fid=1.0,
        train=TRAIN,
        test=test,
        split_train=TRAIN[:4],
        split_val=TRAIN[4:],
        episodes=episodes,
    )
    return write_json(SplitFile(splits=[split]), path)


@pytest.fixture
def spec(tmp_path: Path) -> dict:
    """A valid study of one ImageFolder entry with a split file, and a second entry on the same data."""
    root, split_file = _tree(tmp_path / "data"), _split_file(tmp_path / "splits.json")
    entry = {"kind": "imagefolder", "root": str(root), "split_file": str(split_file)}
    return {
        "name": "preflight",
        "datasets": [{"name": "first", **entry}, {"name": "second", **entry}],
        "methods": [{"name": "triplet"}],
        "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
        "training": {"epochs": 1, "batch_size": 8, "samples_per_class": 2},
        "fewshot": {"budgets": [0, 2], "iterations": {2: 3}, "batch_size": 8},
        "tuning": {"trials": 0},
        "storage": {"root": str(tmp_path / "study")},
    }


def test_each_check_has_a_name_of_its_own_and_says_what_it_checks() -> None:
    names = [check.name for check in CHECKS]
    assert len(set(names)) == len(names)
    assert all(check.about and check.scope in ("study", "dataset") for check in CHECKS)


def test_a_new_check_is_one_entry_run_on_each_dataset_and_named_with_its_refusal(spec: dict) -> None:
    seen: list[str] = []

    def one_class_per_folder(dataset) -> None:
        """Every class of the dataset is a folder of its own (a made-up rule)."""
        seen.append(dataset.entry.name)
        if dataset.entry.name == "second":
            raise SpecError(f"{dataset.field}.root: refused by the new check")

    lines: list[str] = []
    checks = [*CHECKS, Check("one class per folder", one_class_per_folder)]
    with pytest.raises(PreflightError) as caught:
        check_inputs(load_spec(spec), lines.append, checks)
    assert seen == ["first", "second"]
    assert str(caught.value) == "datasets.1.root: refused by the new check"
    assert caught.value.check == "one class per folder"
    assert lines[-1] == (
        "preflight: check 'one class per folder' (Every class of the dataset is a folder of its own "
        "(a made-up rule).) refused the inputs"
    )


def test_a_spec_check_runs_once_before_any_image_is_read(spec: dict) -> None:
    calls: list[str] = []

    def named_study(checked) -> None:
        """The study has a name (a made-up rule)."""
        calls.append(checked.name)

    lines: list[str] = []
    check_inputs(load_spec(spec), lines.append, [Check("named study", named_study, scope="study")])
    assert calls == ["preflight"] and lines == []


def test_a_refusal_names_the_check_that_found_it(spec: dict, tmp_path: Path) -> None:
    other = _split_file(tmp_path / "other.json", test=[*TEST[:-1], "x99"])
    spec["datasets"][1]["split_file"] = str(other)
    with pytest.raises(PreflightError) as caught:
        check_inputs(load_spec(spec), lambda line: None)
    assert caught.value.check == "split classes"
    assert str(caught.value).startswith(f"split 1 (key 0) of datasets.1.split_file ({other}) names 1 classes")


def test_the_inputs_are_read_once_and_handed_to_the_study(spec: dict, monkeypatch) -> None:
    """Each dataset is built and each split file read once, by the checks; the plans the study expands
    are the ones they read."""
    reads: list[str] = []
    for name in ("build_dataset", "read_split_file"):
        real = getattr(study.inputs, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(study.inputs, name, counted)
    loaded = load_spec(spec)
    inputs = check_inputs(loaded, lambda line: None)
    plans = inputs.plans([Path(d.split_file) for d in loaded.datasets])
    assert sorted(reads) == ["build_dataset"] * 2 + ["read_split_file"] * 2
    assert [p.entry.name for p in plans] == ["first", "second"]
    assert plans == [d.plan for d in inputs.datasets]
