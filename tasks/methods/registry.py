"""The registry of DML methods by name, and building one from its defaults plus overrides."""

from __future__ import annotations

import difflib

from tasks.methods import (
    arcface,
    circle,
    contrastive,
    margin,
    multisimilarity,
    proxyanchor,
    proxynca,
    rmargin,
    softtriple,
    triplet,
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
    )
}


def build_method(name: str, *, num_classes: int, embedding_dim: int, **hyperparameters: float) -> Method:
    """Build method ``name`` for ``num_classes`` train classes; unspecified hyperparameters take defaults."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (known: {', '.join(sorted(METHODS))})")
    spec = METHODS[name]
    unknown = sorted(set(hyperparameters) - set(spec.hyperparameters))
    if unknown:
        raise ValueError(
            f"method {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(spec.hyperparameters)}"
        )
    return spec.build(
        num_classes=num_classes, embedding_dim=embedding_dim, **(spec.defaults() | hyperparameters)
    )
