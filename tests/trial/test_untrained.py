"""Trials that do not train: the ``frozen`` baseline on a (randomly initialised, no download) timm
backbone, and ``training.epochs: 0`` for any method. No epoch and no optimizer step runs; the record
says so (``epochs`` 0, ``selected_epoch`` -1, no curves, no checkpoint) and still lands in the results."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import tasks.train
from study.results import read_curves, read_results
from study.results.store import write_trial_result
from tasks.config import TrialConfig
from tasks.models import build_model
from tasks.splits.files import read_split_file
from tasks.train import UNTRAINED_EPOCH, embed, train_model
from tasks.trial import run_trial
from tests.trial.configs import trial_config

BACKBONE = "timm:test_vit"  # 160 px input, mean/std 0.5, 64-d features: cheap on a CPU


def _config(bench, method="frozen", backbone=BACKBONE, **training) -> TrialConfig:
    changes = {"model.backbone": backbone, "model.embedding_dim": 16, "method.name": method}
    training_changes = {f"training.{field}": value for field, value in training.items()}
    return trial_config(bench, **changes, **training_changes, **{"fewshot.iterations": {2: 5}})


@pytest.fixture
def no_training(monkeypatch):
    """Building a training batch sampler fails the test: an untrained trial runs no epoch and no step."""

    def refuse(*args, **kwargs):
        raise AssertionError("an untrained trial built its training batches")

    monkeypatch.setattr(tasks.train, "ClassBalancedBatchSampler", refuse)


def test_frozen_evaluates_exactly_the_normalised_pooled_features(glyph_benchmark, tmp_path, no_training):
    config = _config(glyph_benchmark)  # training.epochs 3: frozen never trains, whatever it says
    split = read_split_file(config.data.split_file).split("0")
    images = glyph_benchmark["images"]
    result = train_model(config, images, split, tmp_path / "trial")
    assert result.epochs == 0 and result.history == [] and result.selected_epoch == UNTRAINED_EPOCH
    assert not list((tmp_path / "trial").iterdir())  # no checkpoint: the weights are the published ones
    assert {"val/recall@1", "val/map@r", "val/selection_score"} <= set(result.untrained)

    model = result.model
    assert model.head.in_features == model.head.out_features == 64  # the feature, not embedding_dim 16
    torch.manual_seed(config.seed)  # the backbone as train_model built it: untouched
    built = build_model(BACKBONE, pretrained=False)
    assert all(torch.equal(v, built.backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items())
    indices = images.indices_of(split.test)
    device = torch.device("cpu")
    features = torch.from_numpy(embed(model, images, indices, device, features=True))
    embeddings = torch.from_numpy(embed(model, images, indices, device))
    torch.testing.assert_close(embeddings, F.normalize(features, dim=-1), rtol=0, atol=1e-6)


def test_untrained_trial_record_is_complete_and_lands_in_the_results(glyph_benchmark, tmp_path, no_training):
    record = run_trial(_config(glyph_benchmark), tmp_path / "trial")
    identity = record.identity
    assert identity.method == "frozen" and identity.backbone == BACKBONE
    assert (identity.epochs, record.selected_epoch, record.checkpoint) == (0, -1, None)
    assert identity.embedding_dim == 64 and record.resumed_from_epoch is None
    assert not record.curves.values and record.test_selected_epoch is None
    flat = record.scalars()
    for key in ("val/recall@1", "val/selection_score", "test/recall@1", "test/map@1000"):
        assert 0 <= flat[key] <= 2, key
    assert flat["fewshot/2/episodes"] == 2
    for kind in ("fewshot", "zeroshot"):
        assert 0 <= flat[f"fewshot/2/{kind}/recall@1"] <= 1
        assert not math.isnan(flat[f"fewshot/2/{kind}/recall@1/ci95"])

    study = tmp_path / "study"
    write_trial_result(study, record, stage="eval", study="unit")
    rows = read_results(study).to_pylist()
    assert {(r["subset"], r["shots"], r["kind"]) for r in rows} == {
        ("val", 0, "zeroshot"),
        ("test", 0, "zeroshot"),
        ("test", 2, "zeroshot"),
        ("test", 2, "fewshot"),
    }
    assert {(r["selected_epoch"], r["epochs"], r["checkpoint"]) for r in rows} == {(-1, 0, None)}
    assert read_curves(study).num_rows == 0


def test_epochs_zero_evaluates_any_method_as_built(glyph_benchmark, tmp_path, no_training):
    config = _config(glyph_benchmark, method="multisimilarity", backbone="glyph_cnn", epochs=0)
    record = run_trial(
        config.model_copy(update={"fewshot": config.fewshot.model_copy(update={"shots": []})}), tmp_path
    )
    assert (record.identity.epochs, record.selected_epoch, record.checkpoint) == (0, -1, None)
    assert record.identity.embedding_dim == 16  # its own (random) head
    assert 0 <= record.measurement("test", "recall@1") <= 1
