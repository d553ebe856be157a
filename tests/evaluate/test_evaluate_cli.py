import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.evaluate import cli, retrieval_metrics


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "emb.npz"
    np.savez(path, embeddings=rng.normal(size=(40, 5)), labels=np.array([f"c{i % 8}" for i in range(40)]))
    return path


def test_json(npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(str(npz), "--json", "--k", "1,3") == 0
    out = json.loads(capsys.readouterr().out)
    with np.load(npz) as data:
        expected = retrieval_metrics(data["embeddings"], data["labels"], (1, 3))
    assert list(out) == ["recall@1", "recall@3", "map@r", "map@1000", "nmi"]
    assert out == pytest.approx(expected, abs=1e-12)


def test_table_without_nmi(npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(str(npz), "--no-nmi", "--metric", "l2") == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.endswith("40 images, 8 classes")
    assert [row.split()[0] for row in rows] == [
        "recall@1",
        "recall@2",
        "recall@4",
        "recall@8",
        "map@r",
        "map@1000",
    ]


def _write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"labels": np.arange(4)}, "no array 'embeddings'"),
        ({"embeddings": np.zeros((4, 2))}, "no array 'labels'"),
        ({"embeddings": np.zeros((4, 2)), "labels": np.arange(3)}, "'labels' has shape (3,), expected (4,)"),
        ({"embeddings": np.zeros(4), "labels": np.arange(4)}, "'embeddings' must be a real-valued (n x d)"),
        ({"embeddings": np.full((4, 2), np.nan), "labels": np.arange(4)}, "non-finite"),
        ({"embeddings": np.zeros((2, 2)), "labels": np.array([{}, 1], dtype=object)}, "array 'labels'"),
    ],
)
def test_bad_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: dict, message: str) -> None:
    path = _write(tmp_path / "bad.npz", **arrays)
    assert _run(str(path)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("not numpy")
    for name, message in [
        ("missing.npz", "No such file"),
        ("single.npy", "single array"),
        ("text.npz", "not an .npz"),
    ]:
        assert _run(str(tmp_path / name)) == 2
        assert message in capsys.readouterr().err


def test_bad_k() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["x.npz", "--k", "1,a"])
    with pytest.raises(SystemExit):
        parser.parse_args(["x.npz", "--k", "0"])


def test_device(npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(str(npz), "--json", "--no-nmi") == 0
    default = json.loads(capsys.readouterr().out)
    for device in ("cpu", "auto"):
        assert _run(str(npz), "--json", "--no-nmi", "--device", device) == 0
        assert json.loads(capsys.readouterr().out) == pytest.approx(default, abs=1e-12)
    assert _run(str(npz), "--device", "tpu") == 2
    assert "--device tpu" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert _run(str(npz), "--device", "cuda") == 2
        assert "CUDA is not available" in capsys.readouterr().err
