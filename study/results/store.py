"""The results dataset on disk: one Parquet file per trial row set, written atomically.

``<study_dir>/results/<stage>-<trial>.parquet`` holds a trial's rows and ``<study_dir>/curves/`` its
per-epoch curves. A file is written to a hidden ``.*.tmp`` name, flushed to disk and renamed over its
final name, so a reader sees either the previous complete file or the new one, never a partial one; the
results file is written after the curves file and is the trial's completion marker. Writing the same
trial and stage again replaces its files, so a retried or resumed trial is never counted twice.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from study.results.files import atomic_path
from study.results.layout import CURVES_DIR, RESULTS_DIR
from study.results.schema import CURVES_SCHEMA, SCHEMA, SCHEMA_VERSION, VERSION_KEY, curve_rows, trial_rows

if TYPE_CHECKING:  # for annotations only: the record is read by its attributes
    from tasks.record import TrialRecord

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")


class UnreadableResultWarning(UserWarning):
    """A ``.parquet`` file in the results dataset could not be read and was skipped."""


def result_path(study_dir: str | Path, trial_id: str, stage: str, folder: str = RESULTS_DIR) -> Path:
    """Where a trial's rows live: the name is derived from the trial id and stage only."""
    name = trial_id if _SAFE.fullmatch(trial_id) else _escaped(trial_id)
    return Path(study_dir) / folder / f"{stage}-{name}.parquet"


def write_trial_result(
    study_dir: str | Path,
    record: TrialRecord,
    *,
    stage: str,
    study: str,
    mlflow_run_id: str | None = None,
    tuned: dict | None = None,
    where: dict[str, str | None] | None = None,
) -> Path:
    """Write (or replace) a trial's rows and curves (from its ``TrialRecord``); returns the results file.
    ``where``: the ``ray_node_id`` and ``hostname`` the trial ran on, when known."""
    rows = trial_rows(
        record, stage=stage, study=study, mlflow_run_id=mlflow_run_id, tuned=tuned, **(where or {})
    )
    trial_id = record.trial_id
    curves = curve_rows(record, stage=stage, study=study)
    curves_path = result_path(study_dir, trial_id, stage, CURVES_DIR)
    if curves.num_rows:
        _atomic_write(curves, curves_path)
    else:  # a retry without curves must not leave an earlier attempt's curves behind
        curves_path.unlink(missing_ok=True)
    path = result_path(study_dir, trial_id, stage)
    _atomic_write(rows, path)
    return path


def completed_trial_ids(study_dir: str | Path, stage: str | None = None) -> set[str]:
    """Trial ids with a completed row set (failed trials are not completed: a rerun retries them)."""
    table, _ = read_folder(Path(study_dir) / RESULTS_DIR, SCHEMA, columns=["trial_id", "stage", "status"])
    done = pc.equal(table["status"], "completed")
    if stage is not None:
        done = pc.and_(done, pc.equal(table["stage"], stage))
    return set(table.filter(done)["trial_id"].to_pylist())


def read_results(study_dir: str | Path) -> pa.Table:
    """All result rows as one table (the empty schema if there are none); warns about unreadable files."""
    return _read_warning(Path(study_dir) / RESULTS_DIR, SCHEMA)


def read_curves(study_dir: str | Path) -> pa.Table:
    """All per-epoch curve rows as one table (long form: trial_id, stage, epoch, key, value)."""
    return _read_warning(Path(study_dir) / CURVES_DIR, CURVES_SCHEMA)


def read_folder(
    folder: Path, schema: pa.Schema, columns: list[str] | None = None
) -> tuple[pa.Table, list[tuple[Path, str]]]:
    """Read every ``*.parquet`` file in ``folder``; returns the table and the files skipped, with why."""
    wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns])
    tables, skipped = [], []
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            tables.append(_read_file(path, wanted))
        except (OSError, ValueError, pa.ArrowException) as err:
            skipped.append((path, f"{type(err).__name__}: {err}"))
    return (pa.concat_tables(tables) if tables else wanted.empty_table()), skipped


def leftover_temporary_files(study_dir: str | Path) -> list[Path]:
    """``.tmp`` files left by writers that crashed before renaming them (ignored by every reader)."""
    return sorted(p for d in (RESULTS_DIR, CURVES_DIR) for p in (Path(study_dir) / d).glob(".*.tmp"))


def _read_file(path: Path, wanted: pa.Schema) -> pa.Table:
    with pq.ParquetFile(path) as parquet:  # lighter than pq.read_table, which builds a dataset per file
        version = int((parquet.schema_arrow.metadata or {}).get(VERSION_KEY, b"0"))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"written with results schema {version}; this oodml reads up to {SCHEMA_VERSION}"
            )
        present = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[f.name for f in wanted if f.name in present])
    columns = [
        table[f.name].cast(f.type) if f.name in present else pa.nulls(table.num_rows, f.type) for f in wanted
    ]
    return pa.Table.from_arrays(columns, schema=wanted)


def _read_warning(folder: Path, schema: pa.Schema) -> pa.Table:
    table, skipped = read_folder(folder, schema)
    for path, why in skipped:
        warnings.warn(f"skipped unreadable result file {path}: {why}", UnreadableResultWarning, stacklevel=3)
    return table


def _atomic_write(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _escaped(trial_id: str) -> str:
    digest = hashlib.sha256(trial_id.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', trial_id)[:80]}-{digest}"
