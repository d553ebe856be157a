"""The results schema (long form) and the conversion of a trial record into its rows.

One row per (trial, stage, subset, shots, kind, metric); docs/results-schema.md documents every column
and why the table is long rather than wide.
"""

from __future__ import annotations

import json
import numbers
import re
from datetime import UTC, datetime

import pyarrow as pa

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
    pa.field("method", pa.string()),
    pa.field("backbone", pa.string()),
    pa.field("embedding_dim", pa.int32()),
    pa.field("seed", pa.int64()),
    pa.field("epochs", pa.int32()),
    pa.field("protocol", pa.string()),
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
]
TRIAL_FIELDS = [
    pa.field("selected_epoch", pa.int32()),
    pa.field("resumed_from_epoch", pa.int32()),
    pa.field("time_train_s", pa.float64()),
    pa.field("time_test_eval_s", pa.float64()),
    pa.field("time_fewshot_s", pa.float64()),
    pa.field("time_total_s", pa.float64()),
    pa.field("device", pa.string()),
    pa.field("checkpoint", pa.string()),
    pa.field("config", pa.string()),
    pa.field("versions", pa.string()),
    pa.field("mlflow_run_id", pa.string()),
    pa.field("finished_at", pa.timestamp("us", tz="UTC")),
]
SCHEMA = pa.schema(
    IDENTITY_FIELDS + MEASUREMENT_FIELDS + TRIAL_FIELDS,
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
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

# Record keys copied under the same name; the JSON ones may also come as dicts (partial records).
_COPIED = (
    "dataset split_id split_key split_progression split_hash fid num_train_classes num_test_classes method "
    "backbone embedding_dim seed epochs protocol selected_epoch resumed_from_epoch device checkpoint"
).split()
_JSON = ("hyperparameters", "config", "versions")
_TIMINGS = {"time/train_s", "time/test_eval_s", "time/fewshot_s", "time/total_s"}
_FEWSHOT = re.compile(r"fewshot/(\d+)/(fewshot|zeroshot)/(.+)")


def measurements(record: dict) -> list[dict]:
    """The metric rows of a record: ``val/<m>`` and ``test/<m>`` at shots 0, ``fewshot/<s>/<kind>/<m>``."""
    rows = []
    for key, value in record.items():
        subset, _, metric = key.partition("/")
        if subset in ("val", "test") and metric:
            rows.append({"subset": subset, "shots": 0, "kind": "zeroshot", "metric": metric, "value": value})
            continue
        match = _FEWSHOT.fullmatch(key)
        if match is None or key.endswith("/ci95"):
            continue
        shots, kind, metric = int(match[1]), match[2], match[3]
        rows.append(
            {
                "subset": "test",
                "shots": shots,
                "kind": kind,
                "metric": metric,
                "value": value,
                "ci95": record.get(f"{key}/ci95"),
                "episodes": record.get(f"fewshot/{shots}/episodes"),
                "left_out_classes": record.get(f"fewshot/{shots}/left_out_classes"),
                "support": record.get(f"fewshot/{shots}/support"),
                "nan_reason": record.get(f"fewshot/{shots}/nan_reason"),
            }
        )
    for row in rows:
        if not _is_number(row["value"]):
            raise ValueError(f"record key for metric {row['metric']!r} holds {row['value']!r}, not a number")
        row["value"] = float(row["value"])
    return sorted(rows, key=lambda r: (r["subset"], r["shots"], r["kind"], r["metric"]))


def trial_rows(
    record: dict,
    *,
    stage: str,
    study: str,
    status: str,
    error: str | None,
    mlflow_run_id: str | None,
    tuned: dict | None,
) -> pa.Table:
    """The rows of one trial: its measurements, or a single row without a measurement if it failed."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    trial_id = record.get("trial_id")
    if not isinstance(trial_id, str) or not trial_id:
        raise ValueError(f"record has no trial_id (keys: {sorted(record)[:10]})")
    if status == "failed" and not error:
        raise ValueError(f"trial {trial_id}: a failed trial needs its error")
    base = {name: record.get(name) for name in _COPIED}
    base.update({name: _json(record.get(name)) for name in _JSON})
    base.update({f"time_{k[5:]}": record.get(k) for k in _TIMINGS})
    base.update(
        schema_version=SCHEMA_VERSION,
        study=study,
        trial_id=trial_id,
        stage=stage,
        status=status,
        error=error,
        tuned_hyperparameters=json.dumps(tuned or {}, sort_keys=True),
        mlflow_run_id=mlflow_run_id,
        finished_at=datetime.now(UTC),
    )
    if status == "failed":
        rows = [base]
    else:
        found = measurements(record)
        if not found:
            raise ValueError(f"trial {trial_id} is marked completed but its record holds no metrics")
        rows = [base | row for row in found]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def curve_rows(record: dict, *, stage: str, study: str) -> pa.Table:
    """Per-epoch curves from the ``curve/<key>`` lists, aligned on ``curve/epoch``."""
    epochs = record.get("curve/epoch") or []
    rows = []
    for key, values in record.items():
        if not key.startswith("curve/") or key == "curve/epoch":
            continue
        if len(values) != len(epochs):
            raise ValueError(f"{key} has {len(values)} values for {len(epochs)} epochs")
        rows += [
            {"epoch": e, "key": key[6:], "value": float(v) if _is_number(v) else None}
            for e, v in zip(epochs, values, strict=True)
        ]
    common = {
        "schema_version": SCHEMA_VERSION,
        "study": study,
        "trial_id": record["trial_id"],
        "stage": stage,
    }
    return pa.Table.from_pylist([common | row for row in rows], schema=CURVES_SCHEMA)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _json(value: object) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)
