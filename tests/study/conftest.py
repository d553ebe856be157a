"""The tiny study the runner tests share: 2 methods x 2 splits x budgets {0, 2}, tuning budget 2.

Glyphs rendered from 60 characters (16 benchmark classes, 26 images each), 1 epoch of 4 steps: the
runner's work, not training, dominates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def glyph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render cache and FID feature network of the tiny glyph benchmark, made once per session."""
    return tmp_path_factory.mktemp("study-glyph-cache")


@pytest.fixture(scope="session")
def tiny_spec(glyph_cache: Path) -> Callable[[str | Path], dict]:
    """``tiny_spec(study_root)``: the tiny study's spec as a mapping."""

    def spec(root: str | Path) -> dict:
        return {
            "name": "tiny",
            "datasets": [
                {
                    "name": "glyphs",
                    "root": str(glyph_cache),
                    "options": {"num_classes": 16, "max_chars": 60},
                    "splits": {"select": 2, "steps": 3, "easier_steps": 2, "removal_steps": 2, "episodes": 2},
                }
            ],
            "methods": [
                {"name": "multisimilarity", "search": {"alpha": [1.0, 4.0]}},
                {"name": "triplet", "search": True},
            ],
            "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
            "training": {
                "epochs": 1,
                "batch_size": 16,
                "samples_per_class": 4,
                "iterations_per_epoch": 4,
                "lr": 2e-3,
                "with_nmi": False,
                "record_test_curve": False,
            },
            "fewshot": {"budgets": [0, 2], "iterations": {2: 5}, "batch_size": 16},
            "tuning": {"trials": 2},
            "storage": {"root": str(root)},
        }

    return spec
