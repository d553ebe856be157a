"""A composite method's loss terms reach the curves (``train/loss/<term>``) as epoch means of each term
before its weight, so that the logged total is their weighted sum, as the method defines it."""

from __future__ import annotations

import pytest
import torch

from tasks.record import Curves
from tasks.splits.files import read_split_file
from tasks.train import train_model
from tests.trial.configs import trial_config


def _history(glyph_benchmark, tmp_path, method: dict) -> list[dict]:
    torch.set_num_threads(2)
    config = trial_config(
        glyph_benchmark,
        **{
            "method.name": method["name"],
            "method.hyperparameters": method.get("hyperparameters", {}),
            "model.embedding_dim": 16,
            "training.epochs": 2,
            "training.batch_size": 16,
            "training.iterations_per_epoch": 3,
            "training.record_test_curve": False,
            "fewshot.shots": [],
        },
    )
    split = read_split_file(config.data.split_file).split("0")
    return train_model(config, glyph_benchmark["images"], split, tmp_path / "trial").history


def test_s2sd_terms_are_logged_and_weigh_up_to_the_loss(glyph_benchmark, tmp_path) -> None:
    history = _history(glyph_benchmark, tmp_path, {"name": "s2sd", "hyperparameters": {"weight": 5.0}})
    for record in history:
        t = {k.removeprefix("train/loss/"): v for k, v in record.items() if k.startswith("train/loss/")}
        assert set(t) == {"source", "target", "distill", "feature_distill"}
        total = (t["source"] + t["target"]) / 2 + 5.0 * t["distill"] + 50.0 * t["feature_distill"]
        assert record["train/loss"] == pytest.approx(total, rel=1e-6)
    curves = Curves.from_history(history)
    assert len(curves.values["train/loss/distill"]) == 2


def test_uniformity_terms_are_logged(glyph_benchmark, tmp_path) -> None:
    history = _history(glyph_benchmark, tmp_path, {"name": "uniformity", "hyperparameters": {"weight": 0.5}})
    for record in history:
        assert record["train/loss"] == pytest.approx(
            record["train/loss/margin"] + 0.5 * record["train/loss/prior"], rel=1e-6
        )


def test_a_single_loss_logs_no_terms(glyph_benchmark, tmp_path) -> None:
    history = _history(glyph_benchmark, tmp_path, {"name": "margin"})
    assert not [k for k in history[0] if k.startswith("train/loss/")]


def test_diva_terms_are_logged_and_weigh_up_to_the_loss(glyph_benchmark, tmp_path) -> None:
    history = _history(glyph_benchmark, tmp_path, {"name": "diva", "hyperparameters": {"n_key_batches": 2}})
    for record in history:
        t = {k.removeprefix("train/loss/"): v for k, v in record.items() if k.startswith("train/loss/")}
        assert set(t) == {"discriminative", "selfsimilarity", "shared", "intra", "separation"}
        total = t["discriminative"] + 0.3 * (t["selfsimilarity"] + t["shared"] + t["intra"]) + t["separation"]
        assert record["train/loss"] == pytest.approx(total, rel=1e-6)
