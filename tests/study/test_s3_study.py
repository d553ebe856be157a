"""A tiny study whose folder is ``s3://...`` on a real S3 server (SeaweedFS, tests/s3server.py), run as a
user runs it: ``oodml run`` in a process of its own (its own local Ray), the AWS variables in its
environment, MLflow on a SQLite file outside the study folder. Its driver is SIGKILLed (its lease keeps
another driver out until it expires), the resume reads the store alone, and the store goes away for 20 s
in the resume's middle. The study completes with exactly one row set per trial, its results, split file,
trial folders, Tune state and dashboard on the store and nothing of it in the folder it was started from."""

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

from study.lock import StudyLockedError, study_lock
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


def _wait_for(condition, process: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.5)


def test_a_study_on_s3_survives_its_driver_killed_and_the_store_going_away(
    s3_server, s3_root, tmp_path, tiny_spec
):
    """One study, every fault in turn: the driver SIGKILLed once its tuning trial is recorded (its lease
    refuses another driver until it expires), then resumed from the store alone, and the store stopped
    for 20 s while an evaluation trial runs and started again on the same data."""
    here = tmp_path / "started-here"
    here.mkdir()
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(_spec(tiny_spec, s3_root, tmp_path / "mlflow.db", epochs=3)))
    study = locate(s3_root)
    first = tmp_path / "first.log"
    with first.open("w") as out:
        driver = _oodml(["run", str(config)], here, stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: list((study / "results").glob("*.parquet")), driver, first)  # the tuning trial
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    recorded = read_results(s3_root)
    with pytest.raises(StudyLockedError, match="is in use by oodml run pid .* renewed"):
        with study_lock(study):  # the killed driver's lease, still live
            pass
    time.sleep(LEASE_EXPIRY_S)  # the resume's expiry (its environment's)

    resumed = tmp_path / "resume.log"
    with resumed.open("w") as out:
        resume = _oodml(["resume", s3_root], here, stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: "[eval] 2 trials" in resumed.read_text(), resume, resumed)
        _wait_for(lambda: list(study.glob("trials/*/last.pt")), resume, resumed)  # an eval epoch stored
        s3_server.stop()
        time.sleep(20)
        s3_server.start()
        assert resume.wait(600) == 0, resumed.read_text()[-4000:]

    assert list(here.iterdir()) == []  # everything of the study is on the store
    table = read_results(s3_root)
    assert set(table["status"].to_pylist()) == {"completed"} and set(table["stage"].to_pylist()) == {
        "tune",
        "eval",
    }
    _one_row_set_per_trial(table)
    assert set(recorded["trial_id"].to_pylist()) <= set(table["trial_id"].to_pylist())  # not run again
    evaluation = table.filter(pc.equal(table["stage"], "eval"))
    assert len(set(evaluation["trial_id"].to_pylist())) == 2
    for stored in (SPEC_FILE, OPTUNA_JOURNAL, f"{DASHBOARD_DIR}/{DASHBOARD_PAGE}"):
        assert (study / stored).is_file(), stored
    assert list(study.glob(f"splits/*/{SPLIT_FILE}")) and list((study / RAY_DIR).iterdir())
    for trial_id in set(evaluation["trial_id"].to_pylist()):
        assert (study / TRIALS_DIR / trial_id / "best.pt").is_file()  # the selected weights
    assert not (study / ".lock").exists()  # released
    results = subprocess.run(
        [sys.executable, "-m", "study.cli", "results", s3_root], capture_output=True, text=True, timeout=300
    )
    assert results.returncode == 0 and "eval: 2 completed" in results.stdout, results.stdout + results.stderr
