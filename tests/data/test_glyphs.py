"""The glyph demo dataset: coverage, homoglyph merging, deterministic rendering, the benchmark and its cache."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ImageFont

from tasks.data import DatasetError, build_dataset, glyph_heldout
from tasks.data import glyphs as g

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_all_13_faces_cover_about_1100_characters() -> None:
    assert len(g.covered_characters(g.FACES)) in range(1100, 1200)


def test_latin_greek_and_cyrillic_capital_a_merge_into_one_class() -> None:
    codes = [0x41, 0x42, 0x391, 0x410]  # A, B, Greek Alpha, Cyrillic A
    fonts = [ImageFont.truetype(str(g.font_dir() / f"{face}.ttf"), size=g.FONT_PX) for face in g.FACES]
    clean = g.box_downsample(np.stack([[g.render_clean(font, code) for font in fonts] for code in codes]))
    assert g.merge_homoglyphs(clean, codes) == {0x41: 0x41, 0x42: 0x42, 0x391: 0x41, 0x410: 0x41}


def test_rendering_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    settings = g.RenderSettings(faces=("DejaVuSansMono",), max_chars=30, jitters=2, seed=3)
    first, second = g.render_bank(settings, tmp_path / "a.npz"), g.render_bank(settings, tmp_path / "b.npz")
    assert first.pixels.shape[1:] == (32, 32) and first.pixels.dtype == np.uint8
    assert np.array_equal(first.pixels, second.pixels) and np.array_equal(first.codes, second.codes)
    other = g.render_bank(
        g.RenderSettings(faces=("DejaVuSansMono",), max_chars=30, seed=4), tmp_path / "c.npz"
    )
    assert not np.array_equal(first.pixels, other.pixels)
    assert settings.key() != g.RenderSettings(faces=("DejaVuSansMono",), max_chars=30, seed=4).key()


def test_benchmark_ids_labels_partition_and_superclasses(tiny_glyphs: dict[str, Any]) -> None:
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=20, seed=0)
    assert len(images.default_train) == len(images.default_test) == 10
    assert len(images) == 20 * 2 * 2  # classes x faces x jitters
    assert Counter(images.labels) == {c: 4 for c in images.classes}
    assert images.image_ids[0] == f"{images.labels[0]}/DejaVuSans_j0.png"
    assert {i.split("/", 1)[1] for i in images.image_ids} == {
        f"{face}_j{j}.png" for face in ("DejaVuSans", "DejaVuSerif-Bold") for j in (0, 1)
    }
    assert all(c.startswith("U+") and len(c) >= 6 for c in images.classes)
    assert set(images.superclasses) == set(images.classes) and "Latin" in images.superclasses.values()
    picture = images.load(5)
    assert picture.mode == "L" and picture.size == (32, 32)
    again = build_dataset("glyphs", **tiny_glyphs, num_classes=20, seed=0)
    assert again == images and np.array_equal(np.asarray(again.load(5)), np.asarray(picture))
    assert build_dataset("glyphs", **tiny_glyphs, num_classes=20, seed=1).classes != images.classes


def test_heldout_pool_is_the_rest_of_the_bank(tiny_glyphs: dict[str, Any]) -> None:
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=20)
    heldout = glyph_heldout(**tiny_glyphs, num_classes=20)
    assert heldout.default_test == () and not set(heldout.classes) & set(images.classes)
    bank = g.GlyphBank.read(images.root)
    assert len(heldout.classes) + 20 == len(bank.class_codes)
    assert g.heldout_for(images) == heldout


def test_bank_is_cached_once_and_reused(tiny_glyphs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=10)
    assert images.root.parent == tiny_glyphs["root"] and images.root.suffix == ".npz"
    monkeypatch.setattr(g, "render_bank", lambda *_: pytest.fail("rendered again"))
    assert build_dataset("glyphs", **tiny_glyphs, num_classes=10) == images


def test_cache_folder_default_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OODML_CACHE", str(tmp_path))
    assert g.default_cache_dir() == tmp_path / "glyphs"
    with pytest.raises(DatasetError, match="faces must be a non-empty subset"):
        g.RenderSettings(faces=("Comic Sans",))
    with pytest.raises(DatasetError, match=r"num_classes must lie between 2 and the \d+ rendered classes"):
        build_dataset("glyphs", tmp_path, faces=("DejaVuSans",), max_chars=10, num_classes=500)


@pytest.mark.slow
def test_full_bank_has_about_1059_classes_in_13_superclasses(tmp_path: Path) -> None:
    bank = g.glyph_bank(tmp_path, g.RenderSettings())
    classes = bank.class_codes
    assert len(classes) in range(1000, 1100)
    assert len(bank.pixels) == len(classes) * 26
    groups = Counter(g.superclass_of(int(c)) for c in classes)
    assert len(groups) == 13 and "Other" not in groups and groups.most_common(1)[0][0] == "Latin"
    assert 0x41 in classes and 0x391 not in classes and 0x410 not in classes  # A, Greek Alpha, Cyrillic A
    assert g.GlyphBank.read(bank.path).pixels.shape == bank.pixels.shape
