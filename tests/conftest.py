"""Fixtures shared across test folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_glyphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Options of a glyph benchmark rendered from 2 faces and the first 120 characters (well under a second),
    with ``root`` a session-wide cache folder: pass as ``build_dataset("glyphs", **tiny_glyphs, num_classes=...)``.
    """
    return {
        "root": tmp_path_factory.mktemp("glyph-cache"),
        "faces": ("DejaVuSans", "DejaVuSerif-Bold"),
        "max_chars": 120,
        "jitters": 2,
    }


# Ray for the study tests: one local instance per test session, since starting one costs seconds. The
# environment is set before any test module imports ray: no usage stats, no token auth, nodes bound
# to 127.0.0.1, Tune's console output off, no excessive-snapshot warnings.
RAY_TEST_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
os.environ.update(RAY_TEST_ENV)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[str]:
    """A local Ray (2 CPUs, 100 MiB object store, short temp dir for its sockets) shared by the session;
    the study runner joins it instead of starting its own. Yields the temp dir."""
    import ray

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        log_to_driver=False,
        _temp_dir=temp,
    )
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread: on a busy 2-core machine, small ops on two threads mostly wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
