"""The results dataset: one Parquet file per trial row set, written atomically.

``<study_dir>/results/<stage>-<trial>.parquet`` holds a trial's rows and ``<study_dir>/curves/`` its
per-epoch curves. On a local disk a file is written to a hidden ``.*.tmp`` name, flushed and renamed over
its final name; on an object store it is one PUT (``study.results.storage``). Either way a reader sees the
previous complete file or the new one, never a partial one. The results file is written after the curves
file and is the trial's completion marker. Writing the same trial and stage again replaces its files, so a
retried or resumed trial is never counted twice.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from study.results.files import atomic_path
from study.results.layout import CURVES_DIR, RESULTS_DIR, SUPERSEDED_DIR
from study.results.schema import (
    BENCHMARK,
    CURVES_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    VERSION_KEY,
    curve_rows,
    trial_rows,
)
from study.results.storage import StudyPath, Where, arrow_source, locate

if TYPE_CHECKING:  # for annotations only: the record is read by its attributes
    from tasks.record import TrialRecord

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")


READ_THREADS = min(8, os.cpu_count() or 1)  # result files read at once


class UnreadableResultWarning(UserWarning):
    """A ``.parquet`` file in the results dataset could not be read and was skipped."""


def result_path(study_dir: Where, trial_id: str, stage: str, folder: str = RESULTS_DIR) -> StudyPath:
    """Where a trial's rows live: the name is derived from the trial id and stage only."""
    name = trial_id if _SAFE.fullmatch(trial_id) else _escaped(trial_id)
    return locate(study_dir) / folder / f"{stage}-{name}.parquet"


def write_trial_result(
    study_dir: Where,
    record: TrialRecord,
    *,
    stage: str,
    study: str,
    mlflow_run_id: str | None = None,
    tuned: dict | None = None,
    where: dict[str, str | None] | None = None,
) -> StudyPath:
    """Write (or replace) a trial's rows and curves (from its ``TrialRecord``); returns the results file.
    ``where``: the ``ray_node_id`` and ``hostname`` the trial ran on, when known."""
    rows = trial_rows(
        record, stage=stage, study=study, mlflow_run_id=mlflow_run_id, tuned=tuned, **(where or {})
    )
    trial_id = record.trial_id
    curves = curve_rows(record, stage=stage, study=study)
    curves_path = result_path(study_dir, trial_id, stage, CURVES_DIR)
    if curves.num_rows:
        atomic_write_table(curves, curves_path)
    else:  # a retry without curves must not leave an earlier attempt's curves behind
        curves_path.unlink(missing_ok=True)
    path = result_path(study_dir, trial_id, stage)
    atomic_write_table(rows, path)
    return path


# What one evaluation trial measures: a cell of the study. Aggregations expect one trial per cell.
CELL = ["dataset", "backbone", "method", "split_id", "seed", "trial_role"]


class SupersededResults:
    """Sets aside the row sets of trials that measured the same cell as a newly completed one.

    A cell (``CELL``: dataset, backbone, method label, split, seed, trial role) is measured by one
    evaluation trial. When a study is run again with settings that change its trials' ids (e.g.
    ``training.epochs``, the few-shot budgets, turning the oracle on), each new trial measures a cell an
    earlier trial already measured. Once the new trial completes, the earlier trial's results and curves
    files move to ``<study>/superseded/results/`` and ``.../curves/`` (nothing is deleted; move them back
    to read them), so every reader sees one trial per cell: the current settings'. A failed new trial
    supersedes nothing. The cells of the study's files are read once, then kept up to date.
    """

    def __init__(self, study_dir: Where, stage: str) -> None:
        self.study_dir, self.stage = locate(study_dir), stage
        self._cells: dict[str, tuple] | None = None

    def completed(self, trial_id: str) -> list[str]:
        """``trial_id`` completed (its rows are written): move the trials it supersedes; their ids."""
        cells = self._known()
        path = result_path(self.study_dir, trial_id, self.stage)
        rows = _read_file(path, pa.schema([SCHEMA.field(c) for c in CELL]))
        cell = _cell(rows.slice(0, 1).to_pylist()[0]) if rows.num_rows else None
        earlier = [t for t, c in cells.items() if c == cell and t != trial_id] if cell else []
        for other in earlier:
            for folder in (RESULTS_DIR, CURVES_DIR):
                source = result_path(self.study_dir, other, self.stage, folder)
                if source.exists():
                    target = self.study_dir / SUPERSEDED_DIR / folder / source.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source.replace(target)
            del cells[other]
        if cell:
            cells[trial_id] = cell
        return earlier

    def _known(self) -> dict[str, tuple]:
        if self._cells is None:
            table, _ = read_folder(self.study_dir / RESULTS_DIR, SCHEMA, columns=CELL + ["trial_id", "stage"])
            rows = table.filter(pc.equal(table["stage"], self.stage)).to_pylist()
            self._cells = {row["trial_id"]: _cell(row) for row in rows}
        return self._cells


def _cell(row: dict) -> tuple:
    """A row's cell; a null role (files written before roles existed) is the benchmark's."""
    return tuple(row[c] if c != "trial_role" else (row[c] or BENCHMARK) for c in CELL)


def completed_trial_ids(study_dir: Where, stage: str | None = None) -> set[str]:
    """Trial ids with a completed row set (failed trials are not completed: a rerun retries them)."""
    table, _ = read_folder(locate(study_dir) / RESULTS_DIR, SCHEMA, columns=["trial_id", "stage", "status"])
    done = pc.equal(table["status"], "completed")
    if stage is not None:
        done = pc.and_(done, pc.equal(table["stage"], stage))
    return set(table.filter(done)["trial_id"].to_pylist())


def read_results(study_dir: Where) -> pa.Table:
    """All result rows as one table (the empty schema if there are none); warns about unreadable files."""
    return _read_warning(locate(study_dir) / RESULTS_DIR, SCHEMA)


def read_curves(study_dir: Where) -> pa.Table:
    """All per-epoch curve rows as one table (long form: trial_id, stage, epoch, key, value)."""
    return _read_warning(locate(study_dir) / CURVES_DIR, CURVES_SCHEMA)


def read_folder(
    folder: Where, schema: pa.Schema, columns: list[str] | None = None
) -> tuple[pa.Table, list[tuple[StudyPath, str]]]:
    """Read every ``*.parquet`` file in ``folder``; returns the table and the files skipped, with why."""
    wanted = schema if columns is None else pa.schema([schema.field(c) for c in columns])

    def read(path: StudyPath) -> pa.Table | str:
        try:
            return _read_file(path, wanted)
        except (OSError, ValueError, pa.ArrowException) as err:
            return f"{type(err).__name__}: {err}"

    paths = sorted(locate(folder).glob("*.parquet"))  # nothing when the folder is absent
    with ThreadPoolExecutor(READ_THREADS) as pool:  # Arrow reads without the GIL: files in parallel
        found = list(pool.map(read, paths))
    tables = [t for t in found if isinstance(t, pa.Table)]
    skipped = [(path, why) for path, why in zip(paths, found, strict=True) if isinstance(why, str)]
    return (pa.concat_tables(tables) if tables else wanted.empty_table()), skipped


def leftover_temporary_files(study_dir: Where) -> list[StudyPath]:
    """``.tmp`` files left by writers that crashed before renaming them (ignored by every reader; an object
    store has none: an object is written by one PUT)."""
    return sorted(p for d in (RESULTS_DIR, CURVES_DIR) for p in (locate(study_dir) / d).glob(".*.tmp"))


def _read_file(path: StudyPath, wanted: pa.Schema) -> pa.Table:
    with pq.ParquetFile(**arrow_source(path)) as parquet:  # lighter than pq.read_table
        version = int((parquet.schema_arrow.metadata or {}).get(VERSION_KEY, b"0"))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"written with results schema {version}; this oodml reads up to {SCHEMA_VERSION}"
            )
        present = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[f.name for f in wanted if f.name in present])
    columns = [
        pa.nulls(table.num_rows, f.type)
        if f.name not in present
        else table[f.name]
        if table.schema.field(f.name).type == f.type
        else table[f.name].cast(f.type)
        for f in wanted
    ]
    return pa.Table.from_arrays(columns, schema=wanted)


def _read_warning(folder: StudyPath, schema: pa.Schema) -> pa.Table:
    table, skipped = read_folder(folder, schema)
    for path, why in skipped:
        warnings.warn(f"skipped unreadable result file {path}: {why}", UnreadableResultWarning, stacklevel=3)
    return table


def atomic_write_table(table: pa.Table, path: StudyPath) -> None:
    """Write ``table`` as Parquet to ``path`` whole or not at all (a temporary file renamed; one PUT)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _escaped(trial_id: str) -> str:
    digest = hashlib.sha256(trial_id.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', trial_id)[:80]}-{digest}"
