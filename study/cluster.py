"""Connecting to Ray: a local instance on 127.0.0.1, or the cluster named by an address or RAY_ADDRESS.

On Linux Ray binds a local instance to the machine's outward-facing address unless it is told it is
not part of a cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the switch Ray itself uses on laptops).
Everything a local instance starts then listens on 127.0.0.1. Ray reads the switch when ``ray`` is
first imported, so a caller that imported ``ray`` before us gets it applied to the loaded constant.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack, contextmanager

LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# No usage reports; Tune's console output off (the runner prints its progress itself); Ctrl-C stops the
# driver at once (Tune would instead end the stage and suggest Tuner.restore; we resume from the study).
DEFAULTS = {
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
def ray_session(address: str | None, *, dashboard: bool, num_cpus: int | None):
    """Yield where Ray runs; starts (and stops) a local Ray unless this process is already connected."""
    address = configure(address)
    import ray

    if ray.is_initialized():
        yield "the Ray instance this process is connected to"
        return
    if address is None:
        _apply_local_only(ray)
        context = ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
        )
        where = "local Ray on 127.0.0.1" + (
            f", dashboard http://{context.dashboard_url}" if dashboard else ""
        )
    else:
        ray.init(address=address, log_to_driver=False)
        where = f"Ray cluster at {address}"
    try:
        yield where
    finally:
        ray.shutdown()


class LazyRay(ExitStack):
    """A Ray session entered on the first ``ensure()`` (a resume with nothing left to run starts none)
    and left when this context exits."""

    def __init__(self, address: str | None, *, dashboard: bool, num_cpus: int | None, echo: Callable) -> None:
        super().__init__()
        self.address, self.dashboard, self.num_cpus, self.echo = address, dashboard, num_cpus, echo
        self.started = False

    def ensure(self) -> None:
        if not self.started:
            session = ray_session(self.address, dashboard=self.dashboard, num_cpus=self.num_cpus)
            self.echo(f"running on {self.enter_context(session)}")
            self.started = True
