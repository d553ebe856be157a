"""The registry of DML methods by name, and building one from its defaults plus overrides."""

from __future__ import annotations

import difflib

from tasks.methods import (
    arcface,
    circle,
    contrastive,
    diva,
    frozen,
    margin,
    multisimilarity,
    proxyanchor,
    proxynca,
    rmargin,
    s2sd,
    softtriple,
    triplet,
    uniformity,
)
from tasks.methods.base import Method, MethodSpec

METHODS: dict[str, MethodSpec] = {
    m.SPEC.name: m.SPEC
    for m in (
        margin,
        rmargin,
        multisimilarity,
        arcface,
        proxyanchor,
        proxynca,
        triplet,
        contrastive,
        softtriple,
        circle,
        diva,
        uniformity,
        s2sd,
        frozen,
    )
}


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; an unknown name is refused with the closest known one."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


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
    spec = method_spec(name)
    variant = check_variant(spec, variant)
    unknown = sorted(set(hyperparameters) - set(spec.hyperparameters))
    if unknown:
        raise ValueError(
            f"method {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(spec.hyperparameters)}"
        )
    options = {"variant": variant} if variant is not None else {}
    return spec.build(
        num_classes=num_classes, embedding_dim=embedding_dim, **options, **(spec.defaults() | hyperparameters)
    )
