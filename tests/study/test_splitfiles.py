"""A study's own split file: built once through the typed build API, reused, and guarded against drift."""

from __future__ import annotations

import json

import pytest

from study.spec import SpecError, StudySpec
from study.splitfiles import OPTIONS_FILE, split_file
from tasks.splits.files import read_split_file

FACES = ["DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Bold"]


def test_built_once_with_list_options_then_reused_and_other_settings_refused(tiny_spec, tmp_path):
    raw = tiny_spec(tmp_path / "runs")
    raw["datasets"][0]["options"] = {**raw["datasets"][0]["options"], "faces": FACES, "jitters": 1}
    spec = StudySpec.model_validate(raw)
    entry = spec.datasets[0]
    path = split_file(entry, spec.shots, tmp_path / "study")
    built = read_split_file(path)
    assert built.provenance["dataset_options"]["faces"] == FACES  # a list option reaches the loader
    assert built.provenance["shots"] == [2] and built.provenance["support"] == "images"
    assert len(built.splits) == 2 and (path.parent / "class_means.npz").is_file()
    assert all(set(s.shift) == {"mmd"} for s in built.splits)  # stored with each split (docs/shift.md)
    recorded = json.loads((path.parent / OPTIONS_FILE).read_text())
    assert recorded["options"]["faces"] == FACES and recorded["select"] == 2

    stamp = path.stat().st_mtime_ns
    assert split_file(entry, spec.shots, tmp_path / "study") == path  # reused, not rebuilt
    assert path.stat().st_mtime_ns == stamp

    raw["datasets"][0]["splits"]["seed"] = 1
    other = StudySpec.model_validate(raw)
    with pytest.raises(SpecError, match=r"was built with other settings .*Use a new study folder"):
        split_file(other.datasets[0], other.shots, tmp_path / "study")
