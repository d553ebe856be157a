"""The few-shot section reports classes left out of a budget's episodes and metrics that are missing."""

from __future__ import annotations

import math

import pyarrow as pa

from dashboards.fewshot import left_out_table
from study.results.schema import trial_rows
from tests.dashboards.synthetic import SPLITS, trial_record


def _rows(record: dict) -> pa.Table:
    return trial_rows(
        record, stage="eval", study="s", status="completed", error=None, mlflow_run_id=None, tuned=None
    )


def test_left_out_classes_and_missing_metrics_are_listed_once_per_budget():
    fine = trial_record("margin", SPLITS[0], 0, (2, 5))
    small = trial_record("margin", SPLITS[1], 0, (2, 5))
    small["fewshot/5/left_out_classes"] = 3
    empty = trial_record("multisimilarity", SPLITS[1], 0, (2, 5))
    empty["fewshot/5/left_out_classes"] = 4
    empty["fewshot/5/nan_reason"] = "no episode kept 2 query classes"
    for kind in ("fewshot", "zeroshot"):
        empty[f"fewshot/5/{kind}/recall@1"] = math.nan
    table = pa.concat_tables([_rows(fine), _rows(small), _rows(empty)])
    listed = left_out_table(table)
    assert listed[["split", "shots", "classes left out"]].values.tolist() == [[SPLITS[1][1], 5, 4]]
    assert listed["missing metrics"].tolist() == ["no episode kept 2 query classes"]
    assert left_out_table(_rows(fine)).empty
