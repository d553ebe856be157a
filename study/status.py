"""The driver keeps the study's status tables (``study/results/status.py``) for the dashboard.

``driver_status`` wraps a run: it records the driver, renews its heartbeat from a thread, marks the trials
an earlier driver left running as interrupted, and records how the run ended. ``trial_started`` and
``trial_ended`` are called by a Tune callback (``study.execution.TrialStatus``) placed after the
``Recorder``: a trial is ``running`` from its start, and ends as its result row (just written) says.
No Ray here: the dashboard's tests write these tables as a driver would.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from study.results.status import (
    HEARTBEAT_S,
    DriverStatus,
    now,
    read_trial_status,
    write_driver,
    write_trial_status,
)
from study.results.storage import StudyPath, arrow_source
from study.results.store import result_path


@contextmanager
def driver_status(study_dir: StudyPath) -> Iterator[None]:
    """Record this process as the study's running driver until the block ends (hold the study lock)."""
    started = now()
    driver = DriverStatus(os.getpid(), socket.gethostname(), "running", started, started)
    write_driver(study_dir, driver)
    _mark_interrupted(study_dir)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            write_driver(study_dir, replace(driver, heartbeat=now()))

    thread = threading.Thread(target=beat, name="oodml-status-heartbeat", daemon=True)
    thread.start()
    state = "stopped"
    try:
        yield
        state = "finished"
    finally:
        stop.set()
        thread.join()
        at = now()
        write_driver(study_dir, replace(driver, state=state, heartbeat=at, finished_at=at))
        _mark_interrupted(study_dir)


def _mark_interrupted(study_dir: StudyPath) -> None:
    """Trials still ``running`` in the table belong to a driver that is gone (or ending now)."""
    table = read_trial_status(study_dir)
    running = pc.equal(table["status"], "running").to_pylist()
    if any(running):
        status = [
            ("interrupted" if r else s) for r, s in zip(running, table["status"].to_pylist(), strict=True)
        ]
        write_trial_status(study_dir, table.set_column(3, "status", pa.array(status, pa.string())))


def _update(study_dir: StudyPath, trial_id: str, stage: str, **values) -> None:
    """Only the driver's main thread (Tune's callbacks) writes the trial table."""
    rows = read_trial_status(study_dir).to_pylist()
    row = next((r for r in rows if r["trial_id"] == trial_id and r["stage"] == stage), None)
    if row is None:
        row = {"trial_id": trial_id, "stage": stage}
        rows.append(row)
    row.update(values)
    write_trial_status(study_dir, pa.Table.from_pylist(rows))


def trial_started(study_dir: StudyPath, trial_id: str, stage: str, label: str) -> None:
    _update(
        study_dir,
        trial_id,
        stage,
        label=label,
        status="running",
        error=None,
        started_at=now(),
        finished_at=None,
    )


def trial_ended(study_dir: StudyPath, trial_id: str, stage: str) -> None:
    """The trial's status and error as its result row says (``failed`` if it has none)."""
    status, error = "failed", "the trial ended without a result row"
    try:
        path = result_path(study_dir, trial_id, stage)
        row = pq.read_table(**arrow_source(path), columns=["status", "error"]).slice(0, 1)
        status, error = row["status"][0].as_py(), row["error"][0].as_py()
    except (OSError, pa.ArrowException, IndexError):
        pass
    _update(study_dir, trial_id, stage, status=status, error=error, finished_at=now())
