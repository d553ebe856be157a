"""``ray job submit ... -- python -m study.submit CONFIG`` against a real head node on 127.0.0.1.

The head is started by this test (``ray start --head --block`` in its own session) and stopped by
signalling its ``ray start``, then whatever is left of that session, only; ``ray stop`` would stop every
Ray on the machine. It is started as the
README's cluster example starts it, beside a running local Ray started as a study starts its own (the
session's), after a first local run left a Ray token: ``RAY_AUTH_MODE=token`` exported for the head
and the CLI, the head on Ray's default agent ports. Only its GCS and dashboard ports are picked free,
so that it cannot clash with another head on this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
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
        except urllib.error.HTTPError:  # it answers (401 without the token: token authentication)
            return
        except OSError:
            time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def _submit(command: list[str], timeout: float, env: dict) -> subprocess.CompletedProcess:
    """``ray job submit``, retried while the head's job agent is still starting (it answers HTTP 500
    "No available agent" for a few seconds after the dashboard is up)."""
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if "No available agent" not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


@pytest.fixture
def head(tmp_path, ray_local):
    """A head node with the job server (dashboard) on 127.0.0.1; yields the job server URL and the
    environment of the head and the ``ray`` CLI. It runs beside the session's local Ray (``ray_local``),
    which, started as a study starts its own, left the agent's default port 52365 free."""
    import ray

    assert ray._private.worker.global_worker.node.dashboard_agent_listen_port != 52365
    port, dashboard = _free_port(), _free_port()
    # The README: `export RAY_AUTH_MODE=token`, after a local run left ~/.ray/auth_token (here in a HOME
    # of the test's own: `ray get-auth-token --generate` writes it as a local ray.init does).
    env = os.environ | {"RAY_AUTH_MODE": "token", "HOME": str(tmp_path / "home")}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, check=True)
    temp = Path(os.environ.get("TMPDIR", "/tmp")) / f"rj-{os.getpid()}"
    command = [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    command += [f"--dashboard-port={dashboard}", "--include-dashboard=true", "--dashboard-host=127.0.0.1"]
    command += [f"--temp-dir={temp}", "--disable-usage-stats"]
    log = (tmp_path / "head.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for(f"{url}/api/version", process, 180)
        yield url, env
    finally:
        # SIGTERM to ``ray start`` alone winds the head down in seconds; the session's signal took about
        # 35 s (Ray's SIGTERM handler first asks the GCS, killed by the same signal, to drain the node).
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the session, the leader included
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)
        log.close()


def test_job_submit_runs_a_study(head, tmp_path, tiny_spec):
    spec = tiny_spec("runs/relative")
    spec |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    spec["datasets"][0]["evaluate"] = ["0"]
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(spec))
    root = tmp_path / "job-study"
    url, env = head
    submit = [RAY, "job", "submit", "--address", url, "--working-dir", str(REPO), "--"]
    submit += [sys.executable, "-m", "study.submit", str(config)]
    # The CLI's environment is the head's (token auth, as the README exports it).
    refused = _submit(submit, timeout=300, env=env)
    assert refused.returncode != 0 and "storage.root must be an absolute path" in refused.stdout

    done = _submit([*submit, "--set", f"storage.root={root}"], timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[eval] 1/1 done, 0 running, 0 failed" in done.stdout
    table = read_results(root)
    assert set(table["status"].to_pylist()) == {"completed"} and set(table["stage"].to_pylist()) == {"eval"}
    assert (root / "mlflow.db").is_file()
