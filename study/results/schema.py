"""The results schema (long form) and the conversion of a trial record into its rows (``trial_rows``).

One row per (trial, stage, subset, shots, kind, metric); docs/results-schema.md documents every column
and why the table is long rather than wide.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # for annotations only: the record is read by its attributes
    from tasks.record import TrialRecord

SCHEMA_VERSION = 1
VERSION_KEY = b"oodml.schema_version"
STAGES = ("tune", "eval")
STATUSES = ("completed", "failed")

IDENTITY_FIELDS = [
    pa.field("schema_version", pa.int16(), nullable=False),
    pa.field("study", pa.string()),
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("split_id", pa.int32()),
    pa.field("split_key", pa.string()),
    pa.field("split_progression", pa.string()),
    pa.field("split_hash", pa.string()),
    pa.field("fid", pa.float64()),
    pa.field("num_train_classes", pa.int32()),
    pa.field("num_test_classes", pa.int32()),
    pa.field("shift", pa.map_(pa.string(), pa.float64())),  # the split's shift measures beyond FID
    pa.field("method", pa.string()),
    pa.field("method_name", pa.string()),
    pa.field("method_variant", pa.string()),
    pa.field("backbone", pa.string()),
    pa.field("embedding_dim", pa.int32()),
    pa.field("seed", pa.int64()),
    pa.field("epochs", pa.int32()),
    pa.field("protocol", pa.string()),
    pa.field("trial_role", pa.string()),  # benchmark or oracle (docs/oracle.md); null: benchmark
    pa.field("reported_weighting", pa.string()),  # the reported embedding's weighting (DiVA); null: one
    pa.field("fewshot_method", pa.string()),  # the few-shot criterion; null: no few-shot budgets
    pa.field("fewshot_hyperparameters", pa.map_(pa.string(), pa.float64())),  # all of the criterion's
    pa.field("hyperparameters", pa.string()),
    pa.field("tuned_hyperparameters", pa.string()),
]
MEASUREMENT_FIELDS = [
    pa.field("subset", pa.string()),
    pa.field("shots", pa.int32()),
    pa.field("kind", pa.string()),
    pa.field("metric", pa.string()),
    pa.field("value", pa.float64()),
    pa.field("ci95", pa.float64()),
    pa.field("episodes", pa.int32()),
    pa.field("left_out_classes", pa.int32()),
    pa.field("support", pa.string()),
    pa.field("nan_reason", pa.string()),
    pa.field("eval_dataset", pa.string()),  # subset cross: the dataset whose test classes were measured
    # another weighting of a block embedding (DiVA: 1-1-1-1, ...), recorded apart; null: the reported one
    pa.field("weighting", pa.string()),
]
TRIAL_FIELDS = [
    pa.field("selected_epoch", pa.int32()),
    pa.field("resumed_from_epoch", pa.int32()),
    pa.field("time_train_s", pa.float64()),
    pa.field("time_test_eval_s", pa.float64()),
    pa.field("time_fewshot_s", pa.float64()),
    pa.field("time_total_s", pa.float64()),
    pa.field("device", pa.string()),
    pa.field("ray_gpu_ids", pa.list_(pa.string())),  # the GPUs Ray gave the trial ([]: none)
    pa.field("cuda_visible_devices", pa.string()),  # as the trial saw it (Ray sets it to those GPUs)
    pa.field("ray_node_id", pa.string()),  # where the trial's last report came from (a cluster: which node)
    pa.field("hostname", pa.string()),
    pa.field("checkpoint", pa.string()),
    pa.field("config", pa.string()),
    pa.field("versions", pa.string()),
    pa.field("mlflow_run_id", pa.string()),
    pa.field("finished_at", pa.timestamp("us", tz="UTC")),
]
# Columns that describe a trial for a person or MLflow and that no aggregation reads: the summaries leave
# them unread (the configs alone are most of a results folder's bytes).
DESCRIPTIVE = (
    "config",
    "versions",
    "hyperparameters",
    "tuned_hyperparameters",
    "fewshot_hyperparameters",
    "checkpoint",
    "mlflow_run_id",
    "hostname",
    "ray_node_id",
    "ray_gpu_ids",
    "cuda_visible_devices",
)
# the values of trial_role (docs/oracle.md); null (files written before roles) reads as benchmark
BENCHMARK, ORACLE = "benchmark", "oracle"

SCHEMA = pa.schema(
    IDENTITY_FIELDS + MEASUREMENT_FIELDS + TRIAL_FIELDS,
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
SUMMARY_COLUMNS = [name for name in SCHEMA.names if name not in DESCRIPTIVE]  # what the summaries read
CURVES_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("study", pa.string()),
        pa.field("trial_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)

_TRIAL_COLUMNS = ("selected_epoch", "resumed_from_epoch", "checkpoint")


def trial_rows(
    record: TrialRecord,
    *,
    stage: str,
    study: str,
    mlflow_run_id: str | None = None,
    tuned: dict | None = None,
    ray_node_id: str | None = None,
    hostname: str | None = None,
) -> pa.Table:
    """The result rows of one trial record: one per measurement, or one without a measurement if the
    trial failed. The one conversion from a ``tasks.record.TrialRecord`` to rows (the record is read by
    its attributes: this package imports no other part of the project). ``ray_node_id`` and ``hostname``
    say where the trial ran (known to the Ray worker, not to the record)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    identity = {f.name: getattr(record.identity, f.name) for f in dataclasses.fields(record.identity)}
    unknown = sorted(set(identity) - set(SCHEMA.names))
    if unknown:
        raise ValueError(f"trial identity fields {unknown} have no column in the results schema")
    base = identity | {name: getattr(record, name) for name in _TRIAL_COLUMNS}
    base |= {f"time_{f.name}": getattr(record.timings, f.name) for f in dataclasses.fields(record.timings)}
    base.update(
        schema_version=SCHEMA_VERSION,
        study=study,
        stage=stage,
        status=record.status,
        error=record.error,
        hyperparameters=_json(record.hyperparameters),
        tuned_hyperparameters=_json(tuned or {}),
        config=_json(record.config),
        versions=_json(record.environment.versions),
        device=record.environment.device,
        ray_gpu_ids=record.environment.ray_gpu_ids,
        cuda_visible_devices=record.environment.cuda_visible_devices,
        mlflow_run_id=mlflow_run_id,
        ray_node_id=ray_node_id,
        hostname=hostname,
        finished_at=datetime.now(UTC),
    )
    if record.status == "failed":
        rows = [base]
    else:
        if not record.measurements:
            raise ValueError(f"trial {record.trial_id} is marked completed but its record holds no metrics")
        found = [dataclasses.asdict(m) for m in record.measurements]
        found.sort(key=lambda r: (r["subset"], r["shots"], r["kind"], r["metric"]))
        rows = [base | row for row in found]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def curve_rows(record: TrialRecord, *, stage: str, study: str) -> pa.Table:
    """The record's per-epoch curves in long form (epoch, key, value)."""
    curves = record.curves
    rows = [
        {"epoch": e, "key": key, "value": float(v) if _is_number(v) else None}
        for key, values in curves.values.items()
        for e, v in zip(curves.epochs, values, strict=True)
    ]
    common = {"schema_version": SCHEMA_VERSION, "study": study, "trial_id": record.trial_id, "stage": stage}
    return pa.Table.from_pylist([common | row for row in rows], schema=CURVES_SCHEMA)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _json(value: object) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)
