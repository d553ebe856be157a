"""A tiny glyph benchmark with a split file, shared by the trial tests (rendered once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data import build_dataset
from tasks.splits.build import build_split_file, write_split_outputs
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings

GLYPH_OPTIONS = {
    "num_classes": 40,
    "faces": ["DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Bold"],
    "jitters": 2,
}


@pytest.fixture(scope="session")
def glyph_benchmark(tmp_path_factory) -> dict:
    """40 glyph classes x 8 images, splits from pixel class means (fast and good enough for trial tests)."""
    root = tmp_path_factory.mktemp("glyph-cache")
    images = build_dataset("glyphs", root, **GLYPH_OPTIONS)
    by_class = images.indices_by_class()
    pixels = np.stack(
        [np.asarray(images.load(i), dtype=np.float64).ravel() / 255 for i in range(len(images))]
    )
    names = sorted(by_class)
    means = np.stack([pixels[by_class[c]].mean(axis=0) for c in names])
    small = ProgressionSettings(steps=4, swaps_per_step=2, history=2)
    split_file = build_split_file(
        names,
        means,
        images.default_train,
        images.default_test,
        config=ProgressionConfig(harder=small, easier=small, removal=small),
        selection=3,
        images_by_class={c: [images.image_ids[i] for i in idx] for c, idx in by_class.items()},
        shots=(2,),
        episodes=2,
        seed=0,
    )
    out = Path(root) / "splits"
    json_path, _ = write_split_outputs(split_file, out)
    return {"root": str(root), "options": GLYPH_OPTIONS, "split_file": str(json_path), "images": images}
