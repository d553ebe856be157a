"""The status tables the driver keeps for the dashboard: trials started and ended, the driver's heartbeat."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest

from study import status
from study.results import write_trial_result
from study.results.status import STALE_AFTER_S, read_driver, read_trial_status
from study.status import driver_status, trial_ended, trial_started
from tests.dashboards.synthetic import SPLITS, trial_record


def _rows(study_dir):
    return {(r["trial_id"], r["stage"]): r for r in read_trial_status(study_dir).to_pylist()}


def test_a_trial_ends_as_its_result_row_says(tmp_path):
    record = trial_record("margin", SPLITS[0], 0, ())
    trial_started(
        tmp_path, record.trial_id if hasattr(record, "trial_id") else record["trial_id"], "eval", "a"
    )
    trial_id = next(iter(_rows(tmp_path)))[0]
    assert _rows(tmp_path)[(trial_id, "eval")]["status"] == "running"
    write_trial_result(tmp_path, record, stage="eval", study="s")
    trial_ended(tmp_path, trial_id, "eval")
    row = _rows(tmp_path)[(trial_id, "eval")]
    assert row["status"] == "completed" and row["error"] is None and row["finished_at"] >= row["started_at"]
    trial_started(tmp_path, "no-row", "tune", "b")
    trial_ended(tmp_path, "no-row", "tune")  # the recorder wrote nothing: failed, and says why
    assert _rows(tmp_path)[("no-row", "tune")]["error"] == "the trial ended without a result row"


def test_driver_status_heartbeat_and_interrupted_trials(tmp_path, monkeypatch):
    monkeypatch.setattr(status, "HEARTBEAT_S", 0.05)
    trial_started(tmp_path, "left-over", "eval", "from a driver that was killed")
    with driver_status(tmp_path):
        driver = read_driver(tmp_path)
        assert driver.state == "running" and driver.alive()
        assert _rows(tmp_path)[("left-over", "eval")]["status"] == "interrupted"
        trial_started(tmp_path, "now", "eval", "running")
        first = driver.heartbeat
        for _ in range(100):
            if read_driver(tmp_path).heartbeat > first:
                break
            time.sleep(0.02)
        assert read_driver(tmp_path).heartbeat > first
    driver = read_driver(tmp_path)
    assert driver.state == "finished" and not driver.alive()
    assert _rows(tmp_path)[("now", "eval")]["status"] == "interrupted"
    with pytest.raises(KeyboardInterrupt), driver_status(tmp_path):
        raise KeyboardInterrupt
    assert read_driver(tmp_path).state == "stopped"


def test_a_silent_driver_is_not_alive(tmp_path):
    with driver_status(tmp_path):
        driver = read_driver(tmp_path)
    silent = replace(driver, state="running")  # killed -9: its row still says running
    assert silent.alive(driver.heartbeat + timedelta(seconds=STALE_AFTER_S - 1))
    assert not silent.alive(driver.heartbeat + timedelta(seconds=STALE_AFTER_S + 1))
