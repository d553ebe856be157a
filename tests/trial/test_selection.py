"""Epoch selection and training classes under both protocols, on made-up metric curves.

The curves are chosen so that every plausible mistake picks a different epoch: validation Recall@1
alone peaks at epoch 1, validation Recall@1 + mAP@R at epoch 2, test Recall@1 at epoch 4.
"""

from __future__ import annotations

import pytest
import torch

import tasks.train
from tasks.config import TrialConfig
from tasks.splits.files import read_split_file
from tasks.train import selection_score, train_model, training_classes
from tests.trial.configs import trial_config

VAL = {"recall@1": [0.10, 0.50, 0.30, 0.20, 0.10], "map@r": [0.10, 0.10, 0.45, 0.20, 0.10]}
TEST = {"recall@1": [0.20, 0.10, 0.10, 0.10, 0.90], "map@r": [0.30, 0.20, 0.10, 0.10, 0.10]}


def _config(bench, protocol: str) -> TrialConfig:
    return trial_config(
        bench,
        **{
            "model.embedding_dim": 16,
            "training.epochs": 5,
            "training.batch_size": 16,
            "training.iterations_per_epoch": 1,
            "training.lr": 1e-3,
            "training.protocol": protocol,
            "fewshot.shots": [],
        },
    )


def _scripted(split, calls: dict):
    """An ``evaluate_classes`` that returns the made-up curves, epoch by epoch, per subset."""

    def evaluate(model, images, classes, config, device):
        subset = "val" if list(classes) == list(split.split_val) else "test"
        assert subset == "val" or list(classes) == list(split.test)
        epoch = calls.setdefault(subset, 0)
        calls[subset] += 1
        curves = VAL if subset == "val" else TEST
        return {name: values[epoch] for name, values in curves.items()}

    return evaluate


@pytest.mark.parametrize(
    ("protocol", "selected", "evaluated"), [("validated", 2, {"val", "test"}), ("paper", 4, {"test"})]
)
def test_the_selected_epoch_follows_the_protocol(
    glyph_benchmark, tmp_path, monkeypatch, protocol, selected, evaluated
):
    torch.set_num_threads(1)
    config = _config(glyph_benchmark, protocol)
    split = read_split_file(config.data.split_file).split("0")
    calls: dict = {}
    monkeypatch.setattr(tasks.train, "evaluate_classes", _scripted(split, calls))
    result = train_model(config, glyph_benchmark["images"], split, tmp_path / "trial")
    assert result.selected_epoch == selected
    assert set(calls) == evaluated and all(n == 5 for n in calls.values())
    subset = "test" if protocol == "paper" else "val"
    assert [r[f"{subset}/selection_score"] for r in result.history] == pytest.approx(
        TEST["recall@1"]
        if protocol == "paper"
        else [r + m for r, m in zip(VAL["recall@1"], VAL["map@r"], strict=True)]
    )


def test_validated_selects_on_the_named_validation_metrics_only():
    config = TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "x.json", "split": "0"},
            "method": {"name": "margin"},
            "training": {"selection_metric": ["recall@1", "map@1000"]},
        }
    )
    record = {"val/recall@1": 0.5, "val/map@1000": 0.25, "val/map@r": 9.0, "test/recall@1": 7.0}
    assert selection_score(record, config) == 0.75
    with pytest.raises(ValueError, match="map@1000"):
        selection_score({"val/recall@1": 0.5, "test/map@1000": 0.25}, config)


def test_paper_trains_on_all_train_classes_validated_on_split_train(glyph_benchmark):
    split = read_split_file(glyph_benchmark["split_file"]).split("0")
    assert set(split.split_train) < set(split.train)
    assert training_classes(_config(glyph_benchmark, "validated"), split) == list(split.split_train)
    assert training_classes(_config(glyph_benchmark, "paper"), split) == list(split.train)


def test_paper_protocol_refuses_a_trial_without_test_classes(glyph_benchmark):
    """The trial's config refuses it (the rule is declared once, on TrialSettings), before anything trains."""
    fields = _config(glyph_benchmark, "paper").model_dump() | {"evaluate_test": False}
    with pytest.raises(ValueError, match="protocol 'validated'"):
        TrialConfig.model_validate(fields)


# Ties: the earlier epoch is kept (train_model keeps an epoch only when its score is higher than the best so
# far). Values are sums of powers of two, so equal sums are equal floats: 0.5 + 0.25 == 0.25 + 0.5.
TIED_VAL = {"recall@1": [0.25, 0.5, 0.25, 0.25, 0.125], "map@r": [0.25, 0.25, 0.25, 0.5, 0.125]}
TIED_TEST = {"recall@1": [0.25, 0.5, 0.125, 0.5, 0.5], "map@r": [0.5, 0.5, 0.5, 0.5, 0.5]}
FLAT = {"recall@1": [0.5] * 5, "map@r": [0.25] * 5}


def _scripted_curves(split, val: dict, test: dict):
    calls: dict = {}

    def evaluate(model, images, classes, config, device):
        subset = "val" if list(classes) == list(split.split_val) else "test"
        epoch = calls.setdefault(subset, 0)
        calls[subset] += 1
        return {name: values[epoch] for name, values in (val if subset == "val" else test).items()}

    return evaluate


@pytest.mark.parametrize(
    ("protocol", "val", "test", "selected", "score"),
    [
        # val recall@1 + map@r: 0.5, 0.75, 0.5, 0.75, 0.25; epochs 1 and 3 tie
        ("validated", TIED_VAL, TIED_TEST, 1, 0.75),
        # test recall@1: 0.25, 0.5, 0.125, 0.5, 0.5; epochs 1, 3 and 4 (the last) tie
        ("paper", TIED_VAL, TIED_TEST, 1, 0.5),
        # every epoch ties: the first
        ("validated", FLAT, FLAT, 0, 0.75),
        ("paper", FLAT, FLAT, 0, 0.5),
    ],
)
def test_a_tied_selection_score_keeps_the_earlier_epoch(
    glyph_benchmark, tmp_path, monkeypatch, protocol, val, test, selected, score
):
    torch.set_num_threads(1)
    config = _config(glyph_benchmark, protocol)
    split = read_split_file(config.data.split_file).split("0")
    monkeypatch.setattr(tasks.train, "evaluate_classes", _scripted_curves(split, val, test))
    result = train_model(config, glyph_benchmark["images"], split, tmp_path / "trial")
    subset = "test" if protocol == "paper" else "val"
    scores = [r[f"{subset}/selection_score"] for r in result.history]
    assert scores.count(score) >= 2 and max(scores) == score  # the curve does tie at its best
    assert result.selected_epoch == selected and result.best_score == score
    assert result.selected_record()["epoch"] == selected
    best = tasks.train.load_checkpoint(tmp_path / "trial" / tasks.train.BEST_WEIGHTS)
    assert best["epoch"] == selected  # the weights kept (and loaded back) are the earlier epoch's
