"""The paper configs against the paper's protocol and the original scripts' settings.

Expected values are written here from docs/protocol.md section 10 and ``OOD-Study_ZeroShot.sh`` of the original code,
not read from the configs, so a wrong number in a config (or in how a method is built from it) fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from study.spec import load_spec
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
def test_protocol_of_design_5b(name):
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
