"""A study on a timm backbone with a frozen baseline next to a DML method, for real (the session's local
Ray, MLflow SQLite store, Parquet): a small randomly initialised timm model (no download), glyph images
resized to its 160 px input."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from mlflow import MlflowClient

from study.api import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def timm_study(ray_local, tmp_path_factory, tiny_spec):
    spec = tiny_spec(tmp_path_factory.mktemp("studies") / "timm")
    spec["name"] = "timm"
    spec["datasets"][0]["evaluate"] = ["0"]
    spec["methods"] = [{"name": "frozen"}, {"name": "triplet", "search": True}]
    spec["model"] = {"backbone": "timm:test_vit", "embedding_dim": 16, "pretrained": False}
    spec["training"] |= {"iterations_per_epoch": 2}
    spec["tuning"] = {"trials": 1}
    lines: list[str] = []
    return run(spec, echo=lines.append), lines


def test_frozen_baseline_and_dml_method_on_a_timm_backbone(timm_study):
    result, lines = timm_study
    assert result.outcome.ok, lines
    table = result.table
    assert set(table["status"].to_pylist()) == {"completed"}
    tuned = table.filter(pc.equal(table["stage"], "tune"))
    assert set(tuned["method"].to_pylist()) == {"triplet"}  # frozen has nothing to tune
    rows = table.filter(pc.equal(table["stage"], "eval")).to_pylist()
    assert {r["backbone"] for r in rows} == {"timm:test_vit"}
    frozen = [r for r in rows if r["method"] == "frozen"]
    triplet = [r for r in rows if r["method"] == "triplet"]
    assert (
        {(r["subset"], r["shots"], r["kind"]) for r in frozen}
        == {(r["subset"], r["shots"], r["kind"]) for r in triplet}
        == {("val", 0, "zeroshot"), ("test", 0, "zeroshot"), ("test", 2, "zeroshot"), ("test", 2, "fewshot")}
    )
    assert {(r["epochs"], r["selected_epoch"], r["embedding_dim"], r["checkpoint"]) for r in frozen} == {
        (0, -1, 64, None)
    }
    assert {(r["epochs"], r["selected_epoch"], r["embedding_dim"]) for r in triplet} == {(1, 0, 16)}
    assert all(0 <= r["value"] <= 1 for r in rows if r["metric"] == "recall@1")
    assert set(result.auc()["method"].to_pylist()) == {"frozen", "triplet"}
    assert (result.study_dir / "dashboard" / "index.html").is_file()

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert len(children) == 3 and all(
        r.info.status == "FINISHED" for r in children
    )  # 1 tuning, 2 evaluations
    frozen_run = next(r for r in children if r.info.run_id == frozen[0]["mlflow_run_id"])
    assert client.list_artifacts(frozen_run.info.run_id, "checkpoint") == []  # no weights of its own
