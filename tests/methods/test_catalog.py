"""The built-in methods' catalog (tasks/methods/catalog.py): declarations read without torch, each builder
named by reference, imported and checked against its declaration on first use; a plugin may name its
builder so too (tasks/methods/registry.py ``LazyBuilder``, tasks/methods/composite.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from tasks.methods import (
    METHODS,
    DistanceWeightedSampler,
    Hyperparameter,
    MarginLoss,
    Method,
    MethodSpec,
    Part,
    PartFactory,
    build_method,
    composite,
    register_method,
)
from tasks.methods.composite import ComposedBuild
from tasks.methods.registry import LazyBuilder, check_builder
from tasks.registry import BUILTIN, RegistryError
from tests.methods.reference import LABELS, embeddings
from tests.methods.test_composite import Spread, build_spread  # noqa: F401  (build_spread: named by reference)
from tests.registries import isolated_registries  # noqa: F401  (fixture)

BUILT_IN = sorted(name for name in METHODS if METHODS.origin(name) == BUILTIN)


def test_reading_every_declaration_imports_no_torch():
    code = (
        "import sys; from tasks.methods import METHODS; import inspect; "
        "[METHODS.describe(n) for n in METHODS]; "
        "[inspect.signature(METHODS[n].build) for n in METHODS if METHODS[n].parts]; "
        "print(sorted(m for m in ('torch', 'pytorch_metric_learning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_builder_resolves_and_takes_what_it_declares(name):
    """Each reference imports, and the builder takes exactly the declared hyperparameters (and variant;
    a composite: its parts' roles and its own, in the declared order)."""
    spec = METHODS[name]
    assert isinstance(spec.build, LazyBuilder | ComposedBuild), "a built-in names its builder by reference"
    assert isinstance(spec.build.build if spec.parts else spec.build.reference, str)
    resolved = spec.build.resolve()
    assert callable(resolved) and resolved.__module__.startswith("tasks.methods.")
    if spec.parts:
        assert set(spec.build.takes) <= set(spec.hyperparameters)
    else:
        check_builder(name, replace(spec, build=resolved))
    assert spec.build.resolve() is resolved  # imported once


def build_scaled(num_classes: int, embedding_dim: int, *, scale: float) -> Method:
    return MarginLoss(
        num_classes, beta=1.2, margin=0.2 * scale, nu=0.0, loss_lr=5e-4, sampler=DistanceWeightedSampler()
    )


def build_unscaled(num_classes: int, embedding_dim: int, *, shift: float) -> Method:
    return MarginLoss(
        num_classes, beta=1.2, margin=shift, nu=0.0, loss_lr=5e-4, sampler=DistanceWeightedSampler()
    )


def plain_spec(reference: str) -> MethodSpec:
    return MethodSpec(
        name="scaled",
        build=reference,
        hyperparameters={"scale": Hyperparameter(1.0, 0.5, 2.0)},
        description="the margin loss with a scaled margin (a test)",
    )


@pytest.mark.usefixtures("isolated_registries")
def test_a_builder_by_reference_is_imported_on_first_build():
    spec = register_method(plain_spec(f"{__name__}:build_scaled"))
    assert isinstance(spec.build, LazyBuilder) and spec.build.resolved is None
    method = build_method("scaled", num_classes=3, embedding_dim=4, scale=2.0)
    assert spec.build.resolved is build_scaled and method.margin == pytest.approx(0.4)


@pytest.mark.usefixtures("isolated_registries")
@pytest.mark.parametrize(
    ("reference", "error"),
    [
        (f"{__name__}:build_unscaled", r"takes \['shift'\], which the MethodSpec does not declare"),
        (f"{__name__}:no_such_builder", "cannot be imported"),
        ("tests.methods.no_such_module:build", "cannot be imported"),
        (f"{__name__}:BUILT_IN", "is not callable"),
    ],
)
def test_a_builder_by_reference_that_disagrees_is_refused_when_first_built(reference, error):
    register_method(plain_spec(reference))  # registering imports nothing
    with pytest.raises(RegistryError, match=error):
        build_method("scaled", num_classes=3, embedding_dim=4)


@pytest.mark.usefixtures("isolated_registries")
def test_a_reference_not_naming_module_and_builder_is_refused_when_registered():
    with pytest.raises(RegistryError, match="'package.module:name'"):
        register_method(plain_spec("tests.methods.test_catalog.build_scaled"))


def build_spread_last(
    num_classes: int, embedding_dim: int, *, spread: float, criterion: PartFactory
) -> Spread:
    return Spread(criterion(), spread)


def spread_spec(build) -> MethodSpec:
    return MethodSpec(
        name="spread",
        build=build,
        hyperparameters={"spread": Hyperparameter(0.1, 0.0, 1.0)},
        description="margin loss plus a spread term (a test)",
    )


@pytest.mark.usefixtures("isolated_registries")
@pytest.mark.parametrize(("builder", "parts_last"), [("build_spread", False), ("build_spread_last", True)])
def test_a_composite_by_reference_declares_its_order_and_builds_as_a_callable_one(builder, parts_last):
    by_reference = composite(
        spread_spec(f"{__name__}:{builder}"), criterion=Part("margin"), parts_last=parts_last
    )
    callable_one = composite(spread_spec(globals()[builder]), criterion=Part("margin"))
    assert list(by_reference.hyperparameters) == list(callable_one.hyperparameters)
    assert by_reference.build.resolved is None  # not imported yet
    register_method(by_reference)
    torch.manual_seed(0)
    method = build_method("spread", num_classes=6, embedding_dim=6, beta=0.9, spread=0.5)
    x = embeddings()
    torch.manual_seed(1)
    loss = method(x, LABELS)
    torch.manual_seed(0)
    same = callable_one.build(
        num_classes=6, embedding_dim=6, **(callable_one.defaults() | {"beta": 0.9, "spread": 0.5})
    )
    torch.manual_seed(1)
    torch.testing.assert_close(loss, same(x, LABELS), rtol=0, atol=0)


@pytest.mark.usefixtures("isolated_registries")
def test_a_composite_by_reference_in_another_order_than_declared_is_refused_when_first_built():
    register_method(composite(spread_spec(f"{__name__}:build_spread_last"), criterion=Part("margin")))
    with pytest.raises(RegistryError, match="order the builder's arguments as declared"):
        build_method("spread", num_classes=3, embedding_dim=4)


def test_parts_last_orders_a_builder_by_reference_only():
    with pytest.raises(RegistryError, match="parts_last orders the hyperparameters of a builder given by"):
        composite(spread_spec(build_spread_last), criterion=Part("margin"), parts_last=True)
