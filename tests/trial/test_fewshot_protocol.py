"""Few-shot adaptation as the original's ``finetune_model`` runs it (docs/protocol.md section 5).

Expected values are written from ``OOD-Study_FewShot.sh`` and ``utilities/finetune_utils.py`` of the
original code (CompVis/Characterizing_Generalization_in_DML at 0c70f0e): the optimizer holds
``last_linear`` only, so the margin criterion's beta never moves; the criterion's beta is the run's
``--loss_margin_beta`` (0.6 in the S2SD lines, the 1.2 default in every other line); the support images
come through the training transform; DiVA adapts on its unweighted concatenation (no
``--finetune_reweight``) and is reported on the weighting ``fewshot_diva_ood_main.py`` selects.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import tasks.fewshot as fewshot
from tasks.config import TrialConfig, adaptation_hyperparameters, method_hyperparameters
from tasks.methods import build_method
from tasks.methods.diva import TASKS, WEIGHTINGS, DivaHead, task_weights
from tasks.models import build_model
from tasks.models.embedding import reweighted, weighting_label
from tests.trial.test_fewshot import CPU, _images, _per_image, _split

torch.set_num_threads(2)


def _config(trained: dict, **fewshot_settings) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "unused.json", "split": "0"},
            "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
            "method": trained,
            "training": {"lr": 1e-3, "with_nmi": False, "ks": [1]},
            "fewshot": {"shots": [2], "iterations": {2: 3}, "batch_size": 8} | fewshot_settings,
        }
    )


# --- the criterion's beta: the trained method's, never trained ------------------------------------------


@pytest.mark.parametrize(
    ("method", "beta"),
    [
        ({"name": "margin"}, 1.2),
        ({"name": "multisimilarity"}, 1.2),  # its own 'beta' (40) is not a margin boundary
        ({"name": "arcface"}, 1.2),
        ({"name": "diva"}, 1.2),
        ({"name": "uniformity"}, 1.2),
        ({"name": "s2sd"}, 0.6),
        ({"name": "rmargin"}, 0.6),
        ({"name": "s2sd", "hyperparameters": {"beta": 0.9}}, 0.9),  # SOP's S2SD runs
        ({"name": "margin", "hyperparameters": {"beta": 0.8}}, 0.8),
    ],
)
def test_the_criterion_starts_from_the_trained_methods_margin_beta(method, beta) -> None:
    values = adaptation_hyperparameters(_config(method))
    assert values["beta"] == beta
    assert (values["margin"], values["nu"]) == (0.2, 0.0)  # the margin loss's own defaults
    built = fewshot.criterion(_config(method), num_classes=3, embedding_dim=16)
    assert torch.equal(built.beta.detach(), torch.full((3,), beta))


def test_fewshot_hyperparameters_stand_over_the_inherited_beta() -> None:
    config = _config({"name": "s2sd"}, hyperparameters={"beta": 1.0, "margin": 0.1})
    assert adaptation_hyperparameters(config)["beta"] == 1.0
    assert adaptation_hyperparameters(config)["margin"] == 0.1


def _adapt_on_features(config: TrialConfig, steps: int = 30):
    """Adapt a linear head on random support features; the criterion built and the head before/after."""
    torch.manual_seed(0)
    model = build_model("glyph_cnn", 16, pretrained=False).eval()
    head = torch.nn.Linear(model.head.in_features, 16)
    start = head.weight.detach().clone()
    built = []
    real = fewshot.criterion

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    fewshot.criterion, original = spy, fewshot.criterion
    try:
        features = torch.randn(16, model.head.in_features)
        labels = np.repeat(np.arange(4), 4)
        batches = fewshot._feature_batches(features, labels, config.fewshot, steps, 0)
        fewshot._adapt(model, head, batches, 4, config, 0, CPU)
    finally:
        fewshot.criterion = original
    return built[0], start, head.weight.detach()


@pytest.mark.parametrize(("method", "beta"), [({"name": "margin"}, 1.2), ({"name": "s2sd"}, 0.6)])
def test_beta_is_unchanged_after_adaptation_while_the_head_trains(method, beta) -> None:
    criterion, before, after = _adapt_on_features(_config(method))
    assert torch.equal(criterion.beta.detach(), torch.full_like(criterion.beta, beta))
    assert not torch.allclose(before, after)  # the embedding layer did train


def test_loss_parameters_trained_moves_beta() -> None:
    criterion, _, _ = _adapt_on_features(_config({"name": "margin"}, loss_parameters="trained"))
    assert not torch.equal(criterion.beta.detach(), torch.full_like(criterion.beta, 1.2))


# --- the support is augmented and runs through the frozen backbone --------------------------------------


def _episode_setup():
    images = _images({c: 6 for c in "abcd"})
    split = _split(list("abcd"), {2: _per_image(images, list("abcd"), 2, episodes=1)})
    return images, split


# the test images' features are computed once (one pass: 24 images); then one pass per step (3) of the
# augmented support, or none when the cached features serve the steps
@pytest.mark.parametrize(("transform", "passes_expected"), [("train", 1 + 3), ("eval", 1)])
def test_the_support_goes_through_the_training_transform_and_the_frozen_backbone(
    monkeypatch, transform, passes_expected
) -> None:
    images, split = _episode_setup()
    config = _config({"name": "margin"}, support_transform=transform)
    model = build_model("glyph_cnn", 16, pretrained=False)
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    datasets, passes = [], []
    real_dataset = fewshot.image_dataset

    def dataset(images, indices, pre, train, labels):
        datasets.append(train)
        return real_dataset(images, indices, pre, train, labels)

    real_features = model.features

    def features(x):
        passes.append((x.dim(), torch.is_grad_enabled()))
        return real_features(x)

    monkeypatch.setattr(fewshot, "image_dataset", dataset)
    monkeypatch.setattr(model, "features", features)
    result = fewshot.evaluate_fewshot(model, images, split, config, CPU)[2]
    assert result["episodes"] == 1
    assert datasets == ([True] if transform == "train" else [])
    assert passes == [(4, False)] * passes_expected  # images, never with gradient
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in backbone.items())


# --- DiVA: the reported weighting, the three recorded, the unweighted adaptation --------------------------


def _diva_head(weight: float) -> DivaHead:
    torch.manual_seed(0)
    method = build_method("diva", num_classes=3, embedding_dim=16, discriminative_weight=weight)
    return method.embedding_head(8, 16)


@pytest.mark.parametrize("weight", [1.0, 0.75, 0.5])
def test_diva_embedding_is_the_originals_weighted_concatenation(weight) -> None:
    head = _diva_head(weight)
    features = torch.randn(5, 8)
    by_hand = [F.normalize(head.branches[t](features), dim=-1) for t in TASKS]
    weights = [weight, 2 - weight, 2 - weight, 2 - weight]
    expected = F.normalize(torch.cat([w * e for w, e in zip(weights, by_hand, strict=True)], dim=-1), dim=-1)
    torch.testing.assert_close(F.normalize(head(features), dim=-1), expected, rtol=0, atol=1e-6)
    assert head.weighting == {1.0: "1-1-1-1", 0.75: "0.75-1.25-1.25-1.25", 0.5: "0.5-1.5-1.5-1.5"}[weight]
    # any weighting is a function of the reported embedding alone
    unweighted = F.normalize(torch.cat(by_hand, dim=-1), dim=-1)
    from_reported = F.normalize(reweighted(F.normalize(head(features), dim=-1), (1, 1, 1, 1)), dim=-1)
    torch.testing.assert_close(from_reported, unweighted, rtol=0, atol=1e-6)


def test_diva_weightings_are_the_originals_three() -> None:
    assert [weighting_label(w) for w in WEIGHTINGS] == ["1-1-1-1", "0.75-1.25-1.25-1.25", "0.5-1.5-1.5-1.5"]
    assert [task_weights(w) for w in (1.0, 0.75, 0.5)] == list(WEIGHTINGS)


@pytest.mark.parametrize("reweight", [False, True])
def test_diva_adapts_on_the_unweighted_concatenation_unless_reweight(reweight) -> None:
    head = _diva_head(0.5)
    features = torch.randn(4, 8)
    fs = _config({"name": "diva"}, reweight=reweight).fewshot
    expected = head(features) if reweight else head.blocks(features)
    torch.testing.assert_close(fewshot.loss_embeddings(head, features, fs), F.normalize(expected, dim=-1))
    assert not torch.allclose(F.normalize(head(features), dim=-1), F.normalize(head.blocks(features), dim=-1))


# --- what few-shot adaptation refuses up front ------------------------------------------------------------


def test_an_unknown_fewshot_method_is_refused_with_the_closest_name() -> None:
    with pytest.raises(ValidationError, match="s2sd"):
        _config({"name": "margin"}, method="s2sdd")


def test_a_composite_fewshot_method_is_refused() -> None:
    for name in ("s2sd", "diva", "uniformity", "frozen"):
        with pytest.raises(ValidationError, match="more than a loss on the embeddings"):
            _config({"name": "margin"}, method=name)


def test_an_unknown_fewshot_hyperparameter_is_refused() -> None:
    with pytest.raises(ValidationError, match="no hyperparameter 'bta'"):
        _config({"name": "margin"}, hyperparameters={"bta": 1.0})


# --- hyperparameters that mirror a training setting follow it ---------------------------------------------


def test_a_mirrored_hyperparameter_follows_the_training_setting_unless_set() -> None:
    config = _config({"name": "uniformity"})
    assert method_hyperparameters(config)["network_lr"] == 1e-3  # training.lr
    set_apart = _config({"name": "uniformity", "hyperparameters": {"network_lr": 2e-5}})
    assert method_hyperparameters(set_apart)["network_lr"] == 2e-5
    s2sd = method_hyperparameters(_config({"name": "s2sd"}))
    assert (s2sd["head_lr"], s2sd["loss_lr"]) == (1e-3, 1e-3)
    assert method_hyperparameters(_config({"name": "diva"}))["decorrnet_lr"] == 1e-3
    assert method_hyperparameters(_config({"name": "margin"})) == {}  # margin's loss_lr is its own
