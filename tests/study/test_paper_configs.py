"""The paper configs against the paper's protocol and the original scripts' settings.

Expected values are written here from docs/protocol.md section 10, ``OOD-Study_ZeroShot.sh`` and
``OOD-Study_FewShot.sh`` of the original code (with ``fewshot_diva_ood_main.py`` for DiVA's reported
weighting), not read from the configs, so a wrong number in a config (or in how a method is built from it,
or in how a method's own settings reach its trials) fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from study.spec import load_spec
from tasks.config import FewShotConfig, TrialConfig, adaptation_hyperparameters
from tasks.methods import build_method

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PAPER_METHODS = {
    "margin",
    "rmargin",
    "multisimilarity",
    "arcface",
    "proxyanchor",
    "uniformity",
    "s2sd",
    "diva",
}
EPOCHS = {"cub200": 200, "cars196": 200, "sop": 150}
# Per dataset: (rmargin beta, rho), uniformity weight, s2sd (rho, weight), diva (alpha, rho)
SCRIPT = {
    "cub200": ((0.6, 0.4), 0.2, (0.4, 50.0), (0.3, 1500.0)),
    "cars196": ((0.6, 0.35), 0.2, (0.3, 50.0), (0.15, 100.0)),
    "sop": ((0.9, 0.15), 0.02, (0.0, 5.0), (0.2, 150.0)),
}


def _spec(name: str):
    return load_spec(CONFIGS / f"{name}.yaml")


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_the_papers_training_protocol(name):
    spec = _spec(name)
    model, training = spec.model, spec.training
    assert (model.backbone, model.embedding_dim, model.pretrained) == ("resnet50", 512, True)
    assert training.lr == 1e-5 and training.weight_decay == 4e-4 and training.head_lr is None
    assert (training.batch_size, training.samples_per_class) == (112, 2)
    assert training.epochs == EPOCHS[name] and training.protocol == "paper"
    assert training.class_sampling == "with_replacement" and not training.amp  # the original's sampler, fp32
    assert spec.seeds == [0, 1] and spec.tuning.trials == 0
    assert {m.label for m in spec.methods} == PAPER_METHODS
    assert all(m.variant is None and not m.search_space() for m in spec.methods)


def test_the_papers_splits():
    cub = _spec("cub200").datasets[0]
    assert cub.build.select == ["-20", "-10", "0", "6", "10", "30", "R22", "R48", "R66"]
    for name in ("cars196", "sop"):
        entry = _spec(name).datasets[0]
        assert entry.split_file and entry.splits is None and entry.default_split == "1"
    assert _spec("cars196").datasets[0].split_file.endswith("cars196_splits.pkl")


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_methods_are_built_with_the_scripts_settings(name):
    (rm_beta, rm_rho), uniform_w, (s2sd_rho, s2sd_w), (diva_alpha, diva_rho) = SCRIPT[name]
    spec = _spec(name)
    built = {
        m.label: build_method(m.name, num_classes=10, embedding_dim=512, **m.hyperparameters)
        for m in spec.methods
    }
    values = {m.label: {**m.config().hyperparameters} for m in spec.methods}

    assert torch.allclose(built["margin"].beta, torch.full((10,), 1.2))
    assert built["margin"].margin == 0.2 and built["margin"].loss_lr == 5e-4
    assert torch.allclose(built["rmargin"].beta, torch.full((10,), rm_beta))
    assert built["rmargin"].sampler.rho == rm_rho
    ms = built["multisimilarity"]
    assert (ms.alpha, ms.beta, ms.base, ms.epsilon) == (2.0, 40.0, 0.5, 0.1)
    assert (built["arcface"].margin, built["arcface"].scale) == (0.5, 16.0)
    assert (built["proxyanchor"].alpha, built["proxyanchor"].delta) == (32.0, 0.1)
    assert built["proxyanchor"].loss_lr == pytest.approx(1e-5 * 2000)
    assert values["uniformity"]["weight"] == uniform_w
    assert (values["s2sd"]["rho"], values["s2sd"]["weight"]) == (s2sd_rho, s2sd_w)
    diva = values["diva"]
    assert {diva[f"alpha_{t}"] for t in ("ssl", "shared", "intra")} == {diva_alpha}
    assert {diva[f"rho_{t}"] for t in ("ssl", "shared", "intra")} == {diva_rho}


# Per dataset and method, what the scripts set apart from the common settings (batch 112, ResNet50, no
# warm-up; few-shot: 1000 iterations at 2 shots and 1500 at 5, support batch = the run's --bs, the margin
# criterion at the run's --loss_margin_beta), and DiVA's reported weighting (fewshot_diva_ood_main.py:
# CUB 0.75-1.25-1.25-1.25, CARS 0.5-1.5-1.5-1.5, SOP 1-1-1-1).
OWN = {
    "cub200": {"diva": {"batch": 108, "weight": 0.75}, "s2sd": {"beta": 0.6}, "rmargin": {"beta": 0.6}},
    "cars196": {
        "diva": {"batch": 108, "weight": 0.5},
        "s2sd": {"beta": 0.6, "iterations": {2: 100, 5: 1500}},
        "rmargin": {"beta": 0.6},
    },
    "sop": {
        "diva": {"batch": 108, "weight": 1.0},
        "s2sd": {"beta": 0.9, "batch": 104, "backbone": "resnet101"},
        "rmargin": {"beta": 0.9},
        "proxyanchor": {"warmup": 1},
    },
}


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_each_methods_own_settings_are_the_scripts(name):
    spec = _spec(name)
    for method in spec.methods:
        own = OWN[name].get(method.label, {})
        settings = spec.method_settings(method)
        model, training, fewshot = settings.model, settings.training, settings.fewshot
        assert model.backbone == own.get("backbone", "resnet50") and model.embedding_dim == 512
        assert training.batch_size == own.get("batch", 112) and training.samples_per_class == 2
        assert training.warmup_epochs == own.get("warmup", 0)
        assert training.epochs == EPOCHS[name] and training.lr == 1e-5
        iterations = own.get("iterations", {2: 1000, 5: 1500})
        assert {k: fewshot.iterations[k] for k in iterations} == iterations
        assert fewshot.batch_size == own.get("batch", 112)  # the support batch is the run's --bs
        assert (fewshot.mode, fewshot.method, fewshot.lr_multiplier) == ("head", "margin", 10.0)
        assert (fewshot.loss_parameters, fewshot.support_transform, fewshot.reweight) == (
            "frozen",
            "train",
            False,
        )
        trial = TrialConfig(
            data={"dataset": name, "split_file": "unused.json", "split": "1"},
            model=model,
            method=method.config(),
            training=training.model_copy(update={"protocol": "validated"}),  # few-shot: selected on val
            fewshot=FewShotConfig(**fewshot.model_dump(), shots=[2, 5]),
        )
        assert adaptation_hyperparameters(trial)["beta"] == own.get("beta", 1.2)
        if method.label == "diva":
            built = build_method("diva", num_classes=10, embedding_dim=512, **method.hyperparameters)
            assert built.embedding_head(2048, 512).weights == (own["weight"],) + (2 - own["weight"],) * 3
