"""A study on a real two-node Ray cluster on this machine (docs/cluster.md).

The head (``ray start --head``) and a second node (``ray start --address``), 1 CPU each, run as processes
of their own sessions, stopped by signalling those sessions only (``ray stop`` would stop every Ray of the
machine). The study driver is ``oodml run --address`` in a subprocess: this test process is connected to
the session's local Ray (tests/conftest.py) and a process joins one Ray at a time.

The second node runs in a mount namespace of its own (``unshare --mount``) with an empty tmpfs over one
folder: it sees every path the head sees except that one, exactly as a worker machine without the shared
filesystem would. A study there is refused; a study elsewhere runs on both nodes, and the second node is
removed in its middle.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from mlflow import MlflowClient

from study.results import read_results
from study.results.layout import NODE_CHECK_FILE, RAY_DIR, trial_dir
from study.results.status import read_trial_status
from study.results.storage import StudyPath, locate
from tasks.train import LAST_CHECKPOINT
from tests.ports import free_port

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _own_namespace() -> list[str] | None:
    """The command prefix that runs a process in a mount namespace of its own, if this machine allows it
    (root, or unprivileged user namespaces); None if not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "--map-root-user")
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # exited meanwhile
        return ""


class Node:
    """``ray start --block`` in a session of its own; ``stop`` signals that session only."""

    def __init__(self, command: list[str], log: Path, env: dict) -> None:
        self.log_path = log
        self.log = log.open("w")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_started(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while "Ray runtime started" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.5)

    def training(self) -> bool:
        """Whether a trial trains on this node now: a ``ray::ImplicitFunc.train`` worker among its processes."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                    int(stat.parent.name)
                )
            except OSError:  # exited meanwhile
                continue
        found, todo = [], [self.process.pid]
        while todo:
            found.append(todo.pop())
            todo.extend(children.get(found[-1], []))
        return any(_cmdline(pid).startswith("ray::ImplicitFunc.train") for pid in found)

    def stop(self, *, abrupt: bool = True) -> None:
        """Abrupt (a node lost): SIGTERM to the whole session at once, the node's trials die with it.
        Otherwise (the end of the tests): SIGTERM to ``ray start`` alone, which winds its node down in
        seconds where the session's signal took about 35 s. Then SIGKILL to whatever is left."""
        if self.process.poll() is None:
            if abrupt:
                os.killpg(self.process.pid, signal.SIGTERM)
            else:
                self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.log.close()


class Cluster:
    """A head and a second node (1 CPU each) on this machine. The second node runs in a mount namespace of
    its own where one can be made, with an empty tmpfs over ``hidden``; ``second()`` starts a fresh one
    after a test removed it. The nodes run with this process's environment (the AWS variables of the
    session's S3 server included)."""

    def __init__(self, logs: Path, hidden: Path, temp: str) -> None:
        self.logs, self.temp = logs, temp
        self.env = dict(os.environ)
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a cluster, on 127.0.0.1 (--node-ip-address)
        self.port = free_port()
        self.namespace = _own_namespace()
        self.hidden = hidden if self.namespace else None  # None: no node with another view of the files
        self.nodes: list[Node] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]

    def start_head(self) -> None:
        # Neither node may take the fixed default ports another Ray on this machine may hold (52365, 10001).
        command = [RAY, "start", "--head", f"--port={self.port}", "--include-dashboard=false"]
        command += [f"--temp-dir={self.temp}", *self.common, f"--dashboard-agent-listen-port={free_port()}"]
        command += [f"--ray-client-server-port={free_port()}"]
        self._start(command, "head")

    def second(self) -> Node:
        """The second node: the running one, or a fresh one if the last was stopped."""
        last = self.nodes[-1] if len(self.nodes) > 1 else None
        if last is not None and last.process.poll() is None:
            return last
        command = [RAY, "start", f"--address={self.address}", *self.common]
        command += [f"--dashboard-agent-listen-port={free_port()}", "--resources", '{"second": 1}']
        if self.namespace:  # an empty tmpfs over `hidden`, seen by this node's processes only
            mount = 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"'
            command = [*self.namespace, "sh", "-c", mount, str(self.hidden), *command]
        return self._start(command, f"second-{len(self.nodes)}")

    def _start(self, command: list[str], name: str) -> Node:
        node = Node(command, self.logs / f"{name}.log", self.env)
        self.nodes.append(node)
        node.wait_started()
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop(abrupt=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server):
    """The module's two-node cluster (``Cluster``), its nodes able to reach the session's S3 server."""
    temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # Unix socket paths must stay short
    running = Cluster(tmp_path_factory.mktemp("cluster-logs"), tmp_path_factory.mktemp("not-shared"), temp)
    try:
        running.start_head()
        running.second()
        yield running
    finally:
        running.stop()
        shutil.rmtree(temp, ignore_errors=True)


def _spec(tiny_spec, root: Path, path: Path, **changes) -> Path:
    spec = tiny_spec(root) | {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}} | changes
    path.write_text(yaml.safe_dump(spec))
    return path


def _oodml_run(config: Path, address: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "study.cli", "run", str(config), "--address", address]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=log.parent)


def test_a_study_folder_some_node_cannot_see_is_refused(cluster, tiny_spec, tmp_path):
    address, hidden, logs = cluster.address, cluster.hidden, cluster.logs
    cluster.second()
    if hidden is None:
        pytest.skip(
            "no mount namespace can be made here (unshare --mount): no node with another view of the files"
        )
    root = hidden / "study"
    config = _spec(tiny_spec, root, tmp_path / "hidden.yaml")
    run = _oodml_run(config, address, logs / "refused.log")
    assert run.wait(300) == 2, (logs / "refused.log").read_text()[-3000:]
    output = (logs / "refused.log").read_text()
    assert "1 of 2 Ray nodes do not see the study folder" in output, output[-3000:]
    assert "FileNotFoundError" in output and "shared storage (NFS or similar)" in output
    assert "storage.root" in output and not (root / NODE_CHECK_FILE).exists()
    assert not list(root.glob("trials/*")) and read_results(root).num_rows == 0  # no trial ran


def _checkpointed(root: StudyPath) -> bool:
    """Whether every trial running now (started, no result row yet) has checkpointed an epoch."""
    status = read_trial_status(root)
    running = set(status.filter(pc.equal(status["status"], "running"))["trial_id"].to_pylist())
    running -= set(read_results(root)["trial_id"].to_pylist())
    return all((trial_dir(root, t) / LAST_CHECKPOINT).is_file() for t in running)


def test_trials_run_on_both_nodes_and_survive_removing_one(cluster, tiny_spec, tmp_path):
    address, second, logs = cluster.address, cluster.second(), cluster.logs
    root = tmp_path / "shared" / "study"
    # 4 trials of several seconds (2 splits x 2 seeds), 1 CPU each: one per node at a time.
    training = tiny_spec(root)["training"] | {"epochs": 3, "iterations_per_epoch": 60}
    config = _spec(tiny_spec, root, tmp_path / "study.yaml", seeds=[0, 1], training=training)
    run = _oodml_run(config, address, logs / "study.log")
    try:
        deadline = time.monotonic() + 600
        # A trial done on each node, and the next one training on the second node past an epoch checkpoint.
        while (
            len(set(read_results(root)["ray_node_id"].to_pylist())) < 2
            or not second.training()
            or not _checkpointed(root)
        ):
            assert run.poll() is None and time.monotonic() < deadline, (logs / "study.log").read_text()[
                -3000:
            ]
            time.sleep(0.5)
        second.stop()  # its trial in flight dies with its node
        assert run.wait(600) == 0, (logs / "study.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    output = (logs / "study.log").read_text()
    assert "the study folder is visible from all 2 Ray nodes" in output
    table = read_results(root)
    assert set(table["status"].to_pylist()) == {"completed"}
    # One row set per trial: the retried trial was written once, by its last attempt.
    per_trial = table.group_by("trial_id").aggregate([("finished_at", "count_distinct")])
    assert per_trial.num_rows == 4 and set(per_trial["finished_at_count_distinct"].to_pylist()) == {1}
    assert len(set(table["ray_node_id"].to_pylist())) == 2 and pc.all(pc.is_valid(table["hostname"])).as_py()
    assert set(table["hostname"].to_pylist()) == {socket.gethostname()}
    # The trial in flight on the removed node failed once, with its node, and was retried elsewhere.
    errors = list((root / RAY_DIR).glob("eval-*/trial_*/error.txt"))
    assert len(errors) == 1, f"expected one failed attempt, the removed node's trial: {errors}"
    error = errors[0].read_text()
    assert error.count("Failure #") == 1 and "its node has died" in error, error
    removed = re.search(r"Node Id: (\w+)", error).group(1)
    assert removed in table["ray_node_id"].to_pylist()  # it had run a trial before
    retried = re.findall(r"trial (\w+) \(.*\) lost its Ray node; retried on a node that is left", output)
    assert len(retried) == 1, output[-3000:]
    rows = table.filter(pc.equal(table["trial_id"], retried[0]))
    assert rows.num_rows and removed not in rows["ray_node_id"].to_pylist(), "retried on the removed node"
    resumed = set(rows["resumed_from_epoch"].to_pylist())
    assert len(resumed) == 1 and (resumed.pop() or 0) >= 1, "not resumed from its epoch checkpoint"
    assert "[eval] 4/4 done, 0 running, 0 failed" in output


def test_a_study_on_s3_runs_on_nodes_without_a_shared_folder_and_survives_removing_one(
    cluster, tiny_spec, tmp_path, s3_root, mlflow_on_postgres
):
    """The cluster most users have: no shared filesystem (the second node does not see the folder the
    driver runs in), the study folder on S3, MLflow on a server backed by PostgreSQL. The study runs on
    both nodes, loses the second in its middle, and completes; its runs are all on the server."""
    if cluster.hidden is None:
        pytest.skip("no mount namespace can be made here (unshare --mount): every node sees every folder")
    address, second = cluster.address, cluster.second()
    here = cluster.hidden / "s3-study"  # the driver's folder: the second node cannot see it
    here.mkdir()
    root = locate(s3_root)
    # long enough trials (about 20 s each) that the second node is caught mid-trial after its first one:
    # at 60 iterations a trial took 8 s and the whole study could end between two polls (seen in CI)
    training = tiny_spec(s3_root)["training"] | {"epochs": 3, "iterations_per_epoch": 150}
    storage = {"root": s3_root, "tracking_uri": mlflow_on_postgres.url, "experiment": "two-nodes-on-s3"}
    config = _spec(tiny_spec, s3_root, here / "study.yaml", seeds=[0, 1], training=training, storage=storage)
    run = _oodml_run(config, address, here / "study.log")
    log = here / "study.log"
    try:
        deadline = time.monotonic() + 600
        while (
            len(set(read_results(s3_root)["ray_node_id"].to_pylist())) < 2
            or not second.training()
            or not _checkpointed(root)
        ):
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        second.stop()  # its trial in flight dies with its node
        assert run.wait(600) == 0, log.read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    output = log.read_text()
    assert "the study folder is visible from all 2 Ray nodes" in output
    assert sorted(p.name for p in here.iterdir()) == ["study.log", "study.yaml"]  # all else on the store
    table = read_results(s3_root)
    assert (
        set(table["status"].to_pylist()) == {"completed"} and len(set(table["ray_node_id"].to_pylist())) == 2
    )
    per_trial = table.group_by("trial_id").aggregate([("finished_at", "count_distinct")])
    assert per_trial.num_rows == 4 and set(per_trial["finished_at_count_distinct"].to_pylist()) == {1}
    retried = re.findall(r"trial (\w+) \(.*\) lost its Ray node; retried on a node that is left", output)
    assert len(retried) == 1, output[-3000:]
    rows = table.filter(pc.equal(table["trial_id"], retried[0]))
    resumed = set(rows["resumed_from_epoch"].to_pylist())
    assert len(resumed) == 1 and (resumed.pop() or 0) >= 1, "not resumed from its epoch checkpoint on S3"
    client = MlflowClient(mlflow_on_postgres.url)
    experiment = client.get_experiment_by_name("two-nodes-on-s3").experiment_id
    children = [r for r in client.search_runs([experiment]) if "oodml.trial_id" in r.data.tags]
    assert {r.info.run_id for r in children} == set(table["mlflow_run_id"].to_pylist())
    assert "[eval] 4/4 done, 0 running, 0 failed" in output
