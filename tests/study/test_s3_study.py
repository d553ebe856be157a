"""A tiny study whose folder is ``s3://...`` on a real S3 server (SeaweedFS, tests/s3server.py), run as a
user runs it: ``oodml run`` in a process of its own (its own local Ray), the AWS variables in its
environment, MLflow on a SQLite file outside the study folder. The study completes with its results,
split file, trial folders, Tune state and dashboard on the store and nothing of it in the folder it was
started from; a driver SIGKILLed in its middle leaves a lease that a resume waits out, and the resume
finishes the study with exactly one row set per trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from study.results import read_results
from study.results.layout import (
    DASHBOARD_DIR,
    DASHBOARD_PAGE,
    OPTUNA_JOURNAL,
    RAY_DIR,
    SPEC_FILE,
    SPLIT_FILE,
    TRIALS_DIR,
)
from study.results.storage import locate

pytestmark = pytest.mark.slow
LEASE_EXPIRY_S = 8  # the killed driver's lease: short, so the resume need not wait 90 s


def _spec(tiny_spec, root: str, tracking: Path, **training) -> dict:
    spec = tiny_spec(root)
    spec["methods"] = [{"name": "triplet", "search": True}]
    spec["tuning"] = spec.get("tuning", {}) | {"trials": 1}
    spec["training"] |= {"epochs": 2, "iterations_per_epoch": 10, **training}
    spec["storage"] = {"root": root, "tracking_uri": f"sqlite:///{tracking}"}
    return spec


def _oodml(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, OODML_LEASE_EXPIRY_S=str(LEASE_EXPIRY_S))
    return subprocess.Popen([sys.executable, "-m", "study.cli", *args], cwd=cwd, env=env, **kw)


def _one_row_set_per_trial(table) -> None:
    measurement = ("stage", "trial_id", "subset", "shots", "kind", "metric")
    keys = Counter(tuple(r[k] for k in measurement) for r in table.to_pylist())
    assert max(keys.values()) == 1, f"duplicated rows {keys.most_common(3)}"


def test_a_study_on_s3_runs_and_leaves_nothing_in_the_local_folder(s3_root, tmp_path, tiny_spec):
    here = tmp_path / "started-here"
    here.mkdir()
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_spec(tiny_spec, s3_root, tmp_path / "mlflow.db")))
    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = _oodml(["run", str(config)], here, stdout=out, stderr=subprocess.STDOUT)
        assert run.wait(600) == 0, log.read_text()[-4000:]
    assert list(here.iterdir()) == []  # everything of the study is on the store
    study = locate(s3_root)
    table = read_results(s3_root)
    assert set(table["status"].to_pylist()) == {"completed"}
    assert set(table["stage"].to_pylist()) == {"tune", "eval"}
    _one_row_set_per_trial(table)
    for stored in (SPEC_FILE, OPTUNA_JOURNAL, f"{DASHBOARD_DIR}/{DASHBOARD_PAGE}"):
        assert (study / stored).is_file(), stored
    assert list(study.glob(f"splits/*/{SPLIT_FILE}")) and list((study / RAY_DIR).iterdir())
    evaluation = table.filter(pc.equal(table["stage"], "eval"))
    for trial_id in set(evaluation["trial_id"].to_pylist()):
        assert (study / TRIALS_DIR / trial_id / "best.pt").is_file()  # the selected weights
    results = subprocess.run(
        [sys.executable, "-m", "study.cli", "results", s3_root], capture_output=True, text=True, timeout=300
    )
    assert results.returncode == 0 and "eval: 2 completed" in results.stdout, results.stdout + results.stderr


def test_a_driver_killed_on_s3_is_resumed_from_the_store_alone(s3_root, tmp_path, tiny_spec):
    here = tmp_path / "started-here"
    here.mkdir()
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_spec(tiny_spec, s3_root, tmp_path / "mlflow.db", epochs=3)))
    study = locate(s3_root)
    with (tmp_path / "first.log").open("w") as out:
        driver = _oodml(["run", str(config)], here, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while not list((study / "results").glob("*.parquet")):  # the tuning trial is recorded
            assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.5)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    recorded = read_results(s3_root)
    assert (study / ".lock").exists()  # the killed driver's lease, left behind
    refused = subprocess.run(
        [sys.executable, "-m", "study.cli", "resume", s3_root],
        capture_output=True,
        text=True,
        cwd=here,
        env=dict(os.environ, OODML_LEASE_EXPIRY_S=str(LEASE_EXPIRY_S)),
        timeout=300,
    )
    assert refused.returncode == 2 and "is in use by oodml run pid" in refused.stderr, refused.stderr
    time.sleep(LEASE_EXPIRY_S)
    with (tmp_path / "resume.log").open("w") as out:
        resume = _oodml(["resume", s3_root], here, stdout=out, stderr=subprocess.STDOUT)
        assert resume.wait(600) == 0, (tmp_path / "resume.log").read_text()[-4000:]
    table = read_results(s3_root)
    assert set(table["status"].to_pylist()) == {"completed"}
    _one_row_set_per_trial(table)
    assert set(recorded["trial_id"].to_pylist()) <= set(table["trial_id"].to_pylist())
    evaluation = table.filter(pc.equal(table["stage"], "eval"))
    assert len(set(evaluation["trial_id"].to_pylist())) == 2 and list(here.iterdir()) == []
