"""The projection table of a dataset: its class means in 2-D, for a few of its splits.

``projections/<dataset>.parquet`` holds one row per shown split and class: the split (``split_key``,
``split_id``, ``fid``), the class, its ``side`` (``train`` or ``test``) and its coordinates ``x``, ``y``.
The key-value metadata say how the projection was made (``oodml.method``) and the axis labels
(``oodml.x_label``, ``oodml.y_label``). The driver writes it when it builds or reads a split file
(``study/projection.py``); the dashboard draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from study.results.files import atomic_path
from study.results.layout import PROJECTIONS_DIR, projection_path
from study.results.storage import StudyPath, Where, arrow_source, locate

PROJECTION_SCHEMA = pa.schema(
    [
        ("split_id", pa.int32()),
        ("split_key", pa.string()),
        ("fid", pa.float64()),
        ("class_name", pa.string()),
        ("side", pa.string()),
        ("x", pa.float64()),
        ("y", pa.float64()),
    ]
)
_KEYS = ("method", "x_label", "y_label", "source")


@dataclass(frozen=True)
class ProjectionTable:
    dataset: str
    rows: pa.Table  # PROJECTION_SCHEMA
    method: str  # how it was made, in words
    x_label: str
    y_label: str
    source: str  # where the class means came from


def write_projection(study_dir: Where, projection: ProjectionTable) -> StudyPath:
    path = projection_path(study_dir, projection.dataset)
    metadata = {f"oodml.{k}": getattr(projection, k) for k in _KEYS}
    table = projection.rows.cast(PROJECTION_SCHEMA).replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_projection(study_dir: Where, dataset: str) -> ProjectionTable | None:
    """``dataset``'s projection table, or None when the study has none (or it cannot be read)."""
    try:
        table = pq.read_table(**arrow_source(projection_path(study_dir, dataset)))
    except (OSError, pa.ArrowException):
        return None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    values = {k: meta.get(f"oodml.{k}", "") for k in _KEYS}
    return ProjectionTable(dataset, table.select(PROJECTION_SCHEMA.names).cast(PROJECTION_SCHEMA), **values)


def projected_datasets(study_dir: Where) -> list[str]:
    """Datasets with a projection table in the study."""
    return sorted(p.stem for p in (locate(study_dir) / PROJECTIONS_DIR).glob("*.parquet"))
