"""Small helpers every writer and reader of a study folder shares: the atomic write, the Student-t interval.

``tasks/`` keeps its own atomic write (``tasks/data/cache.atomic_write``) and interval
(``tasks/fewshot.mean_ci95``): it does not import ``study``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from study.results.storage import ObjectPath, StudyPath, Where, locate


@contextmanager
def atomic_path(path: Where) -> Iterator[Path]:
    """A temporary path for the caller to write ``path``'s new content to; renamed onto ``path`` on success,
    removed on failure. A reader sees the previous complete file or the new one, never part of one.

    The temporary name is hidden and does not end in the final suffix (``.<name>.<pid>.tmp``), so readers
    and globs (``*.parquet``) skip it. The file and the rename are fsynced (docs/results-schema.md). For an
    object-store path the temporary file is local scratch space, uploaded by one PUT on success
    (``study.results.storage``)."""
    path = locate(path)
    if isinstance(path, ObjectPath):
        with tempfile.TemporaryDirectory(prefix="oodml-") as scratch:
            tmp = Path(scratch) / path.name
            yield tmp
            path.write_bytes(tmp.read_bytes())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def write_text_atomic(path: Where, text: str) -> StudyPath:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return locate(path)


def ci95(values: np.ndarray | pd.Series) -> float:
    """Half-width of the 95% Student-t interval of the mean, ``t(0.975, n-1) * s / sqrt(n)`` with the sample
    standard deviation ``s`` (ddof 1), ignoring NaNs; NaN for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
