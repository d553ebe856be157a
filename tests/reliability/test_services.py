"""Every server the product starts (local Ray with its dashboard, MLflow UI, dashboard server) listens on
127.0.0.1 only and says so, and a SIGTERM to ``oodml ui`` or ``oodml report --serve`` stops its whole
process tree. Each is started for real as a child process; its sockets, and those of all its
descendants, are read from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.cluster import LOCAL_ONLY

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads sockets from Linux /proc")
OODML = str(Path(sys.executable).with_name("oodml"))
LOOPBACK = {"127.0.0.1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(command: list[str], ready: str, log: Path, timeout: float = 120) -> subprocess.Popen:
    """Start ``command`` and wait until its output holds ``ready``."""
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while ready not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{command} did not get ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _tree(pid: int) -> set[int]:
    """``pid`` and its descendants (/proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo.extend(children.get(todo.pop(), []))
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie waiting to be reaped has stopped)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            running.add(pid)
    return running


def _assert_tree_stopped(tree: set[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(tree)
    for pid in left:  # do not leak them into the rest of the suite
        os.kill(pid, 9)
    assert not left, f"processes of the tree outlived SIGTERM: {left}"


def _serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("ray_first", [False, True], ids=["study-first", "ray-imported-first"])
def test_local_ray_with_its_dashboard_listens_on_loopback_only(tmp_path, listening_addresses, ray_first):
    script = (
        ("import ray\n" if ray_first else "")  # a notebook that imported ray before the study
        + "import sys\n"
        "from study.cluster import ray_session\n"
        "with ray_session(None, dashboard=True, num_cpus=1) as where:\n"
        "    print('running on', where, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != LOCAL_ONLY}  # as a user's shell has it: unset
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdin=subprocess.PIPE,
        stdout=(tmp_path / "ray.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "running on" not in (tmp_path / "ray.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "ray.log").read_text()
            time.sleep(0.2)
        time.sleep(3)  # the dashboard's and agents' servers come up just after ray.init returns
        addresses = listening_addresses(process.pid)
        said = (tmp_path / "ray.log").read_text()
    finally:
        process.stdin.close()
        process.wait(60)
    assert "local Ray on 127.0.0.1, dashboard http://127.0.0.1:" in said
    assert addresses and addresses <= LOOPBACK, addresses


def test_mlflow_ui_listens_on_loopback_only(tmp_path, listening_addresses):
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # the store `oodml ui` serves
    port = _free_port()
    process = _start(
        [OODML, "ui", str(tmp_path), "--port", str(port)], "Ctrl-C stops it", tmp_path / "ui.log"
    )
    try:
        deadline = time.monotonic() + 120
        while not _serving(port):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "ui.log").read_text()
            time.sleep(0.5)
        addresses = listening_addresses(process.pid)
        tree = _tree(process.pid)
    finally:
        _stop(process)  # SIGTERM to `oodml ui` alone, as a service manager or a terminal's close sends
    assert len(tree) > 2, tree  # oodml, mlflow server, its uvicorn (and huey workers)
    _assert_tree_stopped(tree)
    assert "listening on 127.0.0.1 (this machine only)" in (tmp_path / "ui.log").read_text()
    assert addresses and addresses <= LOOPBACK, addresses


def test_dashboard_server_listens_on_loopback_only(tmp_path, listening_addresses):
    process = _start(
        [OODML, "report", str(tmp_path), "--serve", "--port", "0"], "Ctrl-C stops", tmp_path / "serve.log"
    )
    try:
        addresses = listening_addresses(process.pid)
        tree = _tree(process.pid)
    finally:
        _stop(process)
    _assert_tree_stopped(tree)
    assert process.returncode == 0 and "stopped" in (tmp_path / "serve.log").read_text()  # as on Ctrl-C
    assert "bound to 127.0.0.1 only" in (tmp_path / "serve.log").read_text()
    assert addresses == LOOPBACK, addresses
