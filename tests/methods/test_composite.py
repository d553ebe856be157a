"""Composite methods (tasks/methods/composite.py): built from registered parts, whose hyperparameters they
inherit into one flat namespace without declaring them again; the miner protocol and the margin
loss's reducers, each from its definition."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import (
    METHODS,
    DistanceWeightedSampler,
    Hyperparameter,
    MarginLoss,
    Method,
    MethodSpec,
    Miner,
    Part,
    PartFactory,
    build_method,
    composite,
    register_method,
)
from tasks.methods.diva import RandomLabelDistanceSampler
from tasks.methods.margin import per_active_term, per_active_triplet
from tasks.registry import RegistryError
from tests.methods.reference import LABELS, embeddings
from tests.registries import isolated_registries  # noqa: F401  (fixture)

TRIPLETS = torch.tensor([[0, 1, 3], [3, 6, 0], [6, 3, 1], [11, 12, 5]]).T


class Spread(Method):
    """A test composite: ``criterion``'s loss plus ``spread`` x the squared norm of the batch mean."""

    def __init__(self, criterion: Method, spread: float) -> None:
        super().__init__(criterion.loss_lr)
        self.criterion, self.spread = criterion, spread

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.criterion(embeddings, labels) + self.spread * embeddings.mean(0).pow(2).sum()


def build_spread(num_classes: int, embedding_dim: int, *, criterion: PartFactory, spread: float) -> Spread:
    return Spread(criterion(), spread)


def spread_spec(**declared: Hyperparameter) -> MethodSpec:
    return MethodSpec(
        name="spread",
        build=build_spread,
        hyperparameters={"spread": Hyperparameter(0.1, 0.0, 1.0)} | declared,
        description="margin loss plus a spread term (a test)",
        margin_beta="beta",
    )


@pytest.mark.usefixtures("isolated_registries")
def test_a_composite_of_the_registered_margin_declares_none_of_its_hyperparameters():
    spec = register_method(composite(spread_spec(), criterion=Part("margin")))
    margin = METHODS["margin"]
    assert set(spread_spec().hyperparameters) == {"spread"}  # what the composite's module declares
    assert spec.hyperparameters == margin.hyperparameters | {"spread": Hyperparameter(0.1, 0.0, 1.0)}
    assert set(inspect.signature(spec.build).parameters) == {
        "num_classes",
        "embedding_dim",
        *spec.hyperparameters,
    }
    assert spec.parts == {"criterion": "margin"} and METHODS.describe("spread")["parts"] == spec.parts

    method = build_method("spread", num_classes=6, embedding_dim=6, beta=0.9, spread=0.5)
    assert type(method.criterion) is MarginLoss and type(method.criterion.miner) is DistanceWeightedSampler
    assert torch.equal(method.criterion.beta.detach(), torch.full((6,), 0.9))
    method.criterion.miner = lambda e, y: tuple(TRIPLETS)
    alone = MarginLoss(6, beta=0.9, margin=0.2, nu=0.0, loss_lr=5e-4, sampler=lambda e, y: tuple(TRIPLETS))
    x = embeddings()
    expected = alone(x, LABELS) + 0.5 * x.mean(0).pow(2).sum()
    torch.testing.assert_close(method(x, LABELS), expected, rtol=0, atol=0)


@pytest.mark.usefixtures("isolated_registries")
def test_a_part_changes_the_default_for_its_composite_only():
    low_beta = Part("margin", hyperparameters={"beta": Hyperparameter(0.6, 0.3, 1.6)})
    spec = register_method(composite(spread_spec(), criterion=low_beta))
    assert spec.defaults()["beta"] == 0.6 and METHODS["margin"].defaults()["beta"] == 1.2
    beta = build_method("spread", num_classes=2, embedding_dim=4).criterion.beta
    assert torch.equal(beta.detach(), torch.full((2,), 0.6))


@pytest.mark.parametrize(
    ("spec", "part", "error"),
    [
        (spread_spec(beta=Hyperparameter(1.0, 0.5, 1.6)), Part("margin"), "declares 'beta', which its part"),
        (
            spread_spec(),
            Part("margin", hyperparameters={"rho": Hyperparameter(0.4, 0.0, 0.6)}),
            "sets \\['rho'\\]",
        ),
        (spread_spec(other=Hyperparameter(1.0, 0.0, 2.0)), Part("margin"), "builder must take \\['other'\\]"),
    ],
)
def test_a_composite_declares_each_hyperparameter_once(spec, part, error):
    with pytest.raises(RegistryError, match=error):
        composite(spec, criterion=part)


def test_a_factory_builds_a_fresh_part_and_replaces_its_miner():
    factory = PartFactory(METHODS["margin"], 4, 8, METHODS["margin"].defaults())
    first, second = factory(), factory(miner=RandomLabelDistanceSampler())
    assert first.beta is not second.beta and type(first.miner) is DistanceWeightedSampler
    assert type(second.miner) is RandomLabelDistanceSampler
    with pytest.raises(TypeError, match="'arcface' is not a mined loss"):
        PartFactory(METHODS["arcface"], 4, 8, METHODS["arcface"].defaults())(miner=DistanceWeightedSampler())


def test_every_miner_mines_when_called():
    """Calling a miner is its ``mine`` (declared once, on :class:`Miner`)."""
    miners = {cls for cls in _subclasses(Miner)}
    assert {"DistanceWeightedSampler", "RhoDistanceSampler", "SemihardMiner"} <= {c.__name__ for c in miners}
    for cls in miners:
        assert cls.__call__ is Miner.__call__, cls
    x = F.normalize(torch.randn(12, 8), dim=1)
    labels = torch.arange(6).repeat(2)
    torch.manual_seed(0)
    called = DistanceWeightedSampler()(x, labels)
    torch.manual_seed(0)
    assert all(
        torch.equal(a, b) for a, b in zip(called, DistanceWeightedSampler().mine(x, labels), strict=True)
    )


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_margin_reducers_average_as_their_variants_define():
    pos, neg = torch.tensor([0.3, 0.0, 0.0, 0.2]), torch.tensor([0.1, 0.0, 0.4, 0.5])
    beta_term = torch.tensor(0.05)
    # original: 3 triplets with a non-zero term; wu: 5 non-zero pair terms
    torch.testing.assert_close(per_active_triplet(pos, neg, beta_term), torch.tensor(1.5 / 3 + 0.05))
    torch.testing.assert_close(per_active_term(pos, neg, beta_term), torch.tensor((1.5 + 0.05) / 5))
    nothing = torch.zeros(3)
    assert (
        per_active_triplet(nothing, nothing, torch.tensor(0.0))
        == 0
        == per_active_term(nothing, nothing, beta_term * 0)
    )
