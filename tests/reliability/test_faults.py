"""Faults injected for real into tiny studies: a trial worker SIGKILLed mid-training, a trial that
fails while the rest of the study goes on, and the driver SIGKILLed at a random point.

Worker and failing-trial studies run in this process on the session's local Ray; the driver-kill
study runs ``oodml run`` as a child process with a local Ray of its own, as a user would.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from mlflow import MlflowClient

from dashboards.report import build_report
from study.api import run
from study.cli import main
from study.expand import EVAL
from study.results import read_results
from study.results.layout import LOCK_FILE, TRIALS_DIR
from tasks.train import LAST_CHECKPOINT

pytestmark = pytest.mark.slow
OODML = str(Path(sys.executable).with_name("oodml"))


def _one_method_one_split(spec: dict, *, epochs: int, steps: int) -> dict:
    """The tiny study cut to one evaluation trial (triplet on split 0, zero-shot only), no tuning."""
    spec |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    spec["training"] |= {"epochs": epochs, "iterations_per_epoch": steps}
    spec["fewshot"] = {"budgets": [0]}
    spec["datasets"][0]["evaluate"] = ["0"]
    return spec


def _trial_workers() -> list[int]:
    """Pids of the workers of this process's Ray that run Tune function trials: its alive ``ImplicitFunc``
    actors, from the GCS actor table. The tests run one study at a time, one trial at a time, on the
    session's Ray, so these are the running trial's. Not every ``ray::ImplicitFunc`` process on the
    machine: those of another test session or study belong to a Ray of its own, and a trial that two
    sessions' killers both kill has used up its one retry."""
    from ray._private import state

    return [
        actor["Pid"]
        for actor in state.actors(actor_state_name="ALIVE").values()
        if actor["ActorClassName"] == "ImplicitFunc"
    ]


class WorkerKiller(threading.Thread):
    """Once a trial has checkpointed an epoch (``trials/<id>/last.pt``), SIGKILLs its worker, once."""

    def __init__(self, study_dir: Path) -> None:
        super().__init__(daemon=True)
        self.study_dir, self.killed, self.done = study_dir, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and not self.killed:
            if any((self.study_dir / TRIALS_DIR).glob(f"*/{LAST_CHECKPOINT}")):
                for pid in _trial_workers():
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
            time.sleep(0.05)

    def __enter__(self) -> WorkerKiller:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()


def _trials(table) -> list[dict]:
    """One row per trial (the results are long: a row per metric and shot budget)."""
    return list({r["trial_id"]: r for r in table.to_pylist()}.values())


def _child_runs(tracking_uri: str, parent_run_id: str) -> list:
    client = MlflowClient(tracking_uri)
    experiment = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_local, tmp_path, tiny_spec):
    spec = _one_method_one_split(tiny_spec(tmp_path / "worker-kill"), epochs=3, steps=30)
    with WorkerKiller(tmp_path / "worker-kill") as killer:
        result = run(spec, echo=lambda line: None)

    assert killer.killed, "the trial finished before its worker could be killed: lengthen its epochs"
    assert result.outcome.ok
    (row,) = _trials(read_results(result.study_dir))
    assert row["status"] == "completed" and row["resumed_from_epoch"] >= 1
    (child,) = _child_runs(result.tracking_uri, result.parent_run_id)
    assert child.info.status == "FINISHED" and child.data.tags["oodml.trial_id"] == row["trial_id"]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(ray_local, tmp_path, tiny_spec, capsys):
    """ArcFace with a scale float32 cannot hold: its loss is infinite at the first step."""
    spec = _one_method_one_split(tiny_spec(tmp_path / "failing"), epochs=1, steps=4)
    spec["methods"] = [{"name": "triplet"}, {"name": "arcface", "hyperparameters": {"scale": 1e39}}]
    config = tmp_path / "failing.yaml"
    config.write_text(yaml.safe_dump(spec))

    assert main(["run", str(config)]) == 1
    assert "1 of 2 evaluation trials are not completed" in capsys.readouterr().err
    table = read_results(tmp_path / "failing")
    rows = {r["method"]: r for r in table.to_pylist()}
    assert rows["triplet"]["status"] == "completed"
    failed = rows["arcface"]
    assert failed["status"] == "failed" and failed["error"].startswith("NonFiniteLossError: non-finite loss")
    client = MlflowClient(f"sqlite:///{tmp_path / 'failing' / 'mlflow.db'}")
    run_ = client.get_run(failed["mlflow_run_id"])
    assert run_.info.status == "FAILED" and run_.data.tags["oodml.error"] == failed["error"]
    page = build_report(tmp_path / "failing").read_text()
    assert "Failed trials" in page and "NonFiniteLossError" in page


def test_a_worker_that_dies_without_retries_left_fails_only_its_trial(ray_local, tmp_path, tiny_spec):
    spec = _one_method_one_split(tiny_spec(tmp_path / "no-retry"), epochs=2, steps=30)
    del spec["datasets"][0]["evaluate"]  # both splits
    spec |= {"max_failures": 0, "concurrency": 1}
    with WorkerKiller(tmp_path / "no-retry") as killer:
        result = run(spec, echo=lambda line: None)

    assert killer.killed and not result.outcome.ok
    trials = _trials(read_results(result.study_dir))
    assert Counter(r["status"] for r in trials) == {"completed": 1, "failed": 1}
    (failed,) = [r for r in trials if r["status"] == "failed"]
    assert "died" in failed["error"].lower() or "actor" in failed["error"].lower(), failed["error"]


# The driver is killed at a random point; the seed is printed so that a failure can be replayed with
# OODML_FAULT_SEED=<seed>.
def _kill_point(rng: random.Random, total: int) -> tuple[int, float]:
    """Kill once a trial has started and this many result files exist (never all), plus this many s."""
    return rng.randrange(total - 1), rng.uniform(0.0, 1.5)


def _trials_run(output: str) -> int:
    """Trials a run executed, from its progress lines (``[stage] done/total done, ...``)."""
    totals = {}
    for line in output.splitlines():
        match = re.match(r"\[(\w+)\] \d+/(\d+) done", line)
        if match:
            totals[match[1]] = int(match[2])
    return sum(totals.values())


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _result_files(results: Path) -> int:
    return len(list(results.glob("*.parquet"))) if results.is_dir() else 0


def test_driver_killed_at_a_random_point_resumes_to_exactly_one_row_set_per_trial(tmp_path, tiny_spec):
    seed = int(os.environ.get("OODML_FAULT_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    root = tmp_path / "driver-kill"
    spec = tiny_spec(root)
    spec["methods"] = [{"name": "triplet", "search": True}]
    spec["training"] |= {"epochs": 2, "iterations_per_epoch": 10}
    config = tmp_path / "driver-kill.yaml"
    config.write_text(yaml.safe_dump(spec))
    total = 2 + 2  # result files: 2 tuning trials, then 2 evaluation trials (one per split)
    files_before, delay = _kill_point(rng, total)
    note = f"OODML_FAULT_SEED={seed}: kill after {files_before} result files + {delay:.2f} s"
    print(note)

    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen([OODML, "run", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while f"oodml run pid {driver.pid}" not in _read(root / LOCK_FILE) and time.monotonic() < deadline:
        assert driver.poll() is None, f"{note}: the study ended first"
        time.sleep(0.05)
    second = subprocess.run([OODML, "run", str(config)], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"is in use by oodml run pid {driver.pid}" in second.stderr

    def before_kill_point() -> bool:  # a trial has started (not just Ray), and enough have been recorded
        started = (root / TRIALS_DIR).is_dir() and any((root / TRIALS_DIR).iterdir())
        return not started or _result_files(root / "results") < files_before

    while before_kill_point() and time.monotonic() < deadline:
        assert driver.poll() is None, f"{note}: the study ended first"
        time.sleep(0.05)
    time.sleep(delay)
    assert driver.poll() is None, f"{note}: the study ended before the kill"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    recorded = _result_files(root / "results")

    rerun = subprocess.run([OODML, "run", str(config)], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, f"{note}\n{rerun.stdout[-3000:]}\n{rerun.stderr[-3000:]}"
    assert _trials_run(rerun.stdout) == total - recorded, (
        f"{note}: finished trials were run again\n{rerun.stdout}"
    )

    table = read_results(root)
    assert set(table["status"].to_pylist()) == {"completed"}
    measurement = ("stage", "trial_id", "subset", "shots", "kind", "metric")
    keys = Counter(tuple(r[k] for k in measurement) for r in table.to_pylist())
    assert max(keys.values()) == 1, f"{note}: duplicated rows {keys}"
    evaluation = table.filter(pc.equal(table["stage"], EVAL))
    assert set(zip(evaluation["split_key"].to_pylist(), evaluation["shots"].to_pylist(), strict=True)) == {
        (key, shots) for key in set(evaluation["split_key"].to_pylist()) for shots in (0, 2)
    }
    assert len(_trials(table)) == total and len(set(evaluation["split_key"].to_pylist())) == 2

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = client.search_runs([experiment])
    assert not [r for r in runs if r.info.status == "RUNNING"], note
    parents = [r for r in runs if r.data.tags.get("oodml.role") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [r for r in runs if r.info.status == "FINISHED" and "oodml.trial_id" in r.data.tags]
    assert sorted(r.info.run_id for r in finished) == sorted(set(table["mlflow_run_id"].to_pylist())), note
