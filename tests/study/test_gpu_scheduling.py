"""GPUs as Ray resources on a CPU-only machine (docs/cluster.md, GPUs).

A Ray head started with ``ray start --head --num-gpus=1`` declares a GPU this machine does not have; Ray
accepts it and still gives trials GPU ids and sets their ``CUDA_VISIBLE_DEVICES``. The head runs in a
session of its own, stopped by signalling that session only (``ray stop`` would stop every Ray of the
machine); each study is ``oodml run --address`` in a subprocess, since this test process may be connected
to the session's local Ray (tests/conftest.py) and a process joins one Ray at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from study.results import read_results
from study.results.status import read_trial_status
from tests.ports import free_port

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def gpu_head(tmp_path_factory) -> Iterator[str]:
    """A one-node Ray cluster of 3 CPUs and 1 (declared) GPU; yields its address. With ``gpus: 0.5`` the
    GPU, not the CPUs, bounds the trials at once: two."""
    log_path = tmp_path_factory.mktemp("gpu-head") / "head.log"
    temp = tempfile.mkdtemp(prefix="rg-", dir="/tmp")  # Unix socket paths must stay short
    env = dict(os.environ)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a cluster, on 127.0.0.1 (--node-ip-address)
    port = free_port()
    command = [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"]
    command += ["--num-cpus=3", "--num-gpus=1", "--include-dashboard=false", "--disable-usage-stats"]
    command += [f"--temp-dir={temp}", f"--dashboard-agent-listen-port={free_port()}"]
    command += [f"--ray-client-server-port={free_port()}"]  # not the default another Ray may hold
    with log_path.open("w") as log:
        head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log_path.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM to ``ray start`` alone: it stops its node's processes in seconds (signalling its whole
    session took 35 s here); SIGKILL to that session if it does not."""
    if head.poll() is None:
        head.terminate()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)


def _run_study(tiny_spec, address: str, folder: Path, seeds: list[int], device: str) -> tuple[int, str, Path]:
    """``oodml run --address`` of the tiny study, one method, no tuning, ``gpus: 0.5`` per trial; returns
    its exit code, its output and the study folder."""
    root = folder / "study"
    spec = tiny_spec(root)
    spec |= {
        "methods": [{"name": "triplet"}],
        "tuning": {"trials": 0},
        "seeds": seeds,
        "fewshot": {"budgets": [0]},
    }
    spec |= {"training": spec["training"] | {"device": device}, "resources": {"cpus": 1, "gpus": 0.5}}
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "study.cli", "run", str(config), "--address", address]
    run = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=400)
    return run.returncode, run.stdout + run.stderr, root


def _most_at_once(status) -> int:
    """The most trials running at once, from the status table's start and end times."""
    events = [(t, 1) for t in status["started_at"].to_pylist()]
    events += [(t, -1) for t in status["finished_at"].to_pylist()]
    running = most = 0
    for _, step in sorted(events):  # an end before a start at the same instant
        running += step
        most = max(most, running)
    return most


def test_half_a_gpu_each_packs_two_trials_on_one_gpu_and_records_its_ids(gpu_head, tiny_spec, tmp_path):
    # 4 trials (2 splits x 2 seeds) on the CPU as asked, each holding half of the declared GPU.
    code, output, root = _run_study(tiny_spec, gpu_head, tmp_path, seeds=[0, 1], device="cpu")
    assert code == 0, output[-3000:]
    table = read_results(root)
    assert set(table["status"].to_pylist()) == {"completed"}
    assert len(set(table["trial_id"].to_pylist())) == 4
    assert set(table["device"].to_pylist()) == {"cpu"}  # the device it used: the one it was told
    assert set(map(tuple, table["ray_gpu_ids"].to_pylist())) == {("0",)}  # every trial: the one GPU
    assert set(table["cuda_visible_devices"].to_pylist()) == {"0"}  # as Ray set it for the trial
    # Two trials shared the GPU at once, and never three, though the CPUs had room for three.
    assert _most_at_once(read_trial_status(root)) == 2


def test_a_trial_given_a_gpu_without_cuda_fails_naming_its_node_instead_of_training_on_the_cpu(
    gpu_head, tiny_spec, tmp_path
):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch can use CUDA here: a trial given a GPU trains on it")
    code, output, root = _run_study(tiny_spec, gpu_head, tmp_path, seeds=[0], device="auto")
    assert code == 1, output[-3000:]
    table = read_results(root)
    assert table.num_rows == 2 and set(table["status"].to_pylist()) == {"failed"}
    assert pc.all(pc.is_null(table["device"])).as_py()  # it never chose a device
    for error, node in zip(table["error"].to_pylist(), table["ray_node_id"].to_pylist(), strict=True):
        assert error.startswith("GPUUnavailableError: Ray gave this trial GPU 0 on host ")
        assert f"host {socket.gethostname()} (Ray node {node})" in error
        assert "training.device: auto" in error and "training.device: cpu" in error
    assert not list(root.glob("trials/*/*.pt"))  # no checkpoint: nothing trained
    assert "GPUUnavailableError" in output
