"""``isolated_registries``: whatever a test's plugins register is gone after it (the registries are global)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def isolated_registries() -> Iterator[None]:
    import study.plugins
    from tasks.data import DATASETS
    from tasks.methods import METHODS
    from tasks.models import BACKBONES
    from tasks.splits.episodes import EPISODE_BUILDERS
    from tasks.splits.features import EXTRACTORS

    registries = (METHODS, BACKBONES, DATASETS, EXTRACTORS, EPISODE_BUILDERS)
    saved = [(dict(r._entries), dict(r._origins)) for r in registries]
    loaded = dict(study.plugins._loaded)
    yield
    for registry, (entries, origins) in zip(registries, saved, strict=True):
        registry._entries, registry._origins = entries, origins
    study.plugins._loaded.clear()
    study.plugins._loaded.update(loaded)
