"""The study's status tables: which trials the driver started and how they ended, and whether it runs.

The driver writes them (``study/status.py``); the dashboard reads them (``dashboards/status.py``), so it
needs neither the lock file nor the trial folders nor a process probe:

- ``status/trials.parquet``: one row per trial and stage the driver handed to Ray, with ``status``
  ``running`` while it runs, then ``completed`` or ``failed`` (as its result row says, with its error),
  or ``interrupted`` when a driver stopped before it ended; ``started_at`` and ``finished_at`` are the
  driver's clock.
- ``status/driver.parquet``: one row: the driver (pid, host), when it started, its ``state`` (``running``,
  ``finished``, ``stopped``) and a ``heartbeat`` it renews every ``HEARTBEAT_S`` seconds while it runs.
  A driver killed without a word (``kill -9``, a lost node) stops renewing it: a ``running`` driver whose
  heartbeat is older than ``STALE_AFTER_S`` is no longer running.

Older study folders have neither table: their status is the results dataset alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from study.results.files import atomic_path
from study.results.layout import DRIVER_STATUS_FILE, TRIAL_STATUS_FILE, status_path
from study.results.storage import StudyPath, Where, arrow_source

HEARTBEAT_S = 20.0
STALE_AFTER_S = 3 * HEARTBEAT_S + 10
TRIAL_STATES = ("running", "completed", "failed", "interrupted")
DRIVER_STATES = ("running", "finished", "stopped")

_TIME = pa.timestamp("us", tz="UTC")
TRIAL_STATUS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("stage", pa.string()),
        ("label", pa.string()),  # the trial in words (dataset, method, split, seed)
        ("status", pa.string()),
        ("error", pa.string()),
        ("started_at", _TIME),
        ("finished_at", _TIME),
    ]
)
DRIVER_SCHEMA = pa.schema(
    [
        ("pid", pa.int64()),
        ("host", pa.string()),
        ("state", pa.string()),
        ("started_at", _TIME),
        ("heartbeat", _TIME),
        ("finished_at", _TIME),
    ]
)


def now() -> datetime:
    return datetime.now(UTC)


def read_trial_status(study_dir: Where) -> pa.Table:
    """The trial status table; empty (same schema) when the study has none, or it cannot be read."""
    return _read(status_path(study_dir, TRIAL_STATUS_FILE), TRIAL_STATUS_SCHEMA)


def write_trial_status(study_dir: Where, table: pa.Table) -> None:
    _write(status_path(study_dir, TRIAL_STATUS_FILE), table.cast(TRIAL_STATUS_SCHEMA))


@dataclass(frozen=True)
class DriverStatus:
    pid: int
    host: str
    state: str
    started_at: datetime
    heartbeat: datetime
    finished_at: datetime | None = None

    def alive(self, at: datetime | None = None) -> bool:
        """Running, and heard from within ``STALE_AFTER_S``."""
        age = ((at or now()) - self.heartbeat).total_seconds()
        return self.state == "running" and age <= STALE_AFTER_S

    def describe(self) -> str:
        return f"oodml run pid {self.pid} on {self.host} since {self.started_at:%Y-%m-%d %H:%M:%S} UTC"


def read_driver(study_dir: Where) -> DriverStatus | None:
    """The last driver that ran the study, or None (never ran since the status tables exist)."""
    rows = _read(status_path(study_dir, DRIVER_STATUS_FILE), DRIVER_SCHEMA).to_pylist()
    return DriverStatus(**rows[-1]) if rows else None


def write_driver(study_dir: Where, driver: DriverStatus) -> None:
    row = {f.name: getattr(driver, f.name) for f in DRIVER_SCHEMA}
    _write(status_path(study_dir, DRIVER_STATUS_FILE), pa.Table.from_pylist([row], schema=DRIVER_SCHEMA))


def _read(path: StudyPath, schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(**arrow_source(path))
    except (OSError, pa.ArrowException):  # absent (an older study), or damaged outside oodml
        return schema.empty_table()
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _write(path: StudyPath, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
