"""Bad input (issue 6): every kind is refused with an error naming the file or field and the fix, and a
refused ``oodml run`` leaves nothing behind (``refused`` in conftest.py checks exit code 2, one error on
stderr, no file written, no Ray started).

The data is a tiny ImageFolder tree of generated JPEGs with a hand-written split file, so the real entry
point runs end to end up to the point where a study would start; trials use the glyph CNN on it.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from study.expand import DatasetPlan, trial_config
from study.overrides import apply_overrides
from study.preflight import check_inputs
from study.spec import load_spec
from tasks.config import TrialConfig
from tasks.data import build_dataset
from tasks.splits.files import Split, SplitFile, write_json
from tasks.train import CheckpointError
from tasks.trial import run_trial

TRAIN = [f"c{i:02d}" for i in range(6)]  # split_train c00-c03, split_val c04-c05
TEST = [f"c{i:02d}" for i in range(6, 12)]
SIZES = {c: 6 for c in TRAIN + TEST}


def episodes(test: list[str], shots: int) -> dict[int, list[dict[str, list[str]]]]:
    return {shots: [{c: [f"{c}/img{k}.jpg" for k in range(shots)] for c in test}]}


def write_split(path: Path, train=TRAIN, test=TEST, shots: int = 2, episode_classes=None) -> Path:
    """One split keyed "0" (split_train c00-c03), with one episode of ``shots`` support images a class."""
    split = Split(
        id=1,
        key="0",
        fid=1.0,
        train=train,
        test=test,
        split_train=train[:4],
        split_val=train[4:],
        episodes=episodes(test if episode_classes is None else episode_classes, shots),
    )
    return write_json(SplitFile(splits=[split]), path)


@pytest.fixture
def spec(tmp_path: Path, image_tree: Callable[..., Path]) -> dict:
    """A valid study on a 12-class ImageFolder (6 JPEGs a class) with a split file: what the tests break."""
    root = image_tree(tmp_path / "data", SIZES)
    return {
        "name": "bad-input",
        "datasets": [
            {
                "name": "imagefolder",
                "root": str(root),
                "split_file": str(write_split(tmp_path / "splits.json")),
            }
        ],
        "methods": [{"name": "triplet"}],
        "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
        "training": {
            "epochs": 1,
            "batch_size": 8,
            "samples_per_class": 2,
            "iterations_per_epoch": 2,
            "with_nmi": False,
            "record_test_curve": False,
        },
        "fewshot": {"budgets": [0, 2], "iterations": {2: 3}, "batch_size": 8},
        "tuning": {"trials": 0},
        "storage": {"root": str(tmp_path / "study")},
    }


def changed(spec: dict, overrides: dict) -> dict:
    return apply_overrides(copy.deepcopy(spec), overrides)


def test_the_unbroken_inputs_pass_the_checks(spec: dict) -> None:
    """The control: every refusal below comes from what its test breaks."""
    lines: list[str] = []
    check_inputs(load_spec(spec), lines.append)
    assert lines == [f"datasets.0 (imagefolder): checking 72 images under {spec['datasets'][0]['root']}"]


# --- config -------------------------------------------------------------------------------------


def test_missing_pretrained_weights_say_where_to_put_them(spec, refused, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-cache"))
    message = refused(changed(spec, {"model.backbone": "resnet18", "model.pretrained": True}))
    assert message.startswith("model.pretrained: pretrained weights for backbone 'resnet18' not found")
    assert str(tmp_path / "empty-torch-cache") in message and "pretrained=False" in message


def test_a_relative_weights_path_is_resolved_and_checked(spec, refused, tmp_path) -> None:
    message = refused(changed(spec, {"model.pretrained": "weights/glyphs.pt"}))  # run from tmp_path
    assert (
        message
        == f"model.pretrained: pretrained weights file {tmp_path / 'weights/glyphs.pt'} does not exist"
    )


def test_unknown_key_names_the_file_the_key_and_the_closest(spec, refused, tmp_path) -> None:
    message = refused(changed(spec, {"training.epoch": 3}))
    assert message.startswith(f"{tmp_path / 'study.yaml'}: invalid study specification")
    assert "training.epoch: unknown key; allowed: " in message and "did you mean 'epochs'?" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"training.epochs": "many"}, "training.epochs: Input should be a valid integer"),
        ({"seeds": "zero"}, "seeds: Input should be a valid list"),
        ({"fewshot.budgets": [0, "two"]}, "fewshot.budgets.1: Input should be a valid integer"),
        (
            {"datasets.0.unreadable_images": "ignore"},
            "datasets.0.unreadable_images: Input should be 'fail' or 'skip'",
        ),
    ],
)
def test_wrong_type_names_the_field(spec, refused, overrides, expected) -> None:
    assert expected in refused(changed(spec, overrides))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"methods.0.name": "tripplet"},
            "methods.0.name: method: unknown name 'tripplet'; did you mean 'triplet'?",
        ),
        (
            {"model.backbone": "resnet5"},
            "backbone: unknown backbone 'resnet5'; did you mean 'resnet50', 'resnet51q', 'resnet50t'? "
            "(built in: resnet50, resnet101, resnet18, glyph_cnn; or any timm model)",
        ),
        (
            {"datasets.0.name": "imagefoldr"},
            "datasets.0.name: dataset: unknown name 'imagefoldr'; did you mean",
        ),
        (
            {"datasets.0.options": {"train_fractio": 0.5}},
            "unknown name 'train_fractio'; did you mean 'train_fraction'?",
        ),
        ({"methods.0.hyperparameters": {"margn": 0.1}}, "unknown name 'margn'; did you mean 'margin'?"),
    ],
)
def test_unknown_names_suggest_the_closest(spec, refused, overrides, expected) -> None:
    message = refused(changed(spec, overrides))
    assert expected in message and ("(allowed: " in message or "(built in: " in expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"methods": []}, "methods: List should have at least 1 item, got an empty list"),
        ({"seeds": []}, "seeds: List should have at least 1 item, got an empty list"),
        ({"datasets": []}, "datasets: List should have at least 1 item, got an empty list"),
        (
            {"fewshot.budgets": []},
            "fewshot.budgets: expected distinct shot counts >= 0, got an empty list; use [0]",
        ),
        (
            {"datasets.0.evaluate": []},
            "datasets.0.evaluate: empty list of split keys: list the keys to evaluate",
        ),
        (
            {"datasets.0.split_file": None, "datasets.0.splits": {"select": []}},
            "datasets.0.splits.select: expected a number of splits >= 1 or a non-empty list of split keys",
        ),
    ],
)
def test_empty_grids_are_refused(spec, refused, overrides, expected) -> None:
    assert expected in refused(changed(spec, overrides))


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        (
            {"batch_size": 9},
            "training: batch_size 9 must be divisible by samples_per_class 2 (a batch holds whole groups "
            "of 2 images per class); use batch_size 8 or 10",
        ),
        ({"samples_per_class": 0}, "training.samples_per_class: Input should be greater than or equal to 1"),
        (  # valid on its own, impossible on this split file: checked against it before the study starts
            {"batch_size": 12},
            "training.batch_size: a batch of 12 images with samples_per_class 2 needs 6 distinct classes, "
            "but split 0 of datasets.0.split_file",
        ),
    ],
)
def test_impossible_batch_settings_are_refused(spec, refused, training, expected) -> None:
    message = refused(changed(spec, {f"training.{k}": v for k, v in training.items()}))
    assert expected in message
    if training == {"batch_size": 12}:
        assert "trains on 4 classes (its split_train); lower training.batch_size to at most 8" in message


def test_shots_beyond_the_smallest_test_class_are_refused(spec, refused, tmp_path, image_tree) -> None:
    root = image_tree(tmp_path / "small", {**SIZES, "c09": 4})  # 4 images: 3 shots leave 1 query, no pair
    split_file = write_split(tmp_path / "three-shot.json", shots=3, episode_classes=set(TEST) - {"c09"})
    bad = changed(
        spec,
        {
            "datasets.0.root": str(root),
            "datasets.0.split_file": str(split_file),
            "fewshot.budgets": [0, 3],
            "fewshot.iterations": {3: 3},
        },
    )
    message = refused(bad)
    assert message.startswith(
        "fewshot.budgets: 3 shots need 5 images in a test class (3 support, at least 2 queries"
    )
    assert (
        f"split 0 of datasets.0.split_file ({split_file}) has test classes with fewer: c09 (4 images)"
        in message
    )
    assert "lower fewshot.budgets to at most 2, or set fewshot.small_classes: leave_out" in message
    # the way out the message names works, and says what it leaves out
    lines: list[str] = []
    check_inputs(load_spec(changed(bad, {"fewshot.small_classes": "leave_out"})), lines.append)
    assert lines[1:] == [
        "fewshot.budgets: 3 shots leave out 1 of 6 classes with fewer than 5 images "
        "(fewshot.small_classes: leave_out; counted in left_out_classes): c09 (4 images)"
    ]


def test_five_shots_on_classes_of_six_images_are_refused_either_way(spec, refused, tmp_path) -> None:
    """Issue 11: 5 support images of a 6-image class leave one query, whose gallery holds no positive
    (Recall@1 0, mAP@R NaN); with every test class that small, leaving them out leaves nothing to score."""
    split_file = write_split(tmp_path / "five-shot.json", shots=5)
    five = {"datasets.0.split_file": str(split_file), "fewshot.budgets": [0, 5], "fewshot.iterations": {5: 3}}
    message = refused(changed(spec, five))
    assert message.startswith("fewshot.budgets: 5 shots need 7 images in a test class")
    assert "has test classes with fewer: c06 (6 images), c07 (6 images)" in message
    assert (
        "and 1 more; lower fewshot.budgets to at most 4, or set fewshot.small_classes: leave_out" in message
    )
    message = refused(changed(spec, {**five, "fewshot.small_classes": "leave_out"}))
    assert message.startswith("fewshot.budgets: 5 shots need 7 images in a test class")
    assert message.endswith(
        "leaving them out (fewshot.small_classes: leave_out) keeps 0 of 6, and an episode needs 2 classes "
        "to score: lower fewshot.budgets to at most 4"
    )


def test_shots_beyond_the_smallest_class_are_refused_before_splits_are_built(
    spec, refused, tmp_path, image_tree
) -> None:
    root = image_tree(tmp_path / "small", {**SIZES, "c09": 3})
    build = {"datasets.0.root": str(root), "datasets.0.split_file": None, "datasets.0.splits": {"select": 2}}
    message = refused(changed(spec, build))
    assert message.startswith("fewshot.budgets: 2 shots need 4 images in a test class")
    assert "dataset imagefolder (datasets.0) has classes (any class can become a test class" in message
    assert (
        "c09 (3 images); lower fewshot.budgets to at most 1, or set fewshot.small_classes: leave_out"
        in message
    )
    # whole-class support (docs/protocol.md section 5, SOP's default) takes every image of a support class:
    # no limit
    weights = tmp_path / "resnet50.pth"
    weights.touch()  # preflight only asks where the FID weights are
    whole = {"datasets.0.splits": {"select": 2, "support": "classes", "weights": str(weights)}}
    check_inputs(load_spec(changed(changed(spec, build), whole)), lambda line: None)
    # ... up to what the test classes hold: 6 classes of 33 images leave 2 query classes for 3 shots
    message = refused(
        changed(changed(spec, build), {**whole, "fewshot.budgets": [0, 5], "fewshot.iterations": {5: 3}})
    )
    assert message.startswith(
        "fewshot.budgets: [5] shots with whole-class support (docs/protocol.md section 5) need"
    )
    assert (
        "the 6 test classes of the default split of datasets.0 (imagefolder) hold 33 images, enough for "
        in message
    )
    assert message.endswith("at most 3 shots: lower fewshot.budgets")
    more_built = {"datasets.0.splits": {**whole["datasets.0.splits"], "shots": [2, 5]}}
    message = refused(changed(changed(spec, build), more_built))
    assert message.startswith("datasets.0.splits.shots: [5] shots with whole-class support")
    assert message.endswith("at most 3 shots: lower datasets.0.splits.shots")


def test_missing_FID_weights_are_refused_before_splits_are_built(
    spec, refused, tmp_path, image_tree, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    root = image_tree(tmp_path / "tree", SIZES)
    build = {"datasets.0.root": str(root), "datasets.0.split_file": None, "datasets.0.splits": {"select": 2}}
    message = refused(changed(spec, build))
    expected = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert message.startswith(
        "datasets.0.splits.weights: resnet50 features build this dataset's splits: ResNet50 ImageNet "
        f"weights (IMAGENET1K_V1) not found at {expected}, and not downloaded because OODML_OFFLINE is set"
    )
    assert "or pass weights=" in message
    message = refused(changed(spec, {**build, "datasets.0.splits": {"extractor": "resnet5"}}))
    assert message.endswith(
        "\n  datasets.0.splits.extractor: feature extractor: unknown name 'resnet5'; did you mean 'resnet50'? "
        "(allowed: glyph-classifier, resnet50)"
    )


# --- data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("builds_splits", [False, True], ids=["split-file", "splits-built-by-the-study"])
def test_missing_dataset_root(spec, refused, tmp_path, builds_splits) -> None:
    overrides = {"datasets.0.root": str(tmp_path / "nowhere")}
    if builds_splits:
        overrides |= {"datasets.0.name": "cub200", "datasets.0.split_file": None}
    message = refused(changed(spec, overrides))
    layout = "<root>/images/<class folder>/<image>" if builds_splits else "<root>/<class folder>/<image>"
    assert message.startswith("datasets.0.root: ")
    assert f"dataset root {tmp_path / 'nowhere'} does not exist; expected {layout}" in message


def test_wrong_folder_layout_names_the_expected_one(spec, refused, tmp_path) -> None:
    overrides = {"datasets.0.name": "cub200", "datasets.0.split_file": None}  # cub200 wants <root>/images/
    message = refused(changed(spec, overrides))
    assert message.startswith(f"datasets.0.root: cub200: no images/ folder in {tmp_path / 'data'}")
    assert "expected <root>/images/<class folder>/<image>" in message
    assert "holds class folders itself: pass its parent, or use the 'imagefolder' dataset" in message


def _break_images(root: Path) -> tuple[str, str]:
    """A truncated JPEG in a validation class and a text file named .jpg in a test class."""
    truncated = root / "c05" / "img3.jpg"
    truncated.write_bytes(truncated.read_bytes()[:150])
    (root / "c07" / "img4.jpg").write_text("not an image")  # not a support image of the split file
    return "c05/img3.jpg", "c07/img4.jpg"


def test_unreadable_images_fail_naming_each_file(spec, refused) -> None:
    names = _break_images(Path(spec["datasets"][0]["root"]))
    message = refused(spec)
    assert message.startswith(f"datasets.0: 2 unreadable images under {spec['datasets'][0]['root']}:")
    assert all(f"\n  {name}: " in message for name in names)
    assert "replace them, or set datasets.0.unreadable_images: skip to leave them out" in message


def test_unreadable_images_are_skipped_with_a_report_when_the_spec_says_so(
    spec, tmp_path, one_torch_thread
) -> None:
    names = _break_images(Path(spec["datasets"][0]["root"]))
    skipping = load_spec(changed(spec, {"datasets.0.unreadable_images": "skip"}))
    lines: list[str] = []
    check_inputs(skipping, lines.append)
    assert lines[1] == "datasets.0 (imagefolder): leaving out 2 unreadable images (unreadable_images: skip):"
    assert [line.split(":")[0].strip() for line in lines[2].splitlines()] == list(names)

    # the trial the study schedules leaves them out too: it validates on c05, whose broken image would fail it
    plan = DatasetPlan.load(skipping.datasets[0], Path(skipping.datasets[0].split_file), skipping)
    config = trial_config(skipping, plan, skipping.methods[0], plan.default, 0, {}, tuning=True)
    assert config.data.options == {"unreadable_images": "skip"}
    record = run_trial(config, tmp_path / "trial")
    assert 0 <= record.measurement("val", "recall@1") <= 1
    kept = build_dataset("imagefolder", config.data.root, **config.data.options)
    assert len(kept) == 70 and not set(names) & set(kept.image_ids)


def test_split_file_naming_classes_not_in_the_dataset(spec, refused, tmp_path) -> None:
    split_file = write_split(tmp_path / "other.json", test=[*TEST[:-1], "x99"])
    message = refused(changed(spec, {"datasets.0.split_file": str(split_file)}))
    assert message.startswith(f"split 1 (key 0) of datasets.0.split_file ({split_file}) names 1 classes that")
    assert "not in dataset imagefolder" in message and "e.g. ['x99']" in message
    assert "check datasets.0.root and datasets.0.options, or rebuild the split file" in message


def test_split_file_naming_support_images_not_in_the_dataset(spec, refused, tmp_path) -> None:
    (Path(spec["datasets"][0]["root"]) / "c08" / "img1.jpg").unlink()
    message = refused(spec)
    assert "its 2-shot episode 0 uses support image 'c08/img1.jpg' of class 'c08', which dataset" in message
    assert "restore the images or rebuild the split file" in message


def _overlapping(path: Path) -> Path:
    """The ooDML layout, or our JSON one, with class c03 on both sides."""
    split = {
        "train": TRAIN,
        "test": [*TEST, "c03"],
        "fid": 1.0,
        "split_train": TRAIN[:4],
        "split_val": TRAIN[4:],
    }
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps({1: split}))
    else:
        path.write_text(json.dumps({"format": "oodml-splits", "splits": [{"id": 1, "key": "0", **split}]}))
    return path


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_split_file_with_classes_on_both_sides(spec, refused, tmp_path, suffix) -> None:
    split_file = _overlapping(tmp_path / f"overlap{suffix}")
    message = refused(changed(spec, {"datasets.0.split_file": str(split_file)}))
    assert message.startswith(f"datasets.0.split_file: {split_file}: ")
    assert "split 1 (key " in message and "train and test share classes ['c03'] (1 in all)" in message
    assert "a class belongs to one side only: rebuild the split file" in message


# --- files --------------------------------------------------------------------------------------


class Payload:
    """Pickles as a call of ``function(*args)``: what a malicious file would run on load."""

    def __init__(self, function: Callable, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# Each creates the file it is given if it runs (a name ending in .npy, which np.save would append).
PAYLOADS: dict[str, Callable[[Path], Payload]] = {
    "os.system": lambda marker: Payload(os.system, f"touch {shlex.quote(str(marker))}"),
    "Path.touch": lambda marker: Payload(Path.touch, marker),
    "exec": lambda marker: Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    "numpy.save": lambda marker: Payload(np.save, marker, np.zeros(1)),  # numpy, but not a scalar
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_split_pickle_asking_for_any_other_global_is_refused_and_nothing_runs(
    spec, refused, tmp_path, payload
) -> None:
    # outside tmp_path, which `refused` checks is left untouched
    marker = tmp_path.parent / f"{tmp_path.name}-ran.npy"
    evil_object = PAYLOADS[payload](marker)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({1: {"train": TRAIN, "test": TEST, "fid": evil_object}}))
    message = refused(changed(spec, {"datasets.0.split_file": str(evil)}))
    asked = f"{evil_object.function.__module__}.{evil_object.function.__qualname__}"  # e.g. posix.system
    assert message.startswith(
        f"datasets.0.split_file: {evil}: refused to load: the pickle asks for '{asked}'"
    )
    assert "Nothing in the file was executed" in message
    assert not marker.exists()


def _trial(spec: dict) -> TrialConfig:
    loaded = load_spec(spec)
    plan = DatasetPlan.load(loaded.datasets[0], Path(loaded.datasets[0].split_file), loaded)
    return trial_config(loaded, plan, loaded.methods[0], plan.default, 0, {}, tuning=True)


def test_resume_refuses_a_checkpoint_that_would_run_code(spec, tmp_path) -> None:
    marker, workdir = tmp_path / "ran", tmp_path / "trial"
    workdir.mkdir()
    torch.save(
        {"model": Payload(os.system, f"touch {shlex.quote(str(marker))}"), "epoch": 0}, workdir / "last.pt"
    )
    with pytest.raises(CheckpointError, match=r"(last|best)\.pt: refused: .* delete it to restart"):
        run_trial(_trial(spec), workdir)
    assert not marker.exists()


def test_selected_weights_that_would_run_code_are_refused(spec, tmp_path, one_torch_thread) -> None:
    config, workdir, marker = _trial(spec), tmp_path / "trial", tmp_path / "ran"
    run_trial(config, workdir)  # trained to the end: a rerun resumes past training and loads best.pt
    torch.save({"model": Payload(Path.touch, marker), "epoch": 0}, workdir / "best.pt")
    with pytest.raises(CheckpointError, match=r"(last|best)\.pt: refused: .* delete it to restart"):
        run_trial(config, workdir)
    assert not marker.exists()
