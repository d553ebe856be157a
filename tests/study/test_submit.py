"""``ray job submit ... -- python -m study.submit CONFIG`` against a real head node on 127.0.0.1.

The head is started by this test (``ray start --head --block`` in its own session) and stopped by
signalling that session only; ``ray stop`` would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from study.results import read_results

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, head: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def _submit(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``ray job submit``, retried while the head's job agent is still starting (it answers HTTP 500
    "No available agent" for a few seconds after the dashboard is up)."""
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if "No available agent" not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


@pytest.fixture
def head(tmp_path, ray_local):
    """A head node with the job server (dashboard) on 127.0.0.1; yields the job server URL. It runs beside
    the session's local Ray (``ray_local``), as it does in the whole suite."""
    port, dashboard = _free_port(), _free_port()
    # The session's local Ray (tests/conftest.py) already runs a dashboard agent on Ray's default ports
    # (52365 ...). A second node on the same machine must get its own, or its job agent never starts
    # and every submission answers "No available agent".
    agent_ports = {
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--metrics-export-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
        "--ray-client-server-port": _free_port(),
    }
    temp = Path(os.environ.get("TMPDIR", "/tmp")) / f"rj-{os.getpid()}"
    command = [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    command += [f"--dashboard-port={dashboard}", "--include-dashboard=true", "--dashboard-host=127.0.0.1"]
    command += [f"--temp-dir={temp}", "--disable-usage-stats"]
    command += [f"{flag}={value}" for flag, value in agent_ports.items()]
    log = (tmp_path / "head.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for(f"{url}/api/version", process, 180)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def test_job_submit_runs_a_study(head, tmp_path, tiny_spec):
    spec = tiny_spec("runs/relative")
    spec |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    spec["datasets"][0]["evaluate"] = ["0"]
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(spec))
    root = tmp_path / "job-study"
    submit = [RAY, "job", "submit", "--address", head, "--working-dir", str(REPO), "--"]
    submit += [sys.executable, "-m", "study.submit", str(config)]
    # The environment (tests/conftest.py) is the head's: no token auth, nodes on 127.0.0.1.
    refused = _submit(submit, timeout=300)
    assert refused.returncode != 0 and "storage.root must be an absolute path" in refused.stdout

    done = _submit([*submit, "--set", f"storage.root={root}"], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[eval] 1/1 done, 0 running, 0 failed" in done.stdout
    table = read_results(root)
    assert set(table["status"].to_pylist()) == {"completed"} and set(table["stage"].to_pylist()) == {"eval"}
    assert (root / "mlflow.db").is_file()
