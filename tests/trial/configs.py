"""The trial tests' config on the tiny glyph benchmark (``glyph_benchmark`` in tests/trial/conftest.py)."""

from __future__ import annotations

from typing import Any

from tasks.config import TrialConfig


def trial_config(bench: dict, **overrides: Any) -> TrialConfig:
    """A 3-epoch multisimilarity trial on the benchmark's default split with 2-shot episodes.

    ``overrides``: a ``"section.field"`` key sets that field of a section (``**{"training.epochs": 1}``),
    any other key a top-level field (``seed=1``).
    """
    raw: dict[str, Any] = {
        "data": {
            "dataset": "glyphs",
            "root": bench["root"],
            "options": bench["options"],
            "split_file": bench["split_file"],
            "split": "0",
        },
        "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
        "method": {"name": "multisimilarity"},
        "training": {
            "epochs": 3,
            "batch_size": 32,
            "samples_per_class": 4,
            "iterations_per_epoch": 12,
            "lr": 2e-3,
            "with_nmi": False,
        },
        "fewshot": {"shots": [2], "episodes": 2, "iterations": {2: 20}, "batch_size": 40},
        "seed": 0,
    }
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if field:
            raw[section][field] = value
        else:
            raw[key] = value
    return TrialConfig.model_validate(raw)
