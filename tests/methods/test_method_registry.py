"""The method registry: every entry builds from its defaults, and its declared hyperparameters are
exactly what its builder takes, so configs and code cannot drift apart."""

import inspect
from pathlib import Path

import pytest
import torch

from tasks.methods import METHODS, Hyperparameter, Method, build_method

PAPER_METHODS = {"margin", "rmargin", "multisimilarity", "arcface", "proxyanchor"}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_builds_from_defaults(name):
    spec = METHODS[name]
    method = build_method(name, num_classes=10, embedding_dim=32)
    assert isinstance(method, Method) and spec.name == name and spec.description
    params = inspect.signature(spec.build).parameters
    options = {"num_classes", "embedding_dim"} | ({"variant"} if spec.variants else set())
    assert set(params) - options == set(spec.hyperparameters) and options <= set(params)
    groups = method.param_groups()
    if groups:
        assert (
            groups[0]["lr"] == spec.hyperparameters["loss_lr"].default > 0 and groups[0]["weight_decay"] == 0
        )
    else:
        assert "loss_lr" not in spec.hyperparameters and not list(method.parameters())
    x = torch.nn.functional.normalize(torch.randn(20, 32), dim=1)
    assert method(x, torch.arange(10).repeat(2)).shape == ()


@pytest.mark.parametrize(
    ("name", "variant"),
    [(name, v) for name, spec in sorted(METHODS.items()) for v in list(spec.variants)[1:]],
)
def test_builds_every_variant(name, variant):
    method = build_method(name, num_classes=10, embedding_dim=32, variant=variant)
    default = build_method(name, num_classes=10, embedding_dim=32)
    assert isinstance(method, Method) and METHODS[name].variants[variant]
    groups = method.param_groups()
    assert [g["lr"] for g in groups] == [g["lr"] for g in default.param_groups()]
    x = torch.nn.functional.normalize(torch.randn(20, 32), dim=1)
    assert method(x, torch.arange(10).repeat(2)).shape == ()


ORIGINAL_VARIANTS = {
    "margin": ["original", "wu"],
    "multisimilarity": ["original", "pml"],
    "arcface": ["original", "pml"],
    "proxyanchor": ["original", "pml"],
    "triplet": ["original", "pml"],
    "contrastive": ["original", "pml"],
    "rmargin": [],
    "proxynca": [],
}


@pytest.mark.parametrize(("name", "variants"), sorted(ORIGINAL_VARIANTS.items()))
def test_oodml_methods_default_to_the_original(name, variants):
    """docs/protocol.md section 10: the ooDML code's definition is the default; a library's convention is
    a variant."""
    assert list(METHODS[name].variants) == variants


def test_paper_methods_and_settings():
    assert PAPER_METHODS <= set(METHODS)
    assert METHODS["margin"].defaults() == {"beta": 1.2, "margin": 0.2, "nu": 0.0, "loss_lr": 5e-4}
    assert METHODS["rmargin"].defaults()["beta"] == 0.6 and METHODS["rmargin"].defaults()["rho"] == 0.4
    ms = METHODS["multisimilarity"].defaults()
    assert (ms["alpha"], ms["beta"], ms["epsilon"]) == (2.0, 40.0, 0.1)
    assert METHODS["arcface"].defaults() | {"loss_lr": 0} == {"margin": 0.5, "scale": 16.0, "loss_lr": 0}
    assert (METHODS["proxyanchor"].defaults()["alpha"], METHODS["proxyanchor"].defaults()["delta"]) == (
        32.0,
        0.1,
    )
    # ooDML parameters.py: network lr 1e-5; proxy lr multipliers 2000 (oproxy) and 50 (proxynca)
    assert METHODS["proxyanchor"].defaults()["loss_lr"] == pytest.approx(1e-5 * 2000)
    assert METHODS["proxynca"].defaults() == pytest.approx({"scale": 3.0, "loss_lr": 1e-5 * 50})
    assert (
        METHODS["arcface"].defaults()["loss_lr"] == 5e-4 and METHODS["rmargin"].defaults()["loss_lr"] == 5e-4
    )
    assert METHODS["multisimilarity"].defaults()["base"] == 0.5
    assert METHODS["triplet"].defaults() == {"margin": 0.2}
    assert METHODS["contrastive"].defaults() == {"pos_margin": 0.0, "neg_margin": 1.0}


def test_overrides_reach_the_method():
    method = build_method("rmargin", num_classes=3, embedding_dim=8, rho=0.15, beta=0.9)
    assert method.sampler.rho == 0.15 and torch.allclose(method.beta, torch.full((3,), 0.9))


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="did you mean 'multisimilarity'"):
        build_method("multisimilarty", num_classes=3, embedding_dim=8)


def test_unknown_hyperparameter_names_allowed_ones():
    with pytest.raises(ValueError, match=r"'gamma'.*allowed: margin, scale, loss_lr"):
        build_method("arcface", num_classes=3, embedding_dim=8, gamma=2.0)


@pytest.mark.parametrize(
    ("args", "error"),
    [((2.0, 3.0, 4.0), ValueError), ((1.0, 0.0, 1.0, True), ValueError), ((2, 1, 4.0), TypeError)],
)
def test_hyperparameter_validation(args, error):
    with pytest.raises(error):
        Hyperparameter(*args)


def test_hyperparameter_kinds():
    assert Hyperparameter(10, 2, 20).integer and not Hyperparameter(0.1, 0.01, 0.5, log=True).integer


def test_readme_lists_every_method_with_its_variants():
    """The README's method table and the registry cannot drift apart."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[4].strip()
        for line in readme.splitlines()
        if line.startswith("| `") and len(line.split("|")) == 6  # | method | source | in ooDML | variants |
    }
    built_in = {name: spec for name, spec in METHODS.items() if METHODS.origin(name) == "oodml"}
    assert set(rows) == set(built_in)  # not what a plugin loaded by another test registered
    for name, spec in built_in.items():
        listed = [v.strip().strip("`") for v in rows[name].split(",")] if rows[name] != "-" else []
        assert listed == list(spec.variants), name


def test_choices_hold_the_default_within_the_range() -> None:
    from tasks.methods.base import Hyperparameter

    assert Hyperparameter(1.0, 0.5, 1.0, choices=(1.0, 0.75)).choices == (1.0, 0.75)
    for bad in ((0.75, 0.5), (1.0,), (1.0, 2.0)):
        with pytest.raises(ValueError, match="choices"):
            Hyperparameter(1.0, 0.5, 1.0, choices=bad)
