"""Connecting to Ray: a local instance on 127.0.0.1, or the cluster named by an address or RAY_ADDRESS.

On Linux Ray binds a local instance to the machine's outward-facing address unless it is told it is
not part of a cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the switch Ray itself uses on laptops).
Everything a local instance starts then listens on 127.0.0.1. Ray reads the switch when ``ray`` is
first imported, so a caller that imported ``ray`` before us gets it applied to the loaded constant.

A local instance takes no port a head node on the same machine needs (``ray start --head`` after or
during a local study, docs/cluster.md): every port it opens is picked free, its dashboard agent's too
(Ray's default for that one is the fixed 52365, and a head whose agent cannot bind it never accepts a
``ray job submit``).

On a cluster, every node must see the study folder at the same path (trials write their folders and
checkpoints there): ``check_shared_storage`` proves it before any trial runs, with a marker file the
driver writes and a task on every node reads.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path

from study.results.layout import NODE_CHECK_FILE
from study.results.storage import ObjectPath, StudyPath, Where, locate

LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# No usage reports; Tune's console output off (the runner prints its progress itself); Ctrl-C stops the
# driver at once (Tune would instead end the stage and suggest Tuner.restore; we resume from the study);
# Tune's own per-trial CSV/JSON/TensorBoard logs off: a study records to its results tables and MLflow,
# and tensorboardX printed a bare "NaN or Inf found in input tensor." for every NaN a trial reports
# (e.g. the objective of an oracle trial, which has no validation curve).
DEFAULTS = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def configure(address: str | None) -> str | None:
    """The cluster to join (the address, else ``RAY_ADDRESS``; None: a local Ray), with the environment
    set for it. Call before anything imports ``ray``."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if address is None:
        os.environ.setdefault(LOCAL_ONLY, "0")
    return address


def _apply_local_only(ray) -> None:
    """Apply ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` even if ``ray`` was imported before it was set: Ray
    keeps it in ``ray_constants.ENABLE_RAY_CLUSTER``, which it reads when it picks the node address."""
    constants = ray._private.ray_constants
    if os.environ.get(LOCAL_ONLY) == "0" and getattr(constants, "ENABLE_RAY_CLUSTER", False):
        constants.ENABLE_RAY_CLUSTER = False


@contextmanager
def _free_agent_port(ray):
    """Within: a Ray started here gives its dashboard agent a free port instead of the fixed 52365.
    ``ray.init`` has no argument for it (``ray start`` has ``--dashboard-agent-listen-port``), so the
    default of the one parameter ``ray.init`` leaves unset is set to 0, which the agent reads as "pick
    a free port" (``ray/dashboard/agent.py``)."""
    params = ray._private.parameter.RayParams
    original = params.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("dashboard_agent_listen_port", 0)
        original(self, *args, **kwargs)

    params.__init__ = init
    try:
        yield
    finally:
        params.__init__ = original


def init_local(**kwargs):
    """``ray.init(address="local", **kwargs)`` on 127.0.0.1, taking no port a head node needs."""
    import ray

    _apply_local_only(ray)
    with _free_agent_port(ray):
        return ray.init(address="local", **kwargs)


class StorageNotSharedError(RuntimeError):
    """Some node of the cluster does not see the study folder (its message says what to do)."""


def _read_marker(path: str) -> tuple[str, str | None, str | None]:
    """On one node: (hostname, the marker's content or None, why it could not be read)."""
    try:
        return socket.gethostname(), locate(path).read_text(), None
    except OSError as err:
        return socket.gethostname(), None, f"{type(err).__name__}: {err.strerror or err}"


def check_shared_storage(study_dir: Where, *, timeout: float = 300.0) -> int:
    """Refuse a cluster whose nodes do not all see ``study_dir``: the driver writes a marker file with a
    fresh token into it, and a task pinned to every alive node (NodeAffinitySchedulingStrategy, no CPU)
    reads it back. For a study folder on an object store this proves every node reaches the store with
    its own credentials. Returns the number of nodes checked; raises ``StorageNotSharedError``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = locate(study_dir).resolve() / NODE_CHECK_FILE
    token = secrets.token_hex(16)
    marker.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        read = ray.remote(num_cpus=0, max_retries=0)(_read_marker)
        pending = [
            read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(marker)
            )
            for n in nodes
        ]
        seen = ray.get(pending, timeout=timeout)
    finally:
        marker.unlink(missing_ok=True)
    blind = [
        f"{node['NodeManagerAddress']} ({host}, node {node['NodeID'][:8]}): "
        + (why or "it holds another study folder's marker (a different filesystem at that path)")
        for node, (host, text, why) in zip(nodes, seen, strict=True)
        if text != token
    ]
    if blind:
        raise StorageNotSharedError(_not_shared(marker, blind, len(nodes)))
    return len(nodes)


def _not_shared(marker: StudyPath, blind: list[str], nodes: int) -> str:
    if isinstance(marker, ObjectPath):
        return (
            f"{len(blind)} of {nodes} Ray nodes cannot read the study folder {marker.parent} on the object "
            f"store (the driver wrote {NODE_CHECK_FILE} there): {'; '.join(blind)}. Every node reads and "
            "writes the study folder: give each node credentials and the endpoint for the store "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL in the environment "
            "`ray start` runs in, or ~/.aws/); see docs/cluster.md"
        )
    return (
        f"{len(blind)} of {nodes} Ray nodes do not see the study folder {marker.parent} (the driver "
        f"wrote {NODE_CHECK_FILE} there; they could not read it back): {'; '.join(blind)}. Every node "
        "reads and writes the study folder at the same path (trial folders, checkpoints): put it on "
        "shared storage (NFS or similar) mounted at the same path on every node, put it on an object "
        "store (storage.root: s3://bucket/prefix), or set storage.root to such a path "
        "(--set storage.root=/shared/runs/NAME); see docs/cluster.md"
    )


def _job_config():
    """The job's config: the folder holding ``study``, ``tasks`` and ``dashboards`` on the workers' path.

    Ray puts the driver's working directory on its workers' ``sys.path``. A folder there named like one of
    the packages (a study folder called ``study``, holding ``results/``) would be imported by the workers
    as a namespace package ahead of an editable install, whose import hook comes after the path search,
    and ``study.results`` would be that folder. With the packages' own folder on the path anywhere, the
    path search finds the real (regular) package first. ``_py_driver_sys_path`` is the one way
    ``ray.init`` takes such a folder (it appends the working directory to it)."""
    from ray.job_config import JobConfig

    return JobConfig(_py_driver_sys_path=[str(Path(__file__).resolve().parents[1])])


@contextmanager
def ray_session(address: str | None, *, dashboard: bool, num_cpus: int | None):
    """Yield where Ray runs; starts (and stops) a local Ray unless this process is already connected."""
    address = configure(address)
    import ray

    if ray.is_initialized():
        yield "the Ray instance this process is connected to"
        return
    if address is None:
        context = init_local(
            num_cpus=num_cpus,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
            job_config=_job_config(),
        )
        where = "local Ray on 127.0.0.1" + (
            f", dashboard http://{context.dashboard_url}" if dashboard else ""
        )
    else:
        ray.init(address=address, log_to_driver=False, job_config=_job_config())
        where = f"Ray cluster at {address}"
    try:
        yield where
    finally:
        ray.shutdown()


class LazyRay(ExitStack):
    """A Ray session entered on the first ``ensure()`` (a resume with nothing left to run starts none)
    and left when this context exits. On a cluster (an address, or a Ray this process joined before), it
    first checks that every node sees ``study_dir``."""

    def __init__(
        self,
        address: str | None,
        *,
        dashboard: bool,
        num_cpus: int | None,
        echo: Callable,
        study_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.address, self.dashboard, self.num_cpus, self.echo = address, dashboard, num_cpus, echo
        self.study_dir = study_dir
        self.started = False

    def ensure(self) -> None:
        if not self.started:
            session = ray_session(self.address, dashboard=self.dashboard, num_cpus=self.num_cpus)
            self.echo(f"running on {self.enter_context(session)}")
            self.started = True
            if self.study_dir is not None and _several_nodes_or_remote(self.address):
                nodes = check_shared_storage(self.study_dir)
                self.echo(f"the study folder is visible from all {nodes} Ray nodes")


def _several_nodes_or_remote(address: str | None) -> bool:
    """Whether the storage check is needed: the driver joined a cluster by address, or the Ray it is
    connected to has more than one node (a local Ray we started has one, on this machine)."""
    import ray

    return address is not None or sum(1 for n in ray.nodes() if n.get("Alive")) > 1
