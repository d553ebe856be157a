"""The few-shot section reports classes left out of a budget's episodes and metrics that are missing."""

from __future__ import annotations

import math
from dataclasses import replace

import pyarrow as pa

from dashboards.fewshot import left_out_table
from study.results.schema import trial_rows
from tasks.record import TrialRecord
from tests.dashboards.synthetic import SPLITS, trial_record


def _rows(record: TrialRecord) -> pa.Table:
    return trial_rows(record, stage="eval", study="s")


def _budget(record: TrialRecord, shots: int, metric: str | None = None, **changes) -> TrialRecord:
    """The record with ``changes`` made to the measurements of a budget (of one metric if named)."""
    return replace(
        record,
        measurements=tuple(
            replace(m, **changes) if m.shots == shots and metric in (None, m.metric) else m
            for m in record.measurements
        ),
    )


def test_left_out_classes_and_missing_metrics_are_listed_once_per_budget():
    fine = trial_record("margin", SPLITS[0], 0, (2, 5))
    small = _budget(trial_record("margin", SPLITS[1], 0, (2, 5)), 5, left_out_classes=3)
    empty = trial_record("multisimilarity", SPLITS[1], 0, (2, 5))
    empty = _budget(empty, 5, left_out_classes=4, nan_reason="no episode kept 2 query classes")
    empty = _budget(empty, 5, "recall@1", value=math.nan)
    table = pa.concat_tables([_rows(fine), _rows(small), _rows(empty)])
    listed = left_out_table(table)
    assert listed[["split", "shots", "classes left out"]].values.tolist() == [[SPLITS[1][1], 5, 4]]
    assert listed["missing metrics"].tolist() == ["no episode kept 2 query classes"]
    assert left_out_table(_rows(fine)).empty
