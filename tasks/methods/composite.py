"""Methods built from registered methods: a composite names each component it builds (a criterion) by
role, as a :class:`~tasks.methods.base.Part` naming a registered method, and its builder receives, for
each role, a :class:`PartFactory` that builds that method afresh, instead of taking the part's
hyperparameters and building it by hand.

The composite's hyperparameters stay one flat namespace: the parts' (declared once, in each part's own
module, at the defaults and ranges the :class:`Part` may change) followed by its own, in the order of its
builder's arguments (a part's where its role stands). So configs, tuning and trial ids see the names
they would see if the composite declared them all; the registered ``build`` takes that namespace, as
every method's does, and builds the parts from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from tasks.methods.base import BUILD_ARGUMENTS, Hyperparameter, Method, MethodSpec, Part
from tasks.methods.miners import MinedLoss
from tasks.registry import RegistryError


@dataclass(frozen=True)
class PartFactory:
    """Builds the part ``spec`` afresh at the composite's values of its hyperparameters; ``miner``
    replaces the miner of a part that mines (DiVA's shared and intra criteria mine under random labels).
    Each call builds a new part with its own parameters and miner."""

    spec: MethodSpec
    num_classes: int
    embedding_dim: int
    hyperparameters: Mapping[str, float | int]

    def __call__(self, *, miner: Callable[[Tensor, Tensor], Any] | None = None) -> Method:
        from tasks.methods.registry import build_spec

        part = build_spec(
            self.spec, num_classes=self.num_classes, embedding_dim=self.embedding_dim, **self.hyperparameters
        )
        if miner is not None:
            if not isinstance(part, MinedLoss):
                raise TypeError(f"part {self.spec.name!r} is not a mined loss: it takes no miner")
            part.miner = miner
        return part


class ComposedBuild:
    """A composite's registered builder: takes its flat hyperparameters (its signature says which),
    builds a :class:`PartFactory` per role and calls the composite's own builder with them."""

    def __init__(
        self,
        build: Callable[..., Method],
        parts: dict[str, MethodSpec],
        hyperparameters: dict[str, Hyperparameter],
        takes: list[str],
        variants: bool,
    ) -> None:
        self.build, self.parts, self.takes, self.variants = build, parts, takes, variants
        self.__name__ = getattr(build, "__name__", type(self).__name__)
        self.__doc__ = build.__doc__
        keyword = inspect.Parameter.KEYWORD_ONLY
        arguments = [
            inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int)
            for k in BUILD_ARGUMENTS
        ]
        arguments += (
            [inspect.Parameter("variant", keyword, default=None, annotation=str | None)] if variants else []
        )
        arguments += [
            inspect.Parameter(k, keyword, annotation=int if hp.integer else float)
            for k, hp in hyperparameters.items()
        ]
        self.__signature__ = inspect.Signature(arguments, return_annotation=Method)

    def __call__(self, num_classes: int, embedding_dim: int, **arguments: Any) -> Method:
        factories = {
            role: PartFactory(
                spec, num_classes, embedding_dim, {k: arguments[k] for k in spec.hyperparameters}
            )
            for role, spec in self.parts.items()
        }
        own = {k: arguments[k] for k in self.takes} | (
            {"variant": arguments["variant"]} if self.variants else {}
        )
        return self.build(num_classes=num_classes, embedding_dim=embedding_dim, **factories, **own)


def composite(spec: MethodSpec, **parts: Part) -> MethodSpec:
    """``spec`` built from ``parts`` (role -> :class:`Part`): its builder takes ``num_classes``,
    ``embedding_dim``, a :class:`PartFactory` per role, its own hyperparameters (``spec.hyperparameters``)
    and any of its parts' it reads. Returns the spec to register, with the flat namespace and a
    :class:`ComposedBuild`; the parts must be registered already."""
    from tasks.methods.registry import method_spec

    name = spec.name
    resolved = {role: _part_spec(name, role, part, method_spec(part.method)) for role, part in parts.items()}
    inherited: dict[str, tuple[str, Hyperparameter]] = {}
    for role, part in resolved.items():
        for k, hp in part.hyperparameters.items():
            if k in inherited:
                raise RegistryError(
                    f"method {name!r}: parts {inherited[k][0]!r} and {role!r} both declare {k!r}; one "
                    "namespace holds each hyperparameter once"
                )
            if k in spec.hyperparameters:
                raise RegistryError(
                    f"method {name!r}: declares {k!r}, which its part {role!r} ({part.name}) declares: give it "
                    f"another default or range with Part({part.name!r}, hyperparameters={{{k!r}: ...}})"
                )
            inherited[k] = (role, hp)
    parameters = inspect.signature(spec.build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise RegistryError(f"method {name!r}: its builder takes **kwargs; name each argument")
    expected = set(BUILD_ARGUMENTS) | set(parts) | set(spec.hyperparameters)
    missing = sorted(expected - set(parameters))
    if missing:
        raise RegistryError(
            f"method {name!r}: its builder must take {missing} (num_classes, embedding_dim, a factory per "
            "part's role, each own hyperparameter)"
        )
    takes = [k for k in parameters if k not in set(BUILD_ARGUMENTS) | set(parts) | {"variant"}]
    undeclared = sorted(set(takes) - set(spec.hyperparameters) - set(inherited))
    if undeclared:
        raise RegistryError(
            f"method {name!r}: its builder takes {undeclared}, which neither it nor its parts declare: add a "
            "Hyperparameter(default, low, high) for each to MethodSpec.hyperparameters"
        )
    flat: dict[str, Hyperparameter] = {}
    for k in parameters:
        if k in resolved:
            flat |= resolved[k].hyperparameters
        elif k in spec.hyperparameters:
            flat[k] = spec.hyperparameters[k]
    return replace(
        spec,
        build=ComposedBuild(spec.build, resolved, flat, takes, bool(spec.variants)),
        hyperparameters=flat,
        parts={role: part.method for role, part in parts.items()},
    )


def _part_spec(name: str, role: str, part: Part, spec: MethodSpec) -> MethodSpec:
    """``spec`` with ``part``'s defaults and ranges for this composite."""
    if not isinstance(part, Part):
        raise RegistryError(f"method {name!r}: part {role!r} must be a Part(method), got {part!r}")
    unknown = sorted(set(part.hyperparameters) - set(spec.hyperparameters))
    if unknown:
        raise RegistryError(
            f"method {name!r}: Part({part.method!r}) for {role!r} sets {unknown}, which {part.method!r} does not "
            f"declare (it declares {', '.join(spec.hyperparameters)}); declare new ones in "
            "MethodSpec.hyperparameters"
        )
    return replace(spec, hyperparameters=spec.hyperparameters | part.hyperparameters)
