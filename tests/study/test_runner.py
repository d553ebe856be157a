"""The tiny study (``tiny_spec`` in tests/conftest.py), for real: the session's local Ray, an MLflow SQLite store,
Parquet results; then resume, the command line, the lock, and a failing trial.

``study.api.run`` is ``study.run``: pytest puts ``tests/`` on ``sys.path``, where ``tests/study``
shadows the package's top level as a namespace package (test_spec checks ``study.run`` itself).
"""

from __future__ import annotations

import json
import shutil

import pyarrow.compute as pc
import pytest
import yaml
from mlflow import MlflowClient

from study.api import run
from study.cli import main
from study.lock import study_lock
from study.results import read_results
from study.results.projections import read_projection
from study.results.status import read_driver, read_trial_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(ray_local, tmp_path_factory, tiny_spec):
    lines: list[str] = []
    root = tmp_path_factory.mktemp("studies") / "tiny"
    return run(tiny_spec(root), echo=lines.append), lines


def _rows(table, **equal):
    mask = None
    for column, value in equal.items():
        m = pc.equal(table[column], value)
        mask = m if mask is None else pc.and_(mask, m)
    return table.filter(mask).to_pylist()


def test_results_hold_every_method_split_and_budget(tiny):
    result, lines = tiny
    assert result.outcome.ok and result.outcome.planned == 4 and result.outcome.executed == 8
    assert any(line.startswith("[eval] 4/4 done, 0 running, 0 failed") for line in lines)
    table = result.table
    assert set(table["status"].to_pylist()) == {"completed"}
    evaluated = _rows(table, stage="eval", subset="test")
    assert {(r["method"], r["split_key"]) for r in evaluated} == {
        (m, k) for m in ("multisimilarity", "triplet") for k in {r["split_key"] for r in evaluated}
    }
    assert len({r["split_key"] for r in evaluated}) == 2
    assert {(r["shots"], r["kind"]) for r in evaluated} == {(0, "zeroshot"), (2, "zeroshot"), (2, "fewshot")}
    assert all(0 <= r["value"] <= 1 for r in evaluated if r["metric"] == "recall@1")
    for row in evaluated:  # tuned values are recorded and are the ones trained with
        tuned = json.loads(row["tuned_hyperparameters"])
        assert set(tuned) == ({"alpha"} if row["method"] == "multisimilarity" else {"margin"})
        assert json.loads(row["hyperparameters"]) == tuned
    tuning = _rows(table, stage="tune")
    assert {r["subset"] for r in tuning} == {"val"}
    assert len({r["trial_id"] for r in tuning}) == 4
    assert (result.study_dir / "splits" / "glyphs" / "splits.json").is_file()
    assert result.auc().num_rows == 2 and result.degradation_curves().num_rows == 4
    assert result.fewshot_gain().num_rows == 4 and "Normalized AUC" in result.summary()
    (pair,) = result.compare().pairs.to_pylist()  # one seed: a difference but no test
    assert pair["note"].startswith("1 seed") and pair["p_value"] is None and pair["n_cells"] == 2
    # the tables the dashboard reads: every trial started and ended, the driver finished, the projection
    status = read_trial_status(result.study_dir).to_pylist()
    assert len(status) == 8 and {r["status"] for r in status} == {"completed"}
    assert {(r["trial_id"], r["stage"]) for r in status} == {
        (r["trial_id"], r["stage"]) for r in table.to_pylist()
    }
    assert read_driver(result.study_dir).state == "finished"
    assert read_projection(result.study_dir, "glyphs").rows.num_rows > 0


def test_mlflow_parent_and_child_runs(tiny):
    result, _ = tiny
    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["oodml.role"] == "study"
    assert any(k.startswith("auc/glyphs/") for k in parent.data.metrics)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    stages = sorted(r.data.tags["oodml.stage"] for r in children)
    assert stages == ["eval"] * 4 + ["tune"] * 4
    assert all(r.info.status == "FINISHED" for r in children)
    run_ids = set(read_results(result.study_dir)["mlflow_run_id"].to_pylist())
    assert run_ids == {r.info.run_id for r in children}
    evaluation = next(r for r in children if r.data.tags["oodml.stage"] == "eval")
    assert [a.path for a in client.list_artifacts(evaluation.info.run_id, "checkpoint")] == [
        "checkpoint/best.pt"
    ]
    # the dashboard is written at the end of the run and logged to the parent run
    page = (result.study_dir / "dashboard" / "index.html").read_text()
    assert "no driver running" in page and "driver running<" not in page.replace("no driver running<", "")
    dashboard = [a.path for a in client.list_artifacts(result.parent_run_id, "dashboard")]
    assert "dashboard/index.html" in dashboard and any(p.endswith(".png") for p in dashboard)
    assert "comparison.json" in [a.path for a in client.list_artifacts(result.parent_run_id)]


def test_rerun_executes_nothing_and_keeps_results(tiny, tiny_spec):
    result, _ = tiny
    rows = result.table.num_rows
    lines: list[str] = []
    again = run(tiny_spec(result.study_dir), echo=lines.append)
    assert again.outcome.executed == 0 and again.outcome.ok
    assert again.parent_run_id == result.parent_run_id
    assert again.table.num_rows == rows
    assert "[eval] 4 trials, 4 recorded, 0 to run" in lines
    assert not any(line.startswith("running on") for line in lines)  # nothing to run: no Ray needed


def test_cli_resume_and_lock(tiny, capsys):
    result, _ = tiny
    assert main(["resume", str(result.study_dir)]) == 0
    out = capsys.readouterr().out
    assert f"results:   {result.study_dir / 'results'}" in out and result.parent_run_id in out
    with study_lock(result.study_dir):
        assert main(["resume", str(result.study_dir)]) == 2
    assert "is in use by oodml run pid" in capsys.readouterr().err


def test_failed_trial_is_recorded_and_exit_code_says_so(ray_local, tmp_path, tiny_spec, capsys):
    spec = tiny_spec(tmp_path / "diverging")
    spec |= {"methods": [{"name": "triplet"}], "training": spec["training"] | {"lr": 1e30}}
    spec["datasets"][0]["evaluate"] = ["0"]
    config = tmp_path / "diverging.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert main(["run", str(config)]) == 1
    assert "1 of 1 evaluation trials are not completed" in capsys.readouterr().err
    (row,) = read_results(tmp_path / "diverging").to_pylist()
    assert row["status"] == "failed" and row["error"].startswith("NonFiniteLossError")
    (status,) = read_trial_status(tmp_path / "diverging").to_pylist()
    assert status["status"] == "failed" and status["error"] == row["error"]


def test_a_rerun_under_other_settings_sets_the_earlier_results_aside(tiny, tiny_spec, tmp_path):
    """Changed settings give every trial a new id; each new trial supersedes its cell's earlier one, so
    the aggregations, the comparison and the parent run's summary still see one trial per cell."""
    result, _ = tiny
    folder = tmp_path / "tiny"
    shutil.copytree(result.study_dir, folder)
    old = {row["trial_id"] for row in _rows(result.table, stage="eval")}
    spec = tiny_spec(folder)
    spec["training"]["iterations_per_epoch"] = 5
    lines: list[str] = []
    again = run(spec, echo=lines.append)
    assert again.outcome.ok and not again.outcome.incomplete
    new = {row["trial_id"] for row in _rows(again.table, stage="eval")}
    assert len(new) == len(old) == 4 and not new & old
    moved = {path.name for path in (folder / "superseded" / "results").glob("*.parquet")}
    assert moved == {f"eval-{trial_id}.parquet" for trial_id in old}
    assert sum("moved to superseded/" in line for line in lines) == 4
    client = MlflowClient(again.tracking_uri)
    experiment = client.get_run(again.parent_run_id).info.experiment_id
    evals = client.search_runs([experiment], "tags.`oodml.stage` = 'eval'")
    tagged = {r.data.tags["oodml.trial_id"]: r.data.tags.get("oodml.superseded_by") for r in evals}
    assert {t for t, by in tagged.items() if by} == old and {by for by in tagged.values() if by} == new
    assert again.auc().num_rows == 2 and (folder / "comparison.json").is_file()
