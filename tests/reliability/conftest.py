"""Fixtures of the reliability tests: tiny image datasets on disk, and an ``oodml run`` that must be refused."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from PIL import Image

from study.cli import main


@pytest.fixture
def image_tree() -> Callable[..., Path]:
    """``image_tree(folder, {class: number of images})``: a class-folder tree of 16x16 JPEGs (a flat colour
    per image) at ``folder``; returns ``folder``."""

    def write(folder: Path, sizes: dict[str, int]) -> Path:
        for c, (name, count) in enumerate(sizes.items()):
            (folder / name).mkdir(parents=True)
            for k in range(count):
                Image.new("RGB", (16, 16), (15 * c, 40 * k, 200)).save(folder / name / f"img{k}.jpg")
        return folder

    return write


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size if p.is_file() else -1 for p in folder.rglob("*")}


def _ray_running() -> bool:
    ray = sys.modules.get("ray")  # not imported: certainly not running
    return ray is not None and ray.is_initialized()


@pytest.fixture
def refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[dict], str]:
    """``refused(spec)``: write ``spec`` to a YAML file under ``tmp_path``, run ``oodml run`` on it from
    there, and return its error message, after asserting the run was refused without side effects: exit
    code 2, one ``oodml run: error:`` report on stderr, nothing created or changed under ``tmp_path``
    (no study folder, lock, MLflow store, split or result file), and no Ray started."""
    monkeypatch.chdir(tmp_path)  # a default study folder (runs/<name>) would land here too

    def run(spec: dict) -> str:
        config = tmp_path / "study.yaml"
        config.write_text(yaml.safe_dump(spec))
        before, ray_before = _files(tmp_path), _ray_running()
        code = main(["run", str(config)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("oodml run: error: ") and err.count("oodml run: error: ") == 1, err
        assert _files(tmp_path) == before, "a refused run wrote files"
        assert ray_before or not _ray_running(), "a refused run started Ray"
        return err.removeprefix("oodml run: error: ").rstrip("\n")

    return run
