"""A study takes exactly the backbones a trial takes (any timm model as ``timm:<name>``) and frozen
baselines; the preflight finds a timm model's pretrained weights or names where to put them."""

from __future__ import annotations

import copy

import huggingface_hub
import pytest

from study.preflight import check_weights
from study.spec import SpecError, load_spec

BASE = {
    "name": "unit",
    "datasets": [{"name": "glyphs", "splits": {"select": 2}}],
    "methods": [{"name": "frozen"}, {"name": "multisimilarity", "search": {"alpha": [1.0, 4.0]}}],
    "model": {"backbone": "timm:test_vit", "pretrained": False},
    "training": {"epochs": 1, "batch_size": 16, "samples_per_class": 4},
    "fewshot": {"budgets": [0, 2], "iterations": {2: 5}},
    "tuning": {"trials": 2},
}


def _spec(**overrides):
    return load_spec(copy.deepcopy(BASE), overrides)


@pytest.mark.parametrize("name", ["timm:test_vit", "timm:vit_small_patch14_dinov2", "timm:resnet50.a1_in1k"])
def test_any_timm_model_is_accepted(name):
    assert _spec(**{"model.backbone": name}).model.backbone == name


def test_a_misspelt_timm_model_is_refused_with_the_closest_names():
    with pytest.raises(SpecError) as err:
        _spec(**{"model.backbone": "timm:vit_smal_patch14_dinov2"})
    message = str(err.value)
    assert "model: backbone: unknown backbone 'timm:vit_smal_patch14_dinov2'" in message
    assert "did you mean 'vit_small_patch14_dinov2'" in message and "or any timm model" in message


def test_frozen_is_not_tuned_and_cannot_be_searched():
    spec = _spec()
    assert [m.search_space() for m in spec.methods] == [
        {},
        {"alpha": spec.methods[1].search_space()["alpha"]},
    ]
    with pytest.raises(SpecError, match="search: true"):
        _spec(**{"methods": [{"name": "frozen", "search": True}]})


def test_epochs_zero_needs_no_tuning_or_tuning_epochs():
    assert _spec(**{"training.epochs": 0, "methods": [{"name": "frozen"}, {"name": "triplet"}]})
    assert _spec(**{"training.epochs": 0, "tuning.epochs": 2}).training.epochs == 0
    with pytest.raises(SpecError, match="training.epochs is 0"):
        _spec(**{"training.epochs": 0})


def test_preflight_finds_or_names_a_timm_models_weights(tmp_path, monkeypatch):
    """The suite runs offline (OODML_OFFLINE=1): no download is tried."""
    from safetensors.torch import save_file
    from timm import create_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    check_weights(_spec())  # pretrained: false
    with pytest.raises(SpecError) as err:
        check_weights(_spec(**{"model.pretrained": None}))
    assert str(err.value).startswith("model.pretrained: ") and "timm/test_vit.r160_in1k" in str(err.value)
    snapshot = tmp_path / "models--timm--test_vit.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    save_file(create_model("test_vit").state_dict(), snapshot / "model.safetensors")
    check_weights(_spec(**{"model.pretrained": None}))
    check_weights(_spec(**{"model.pretrained": str(snapshot / "model.safetensors")}))
