import json
import re

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from study.cli import main
from tasks.splits.files import read_split_file


def test_build_from_features_then_show_both_formats(tmp_path, capsys):
    rng = np.random.default_rng(3)
    names = np.array([f"c{i:02d}" for i in range(50)])
    features = tmp_path / "features.npz"
    np.savez(
        features,
        class_names=names,
        class_means=rng.normal(size=(50, 40)) + np.linspace(0, 4, 50)[:, None],
        train=names[::2],
        test=names[1::2],
    )
    out = tmp_path / "splits"
    code = main(
        [
            "splits",
            "build",
            "--features",
            str(features),
            "--out",
            str(out),
            "--steps",
            "10",
            "--easier-steps",
            "5",
            "--removal-steps",
            "5",
            "--history",
            "3",
            "--easier-history",
            "3",
            "--select",
            "6",
        ]
    )
    assert code == 0
    # not a terminal: the progressions' progress as one plain line at the end (10 + 5 + at most 5 steps)
    assert re.search(r"split progressions: (1\d|20)/20 steps \(\d+%\), \d+ s, done", capsys.readouterr().err)
    saved = json.loads((out / "splits.json").read_text())
    assert set(saved["progressions"]) == {"harder", "easier", "removal"}
    assert {"key", "fid", "train", "test"} <= set(saved["progressions"]["harder"][0])
    assert len(saved["progressions"]["harder"]) == 10
    capsys.readouterr()
    assert main(["splits", "show", str(out / "splits.pkl"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and {"id", "key", "fid", "train_classes", "test_classes"} <= set(rows[0])
    assert main(["splits", "show", str(out / "splits.json")]) == 0
    assert "FID" in capsys.readouterr().out


def test_bad_invocations_fail_with_a_message(tmp_path, capsys):
    assert main(["splits", "build", "--out", str(tmp_path)]) == 2
    assert "exactly one source" in capsys.readouterr().err
    missing = tmp_path / "nope.npz"
    assert main(["splits", "build", "--features", str(missing), "--out", str(tmp_path)]) == 2
    assert "nope.npz" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


@pytest.mark.slow
def test_sop_builds_whole_class_episodes_by_default(tmp_path, capsys):
    """A tiny SOP tree through ResNet50 features (random weights from a file) to whole-class episodes."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")
    rng = np.random.default_rng(0)
    rows = {"train": [], "test": []}
    for c in range(1, 25):
        side = "train" if c <= 12 else "test"
        for j in range(4 + c % 3):  # 4-6 images per product, about as many as in SOP
            path = f"thing_final/{c}_{j}.JPG"
            rows[side].append(f"{len(rows[side]) + 1} {c} 1 {path}")
            (tmp_path / "sop" / "thing_final").mkdir(parents=True, exist_ok=True)
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            Image.new("RGB", (24, 24), colour).save(tmp_path / "sop" / path, "JPEG")
    for side, lines in rows.items():
        header = "image_id class_id super_class_id path\n"
        (tmp_path / "sop" / f"Ebay_{side}.txt").write_text(header + "\n".join(lines) + "\n")
    out = tmp_path / "splits"
    small = ["--steps", "3", "--swaps-per-step", "2", "--history", "2", "--easier-steps", "2"]
    small += ["--easier-history", "2", "--removal-steps", "2", "--select", "3"]
    argv = ["splits", "build", "--dataset", "sop", "--root", str(tmp_path / "sop"), "--out", str(out)]
    argv += ["--weights", str(tmp_path / "resnet50.pth"), "--cache-dir", str(tmp_path / "cache"), *small]
    assert main(argv) == 2  # the default budgets 2,5: 5 x 12 classes would leave no query class
    assert "5-shot whole-class episodes need 60 support images" in capsys.readouterr().err
    assert main([*argv, "--shots", "2,3"]) == 0, capsys.readouterr().err
    built = read_split_file(out / "splits.json")
    assert built.provenance["support"] == "classes" and built.provenance["shots"] == [2, 3]
    for split in built.splits:
        assert sorted(split.episodes) == [2, 3]
        for episode in split.episodes[2]:
            assert isinstance(episode, list) and set(episode) < set(split.test)
    assert read_split_file(out / "splits.pkl").splits[0].episodes == built.splits[0].episodes


def test_dataset_option_values_are_read_as_yaml():
    from tasks.splits.cli import parse_options

    parsed = parse_options(
        ["faces=[DejaVuSans, STIXGeneral]", "num_classes=40", "train_fraction=0.5", "a=true"]
    )
    assert parsed == {
        "faces": ["DejaVuSans", "STIXGeneral"],
        "num_classes": 40,
        "train_fraction": 0.5,
        "a": True,
    }
    assert parse_options(["name=my set"]) == {"name": "my set"}
    with pytest.raises(ValueError, match="--option expects KEY=VALUE"):
        parse_options(["faces"])


def test_building_from_features_imports_neither_torch_nor_pil():
    """The --features route reads class means: no image library, no deep-learning framework to import."""
    import subprocess
    import sys

    code = (
        "import sys, tasks.splits.cli, tasks.splits.build; "
        "print(sorted(m for m in ('torch', 'torchvision', 'PIL', 'ray', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
