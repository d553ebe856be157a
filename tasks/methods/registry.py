"""The registry of DML methods by name (``METHODS``), and building one from its defaults plus overrides.

A method is a :class:`~tasks.methods.declaration.MethodSpec`: its builder (or a reference to it) and
the declaration of every hyperparameter it takes (default and search range), registered with
:func:`register_method`, the same function for the built-in methods (``tasks/methods/catalog.py``) and a
plugin's. A builder given by reference is imported, and checked against the declaration, when the
method is first built: listing and checking the registered methods imports no torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tasks.methods.declaration import BUILD_ARGUMENTS, Hyperparameter, MethodSpec
from tasks.registry import LazyReference, Registry, RegistryError

if TYPE_CHECKING:
    from tasks.methods.base import Method


class LazyBuilder(LazyReference):
    """The builder of method ``spec`` named by reference (``spec.build``, ``"package.module:name"``):
    imported and checked against the declaration (:func:`check_builder`) once, on first use: a call, a
    look at its signature, or :meth:`resolve` (the registries' one :class:`~tasks.registry.LazyReference`)."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(
            f"method {spec.name!r}",
            spec.build,
            check=lambda build: check_builder(spec.name, replace(spec, build=build)),
        )
        self.spec = spec


def check_declaration(name: str, spec: MethodSpec) -> None:
    """A method declares exactly the hyperparameters its builder takes, each a :class:`Hyperparameter`,
    takes ``variant`` exactly when it declares variants, and cites what it follows. A builder given by
    reference is checked against the declaration when first imported (:class:`LazyBuilder`)."""
    if spec.name != name:
        raise RegistryError(
            f"method {name!r}: registered under another name than its MethodSpec's {spec.name!r}"
        )
    if isinstance(spec.build, str):
        raise RegistryError(
            f"method {name!r}: its builder is a reference {spec.build!r}: register it with register_method, "
            "which imports it on first use"
        )
    if not callable(spec.build):
        raise RegistryError(f"method {name!r}: MethodSpec.build must be a callable, got {spec.build!r}")
    if not spec.description:
        raise RegistryError(
            f"method {name!r}: MethodSpec.description is empty: say what paper or idea it follows"
        )
    wrong = [k for k, hp in spec.hyperparameters.items() if not isinstance(hp, Hyperparameter)]
    if wrong:
        raise RegistryError(
            f"method {name!r}: hyperparameters {wrong} are not declared as Hyperparameter(default, low, high)"
        )
    strays = sorted(set(spec.follows) - set(spec.hyperparameters))
    if spec.margin_beta is not None and spec.margin_beta not in spec.hyperparameters:
        strays.append(spec.margin_beta)
    if strays:
        raise RegistryError(
            f"method {name!r}: MethodSpec.follows / margin_beta name {strays}, which are not among its "
            f"hyperparameters {sorted(spec.hyperparameters)}"
        )
    if not isinstance(spec.build, LazyBuilder):
        check_builder(name, spec)


def check_builder(name: str, spec: MethodSpec) -> None:
    """``spec.build`` takes the build arguments, exactly the declared hyperparameters, as keywords, and
    ``variant`` exactly when ``spec`` declares variants."""
    parameters = inspect.signature(spec.build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise RegistryError(
            f"method {name!r}: its builder takes **kwargs; name each hyperparameter as a keyword argument"
        )
    missing = sorted(set(BUILD_ARGUMENTS) - set(parameters))
    if missing:
        raise RegistryError(
            f"method {name!r}: its builder must take {missing} (build(num_classes, embedding_dim, ...))"
        )
    takes = set(parameters) - set(BUILD_ARGUMENTS) - {"variant"}
    undeclared = sorted(takes - set(spec.hyperparameters))
    if undeclared:
        raise RegistryError(
            f"method {name!r}: its builder takes {undeclared}, which the MethodSpec does not declare: "
            "add a Hyperparameter(default, low, high) for each to MethodSpec.hyperparameters"
        )
    unused = sorted(set(spec.hyperparameters) - takes)
    if unused:
        raise RegistryError(
            f"method {name!r}: declares hyperparameters {unused} that its builder does not take"
        )
    if bool(spec.variants) != ("variant" in parameters):
        raise RegistryError(
            f"method {name!r}: its builder takes a variant argument exactly when MethodSpec.variants names some"
        )


def describe_method(spec: MethodSpec) -> dict[str, Any]:
    """What ``oodml list methods`` shows: description, hyperparameters (default, search range), variants,
    and the parts a composite is built from (role -> method)."""
    return {
        "description": spec.description,
        "hyperparameters": {
            k: {"default": hp.default, "low": hp.low, "high": hp.high, "log": hp.log, "integer": hp.integer}
            | {"tune": hp.tune, "choices": list(hp.choices) if hp.choices else None}
            for k, hp in spec.hyperparameters.items()
        },
        "variants": dict(spec.variants),
        "default_variant": spec.default_variant,
        "parts": dict(spec.parts),
    }


METHODS: Registry[MethodSpec] = Registry(
    "method", MethodSpec, check=check_declaration, describe=describe_method
)


def register_method(spec: MethodSpec | None = None, /, **declaration: Any) -> Any:
    """Register a method: ``register_method(MethodSpec(...))`` returns the spec as registered (a builder
    given by reference, ``"package.module:name"``, held as a :class:`LazyBuilder`); as a decorator,
    ``@register_method(name=..., hyperparameters=..., description=...)`` over its builder (or
    :class:`Method` subclass) builds the spec from the builder and returns the builder."""
    if spec is not None:
        if declaration:
            raise TypeError("register_method: give a MethodSpec or its fields, not both")
        if isinstance(spec, MethodSpec) and isinstance(spec.build, str):
            spec = replace(spec, build=LazyBuilder(spec))
        return METHODS.register(spec)

    def decorator(build: Callable[..., Method]) -> Callable[..., Method]:
        fields = {"name": getattr(build, "__name__", None), "description": inspect.getdoc(build) or ""}
        METHODS.register(MethodSpec(build=build, **(fields | declaration)))
        return build

    return decorator


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name is refused with the closest known one."""
    return METHODS.get(name)


def check_variant(spec: MethodSpec, variant: str | None) -> str | None:
    """``variant`` if ``spec`` declares it, the default variant for ``None``; else a ValueError."""
    if variant is None:
        return spec.default_variant
    if variant not in spec.variants:
        known = ", ".join(spec.variants) or "none: it has one definition"
        raise ValueError(f"method {spec.name!r} has no variant {variant!r} (variants: {known})")
    return variant


def build_method(
    name: str, *, num_classes: int, embedding_dim: int, variant: str | None = None, **hyperparameters: float
) -> Method:
    """Build method ``name`` for ``num_classes`` train classes; unspecified hyperparameters take defaults,
    an unspecified variant the method's default (its original definition)."""
    return build_spec(
        method_spec(name),
        num_classes=num_classes,
        embedding_dim=embedding_dim,
        variant=variant,
        **hyperparameters,
    )


def build_spec(
    spec: MethodSpec,
    *,
    num_classes: int,
    embedding_dim: int,
    variant: str | None = None,
    **hyperparameters: float,
) -> Method:
    """:func:`build_method` for a method's spec (a composite's part: the registered spec at the
    composite's defaults)."""
    variant = check_variant(spec, variant)
    unknown = sorted(set(hyperparameters) - set(spec.hyperparameters))
    if unknown:
        raise ValueError(
            f"method {spec.name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(spec.hyperparameters)}"
        )
    options = {"variant": variant} if variant is not None else {}
    return spec.build(
        num_classes=num_classes, embedding_dim=embedding_dim, **options, **(spec.defaults() | hyperparameters)
    )
