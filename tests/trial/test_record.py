"""The typed trial record: one identity for ``oodml trial`` and studies, JSON across the Ray boundary, and
a new metric reaching the results table, MLflow and the dashboard's data with no edit downstream."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace

import pyarrow.compute as pc
import pytest
import yaml

import tasks.fewshot
import tasks.train
from study.cli import main
from study.expand import DatasetPlan, PlannedTrial, evaluation_trials
from study.recording import TrialLog, failed_record
from study.results import SCHEMA, degradation_curves, fewshot_gain, read_curves, read_results
from study.spec import load_spec
from study.tracking import StudyTracker
from tasks.config import load_trial_config
from tasks.identity import describe
from tasks.record import RECORD_VERSION, TrialIdentity, TrialRecord
from tasks.trial import run_trial
from tests.records import make_record


def _spec(bench, tmp_path) -> dict:
    return {
        "name": "same",
        "datasets": [
            {
                "name": "glyphs",
                "root": bench["root"],
                "options": bench["options"],
                "split_file": bench["split_file"],
                "evaluate": ["0"],
            }
        ],
        "methods": [{"name": "multisimilarity"}],
        "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
        "training": {
            "epochs": 1,
            "batch_size": 32,
            "samples_per_class": 4,
            "iterations_per_epoch": 2,
            "lr": 2e-3,
            "with_nmi": False,
            "record_test_curve": False,
        },
        "fewshot": {"budgets": [0, 2], "iterations": {2: 5}, "episodes": 2},
        "storage": {"root": str(tmp_path / "studies")},
    }


def _planned(bench, tmp_path) -> PlannedTrial:
    spec = load_spec(_spec(bench, tmp_path))
    plan = DatasetPlan.load(spec.datasets[0], spec.datasets[0].split_file, spec)
    [trial] = evaluation_trials(spec, [plan], {})
    return trial


def test_the_record_round_trips_through_json_and_refuses_other_versions():
    record = make_record(shots=(2, 5))
    again = TrialRecord.from_json(record.to_json())
    assert again == record and again.measurements[0].subset == "val"
    flat = record.scalars()
    assert flat["test/recall@1"] == record.measurement("test", "recall@1")
    assert flat["fewshot/5/fewshot/map@r/ci95"] == 0.02 and flat["fewshot/5/episodes"] == 10
    with pytest.raises(ValueError, match="record version 1"):
        TrialRecord.from_dict({"record_version": 1, "trial_id": "t", "test/recall@1": 0.5})
    assert RECORD_VERSION == json.loads(record.to_json())["record_version"]


def test_every_identity_field_is_a_results_column():
    assert {f.name for f in fields(TrialIdentity)} <= set(SCHEMA.names)


def test_oodml_trial_and_a_study_give_a_trial_the_same_identity(glyph_benchmark, tmp_path, capsys):
    planned = _planned(glyph_benchmark, tmp_path)
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(planned.config.model_dump(mode="json")))
    config = load_trial_config(path)
    assert describe(config).trial_id == planned.trial_id  # computed before the trial runs

    out = tmp_path / "record.json"
    assert main(["trial", str(path), "--json", "--workdir", str(tmp_path / "w"), "--out", str(out)]) == 0
    printed = TrialRecord.from_json(capsys.readouterr().out)
    assert printed.trial_id == planned.trial_id == TrialRecord.from_json(out.read_text()).trial_id
    assert printed.identity.split_hash == planned.split_digest and printed.identity.method_variant
    # a trial that failed before it produced a record is the same type, with what is known of it
    failed = failed_record(planned, "boom")
    assert failed.trial_id == planned.trial_id and failed.identity.method == printed.identity.method
    assert failed.status == "failed" and failed.identity.split_hash == planned.split_digest
    assert (failed.identity.fid, failed.identity.num_test_classes) == (
        printed.identity.fid,
        printed.identity.num_test_classes,
    )  # a failed row still sits at its split's FID in the tables
    data = planned.config.data.model_copy(update={"split_file": str(tmp_path / "gone.json")})
    moved = replace(planned, config=planned.config.model_copy(update={"data": data}))
    gone = failed_record(moved, "no split file").identity  # what is known when the split file is the fault
    assert gone.trial_id == planned.trial_id and gone.fid is None and gone.method == printed.identity.method


@pytest.mark.slow
def test_a_new_metric_reaches_the_results_mlflow_and_the_dashboard_data(
    glyph_benchmark, tmp_path, monkeypatch
):
    """Adding a metric touches its producer only: here the evaluation returns one more."""

    def with_spread(metrics):
        def evaluate(*args, **kwargs):
            return {**metrics(*args, **kwargs), "spread": 0.25}

        return evaluate

    monkeypatch.setattr(tasks.train, "retrieval_metrics", with_spread(tasks.train.retrieval_metrics))
    planned = _planned(glyph_benchmark, tmp_path)
    study_dir = tmp_path / "study"
    record = run_trial(planned.config, study_dir / "trials" / planned.trial_id)
    assert record.trial_id == planned.trial_id  # the id the study planned
    assert record.curves.values["val/spread"] == (0.25,)

    tracker = StudyTracker(None, study_dir, "same")  # the driver's path: MLflow run, then result rows
    tracker.start_study("same", {"name": "same"})
    TrialLog(study_dir, "same", tracker).record(planned, record, str(study_dir / "trials" / planned.trial_id))

    table = read_results(study_dir)
    rows = table.filter(pc.equal(table["metric"], "spread"))
    spread = rows.to_pylist(maps_as_pydicts="strict")  # the split's shift measures (a map) as a dict
    assert {(r["subset"], r["shots"], r["kind"]) for r in spread} == {
        ("val", 0, "zeroshot"),
        ("test", 0, "zeroshot"),
        ("test", 2, "zeroshot"),
        ("test", 2, "fewshot"),
    }
    assert all(r["value"] == 0.25 and r["trial_id"] == planned.trial_id for r in spread)
    curves = read_curves(study_dir)
    assert "val/spread" in curves["key"].to_pylist()

    [run] = tracker.client.search_runs([tracker.experiment_id], "tags.`oodml.role` = 'trial'")
    metrics = run.data.metrics
    assert metrics["val/spread"] == metrics["test/spread"] == metrics["fewshot/2/fewshot/spread"] == 0.25
    assert [m.value for m in tracker.client.get_metric_history(run.info.run_id, "curve/val/spread")] == [0.25]
    assert run.data.params["method_name"] == "multisimilarity"
    assert run.data.tags["oodml.trial_id"] == planned.trial_id

    curve = degradation_curves(table, metric="spread").to_pylist()  # what the dashboard draws from
    assert [(c["method"], c["mean"]) for c in curve] == [("multisimilarity", 0.25)]
    gain = fewshot_gain(table, metric="spread").to_pylist()
    assert [(g["shots"], g["gain"]) for g in gain] == [(2, 0.0)]
    assert asdict(record.identity) == {k: spread[0][k] for k in asdict(record.identity)}
