import json

import numpy as np

from study.cli import main


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
