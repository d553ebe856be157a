"""Methods built from registered methods: a composite names each component it builds (a criterion) by
role, as a :class:`~tasks.methods.base.Part` naming a registered method, and its builder receives, for
each role, a :class:`PartFactory` that builds that method afresh, instead of taking the part's
hyperparameters and building it by hand.

The composite's hyperparameters stay one flat namespace: the parts' (declared once, in each part's own
module, at the defaults and ranges the :class:`Part` may change) followed by its own, in the order of its
builder's arguments (a part's where its role stands). So configs, tuning and trial ids see the names
they would see if the composite declared them all; the registered ``build`` takes that namespace, as
every method's does, and builds the parts from it. A composite whose builder is named by reference
(``"package.module:name"``) declares the order instead (its parts' first, or ``parts_last``), and its
builder is imported and checked against it on first use; this module imports no torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tasks.methods.declaration import BUILD_ARGUMENTS, Hyperparameter, MethodSpec, Part
from tasks.methods.registry import build_spec, method_spec
from tasks.registry import RegistryError, resolve_reference

if TYPE_CHECKING:
    from torch import Tensor

    from tasks.methods.base import Method


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
        from tasks.methods.miners import MinedLoss

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
    builds a :class:`PartFactory` per role and calls the composite's own builder with them. A builder
    given by reference is imported and checked (:func:`builder_arguments`, and that it orders the
    hyperparameters as declared) on the first call or :meth:`resolve`; ``takes`` are the hyperparameters
    a callable builder takes (as :func:`composite` checked them)."""

    def __init__(
        self,
        name: str,
        build: Callable[..., Method] | str,
        parts: dict[str, MethodSpec],
        own: dict[str, Hyperparameter],
        hyperparameters: dict[str, Hyperparameter],
        variants: bool,
        takes: list[str] | None,
    ) -> None:
        self.name, self.build, self.parts, self.own = name, build, parts, own
        self.hyperparameters, self.variants = hyperparameters, variants
        # the builder and the hyperparameters it takes, once checked (None: a reference not yet imported)
        self.resolved = None if isinstance(build, str) else build
        self.takes = takes
        self.__name__ = (
            build.rpartition(":")[2] if isinstance(build, str) else getattr(build, "__name__", "build")
        )
        self.__doc__ = None if isinstance(build, str) else build.__doc__
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
        self.__signature__ = inspect.Signature(arguments, return_annotation="Method")

    def resolve(self) -> Callable[..., Method]:
        """The composite's own builder, imported (once) if given by reference, and checked."""
        if self.resolved is None:
            build = resolve_reference(f"method {self.name!r}", self.build)
            arguments = builder_arguments(self.name, build, self.parts, self.own, self.hyperparameters)
            ordered = list(flat_hyperparameters(arguments, self.parts, self.own))
            if ordered != list(self.hyperparameters):
                raise RegistryError(
                    f"method {self.name!r}: its builder takes the hyperparameters in the order {ordered}, its "
                    f"declaration in {list(self.hyperparameters)}: order the builder's arguments as declared"
                )
            self.takes, self.resolved = own_arguments(arguments, self.parts), build
        return self.resolved

    def __call__(self, num_classes: int, embedding_dim: int, **arguments: Any) -> Method:
        build = self.resolve()
        factories = {
            role: PartFactory(
                spec, num_classes, embedding_dim, {k: arguments[k] for k in spec.hyperparameters}
            )
            for role, spec in self.parts.items()
        }
        own = {k: arguments[k] for k in self.takes} | (
            {"variant": arguments["variant"]} if self.variants else {}
        )
        return build(num_classes=num_classes, embedding_dim=embedding_dim, **factories, **own)


def composite(spec: MethodSpec, *, parts_last: bool = False, **parts: Part) -> MethodSpec:
    """``spec`` built from ``parts`` (role -> :class:`Part`): its builder takes ``num_classes``,
    ``embedding_dim``, a :class:`PartFactory` per role, its own hyperparameters (``spec.hyperparameters``)
    and any of its parts' it reads. Returns the spec to register, with the flat namespace and a
    :class:`ComposedBuild`; the parts must be registered already.

    The namespace follows the builder's arguments (a part's hyperparameters where its role stands); for
    a builder given by reference, the parts' come first in the order of ``parts``, then the own ones
    (``parts_last``: the other way round), and the builder is checked to take them so when imported."""
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
    if isinstance(spec.build, str):
        order = [*spec.hyperparameters, *parts] if parts_last else [*parts, *spec.hyperparameters]
    elif parts_last:
        raise RegistryError(
            f"method {name!r}: parts_last orders the hyperparameters of a builder given by reference; a "
            "builder given as a callable orders them by its arguments"
        )
    else:
        declared = spec.hyperparameters | {k: hp for k, (_, hp) in inherited.items()}
        order = builder_arguments(name, spec.build, resolved, spec.hyperparameters, declared)
    flat = flat_hyperparameters(order, resolved, spec.hyperparameters)
    takes = None if isinstance(spec.build, str) else own_arguments(order, resolved)
    build = ComposedBuild(name, spec.build, resolved, spec.hyperparameters, flat, bool(spec.variants), takes)
    return replace(
        spec, build=build, hyperparameters=flat, parts={role: part.method for role, part in parts.items()}
    )


def builder_arguments(
    name: str,
    build: Callable[..., Method],
    parts: Mapping[str, MethodSpec],
    own: Mapping[str, Hyperparameter],
    declared: Mapping[str, Hyperparameter],
) -> list[str]:
    """The arguments of composite ``name``'s own builder, in order, checked: ``num_classes``,
    ``embedding_dim``, each role of ``parts`` and each ``own`` hyperparameter, and no other than
    ``declared`` (its own and its parts' hyperparameters) and ``variant``."""
    parameters = inspect.signature(build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise RegistryError(f"method {name!r}: its builder takes **kwargs; name each argument")
    missing = sorted({*BUILD_ARGUMENTS, *parts, *own} - set(parameters))
    if missing:
        raise RegistryError(
            f"method {name!r}: its builder must take {missing} (num_classes, embedding_dim, a factory per "
            "part's role, each own hyperparameter)"
        )
    undeclared = sorted(set(own_arguments(list(parameters), parts)) - set(declared))
    if undeclared:
        raise RegistryError(
            f"method {name!r}: its builder takes {undeclared}, which neither it nor its parts declare: add a "
            "Hyperparameter(default, low, high) for each to MethodSpec.hyperparameters"
        )
    return list(parameters)


def own_arguments(arguments: list[str], parts: Mapping[str, MethodSpec]) -> list[str]:
    """The hyperparameters among a composite builder's ``arguments``: its own and those of its parts' it
    reads (not the build arguments, a role or ``variant``)."""
    return [k for k in arguments if k not in {*BUILD_ARGUMENTS, *parts, "variant"}]


def flat_hyperparameters(
    order: list[str], parts: Mapping[str, MethodSpec], own: Mapping[str, Hyperparameter]
) -> dict[str, Hyperparameter]:
    """The composite's one namespace: for each name of ``order``, a role's part's hyperparameters or an own
    one (other names, such as the build arguments, hold none)."""
    flat: dict[str, Hyperparameter] = {}
    for k in order:
        if k in parts:
            flat |= parts[k].hyperparameters
        elif k in own:
            flat[k] = own[k]
    return flat


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
