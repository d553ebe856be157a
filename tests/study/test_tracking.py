"""Real MLflow on a local SQLite store (no mocks).

A fresh store takes MLflow's ~70 schema migrations (15 s on a busy 2-core box), so one is created per
module through ``StudyTracker`` and every test starts from a copy of it, as a driver would leave it.
"""

import argparse
import dataclasses
import multiprocessing
import shutil
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.utils.validation import _validate_metric_name

from study.tracking import StudyTracker, add_ui_arguments, default_tracking_uri, mlflow_key, ui_command
from study.tracking.tracker import artifact_location
from study.tracking.ui import reach, ui
from tasks.record import Curves, Environment, Measurement, Timings, TrialIdentity, TrialRecord
from tests.pgserver import MlflowServer

SPEC = {"name": "demo", "methods": [{"name": "margin"}], "training": {"epochs": 3, "lr": 0.001}}


def make_record(trial_id="t0", method="margin", seed=0, r1=0.6, epochs=3, config_keys=2) -> TrialRecord:
    fewshot = {"episodes": 10, "left_out_classes": 0, "support": "images"}
    return TrialRecord(
        identity=TrialIdentity(
            trial_id=trial_id,
            dataset="glyphs",
            split_id=2,
            split_key="R22",
            split_progression="removal",
            fid=41.5,
            num_train_classes=100,
            num_test_classes=80,
            method=method,
            backbone="glyphnet",
            embedding_dim=64,
            seed=seed,
            epochs=epochs,
        ),
        hyperparameters={"margin": 0.2, "beta": 1.2},
        config={"seed": seed, "data": {f"option{i}": i for i in range(config_keys)}},
        measurements=(
            Measurement("val", "recall@1", 0.1 * (epochs - 1)),
            Measurement("test", "recall@1", r1),
            Measurement("test", "map@r", 0.3),
            Measurement("test", "recall@1", r1 + 0.1, 2, "fewshot", 0.02, **fewshot),
            Measurement("test", "recall@1", r1, 2, "zeroshot", 0.02, **fewshot),
        ),
        curves=Curves(
            tuple(range(epochs)),
            {
                "train/loss": tuple(1.0 / (e + 1) for e in range(epochs)),
                "val/recall@1": tuple(0.1 * e for e in range(epochs)),
            },
        ),
        selected_epoch=epochs - 1,
        timings=Timings(train_s=9.0),
        environment=Environment({"torch": "2.14.1"}),
    )


@pytest.fixture(scope="module")
def template_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    StudyTracker(None, folder, "template")
    return folder / "mlflow.db"


@pytest.fixture
def study_dir(tmp_path, template_store) -> Path:
    shutil.copy(template_store, tmp_path / "mlflow.db")
    return tmp_path


def checkpoint_dir(path: Path, content: bytes = b"weights") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "best.pt").write_bytes(content)
    return path


def children(tracker: StudyTracker, view=ViewType.ACTIVE_ONLY) -> list:
    return tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'",
        run_view_type=view,
    )


def test_new_store_default_locations(template_store):
    assert template_store.is_file()
    tracker = StudyTracker(None, template_store.parent, "template")  # reopening finds the experiment
    assert (
        tracker.tracking_uri == default_tracking_uri(template_store.parent) == f"sqlite:///{template_store}"
    )
    assert tracker.tracking_uri.startswith("sqlite:////")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (template_store.parent / "mlartifacts").as_uri()


def test_the_experiment_opens_on_its_runs_in_the_mlflow_3_ui(study_dir):
    """MLflow 3 opens an experiment without ``mlflow.experimentKind`` on the GenAI traces overview."""
    tracker = StudyTracker(None, study_dir, "demo")
    tags = tracker.client.get_experiment(tracker.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert "demo" in tags["mlflow.note.content"] and str(study_dir) in tags["mlflow.note.content"]
    older = tracker.client.create_experiment("older")  # made before oodml tagged experiments
    tracker.client.set_experiment_tag(older, "mlflow.note.content", "the user's own description")
    StudyTracker(None, study_dir, "older")
    tags = tracker.client.get_experiment(older).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags["mlflow.note.content"] == "the user's own description"


def test_parent_and_child_runs(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    parent = tracker.start_study("demo-1", SPEC)
    run_id = tracker.log_trial(make_record(), stage="eval", checkpoint_dir=checkpoint_dir(study_dir / "t0"))
    client = tracker.client

    study = client.get_run(parent)
    assert study.data.tags["oodml.study_id"] == "demo-1" and study.data.params["training.epochs"] == "3"
    assert study.data.params["methods"] == '[{"name": "margin"}]'
    assert "oodml.version" in study.data.tags and len(study.data.tags["mlflow.source.git.commit"]) == 40
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent)]

    [child] = children(tracker)
    assert child.info.run_id == run_id and child.info.status == "FINISHED"
    tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
    assert tags["mlflow.parentRunId"] == parent and tags["mlflow.runName"] == "margin R22 s0 (eval)"
    expected = {"dataset": "glyphs", "split_key": "R22", "fid": "41.5", "method": "margin", "seed": "0"}
    assert {k: tags[f"oodml.{k}"] for k in expected} == expected
    assert (tags["oodml.stage"], tags["oodml.shots"], tags["oodml.trial_id"]) == ("eval", "0,2", "t0")
    assert params["method"] == "margin" and params["hyperparameters.margin"] == "0.2"
    assert params["config.data.option1"] == "1" and params["versions.torch"] == "2.14.1"
    assert metrics["test/recall_at_1"] == 0.6 and metrics["fewshot/2/fewshot/recall_at_1/ci95"] == 0.02
    assert metrics["fid"] == 41.5 and metrics["selected_epoch"] == 2 and "seed" not in metrics
    base = make_record("t1")  # an oracle: its benchmark sibling's name would hide which run is which
    oracle = dataclasses.replace(base, identity=dataclasses.replace(base.identity, trial_role="oracle"))
    oracle_run = client.get_run(tracker.log_trial(oracle, stage="eval"))
    assert oracle_run.data.tags["mlflow.runName"] == "margin R22 s0 oracle (eval)"
    history = client.get_metric_history(run_id, "curve/val/recall_at_1")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 0.1), (2, 0.2)]

    artifacts = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "checkpoint")
    }
    assert {"record.json", "checkpoint/best.pt"} <= artifacts
    local = client.download_artifacts(run_id, "checkpoint/best.pt", str(study_dir / "download"))
    assert Path(local).read_bytes() == b"weights"
    assert child.info.artifact_uri.startswith((study_dir / "mlartifacts").as_uri())


def test_batches_respect_mlflow_limits(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    tracker.start_study("big", SPEC | {"many": {f"k{i}": i for i in range(150)}})
    # 2 curves x 600 epochs = 1200 points (> 1000 per batch), ~170 params (> 100 per batch)
    run_id = tracker.log_trial(make_record(epochs=600, config_keys=150), stage="tune", checkpoint_dir=None)
    run = tracker.client.get_run(run_id)
    assert len(run.data.params) > 150 and len(tracker.client.get_run(tracker.parent_run_id).data.params) > 150
    assert len(tracker.client.get_metric_history(run_id, "curve/train/loss")) == 600


def test_relogging_never_duplicates_a_trial(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    tracker.start_study("demo-1", SPEC)
    ckpt = checkpoint_dir(study_dir / "t0")
    first = tracker.log_trial(make_record(), stage="eval", checkpoint_dir=ckpt)
    assert tracker.log_trial(make_record(), stage="eval", checkpoint_dir=ckpt) == first
    assert len(children(tracker)) == 1

    second = tracker.log_trial(make_record(r1=0.7), stage="eval", checkpoint_dir=ckpt)
    assert second != first
    [active] = children(tracker)
    assert active.info.run_id == second and active.data.metrics["test/recall_at_1"] == 0.7
    assert len(tracker.client.get_metric_history(second, "curve/train/loss")) == 3
    [old] = children(tracker, ViewType.DELETED_ONLY)
    assert old.info.run_id == first and old.data.tags["oodml.replaced_by"] == second

    tracker.log_trial(make_record(), stage="tune", checkpoint_dir=None)
    assert len(children(tracker)) == 2  # the same trial id in another stage is another run


def test_a_superseded_trial_keeps_its_run_tagged_with_its_successor(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    tracker.start_study("demo-1", SPEC)
    old = tracker.log_trial(
        make_record("t-old"), stage="eval", checkpoint_dir=checkpoint_dir(study_dir / "a")
    )
    new = tracker.log_trial(
        make_record("t-new"), stage="eval", checkpoint_dir=checkpoint_dir(study_dir / "b")
    )
    tracker.log_trial(make_record("t-old"), stage="tune")

    assert tracker.mark_superseded(["t-old"], "eval", by="t-new") == [old]
    runs = {run.info.run_id: run for run in children(tracker)}
    assert len(runs) == 3  # kept, not deleted
    assert runs[old].data.tags["oodml.superseded_by"] == "t-new"
    assert [r for r in runs if "oodml.superseded_by" in runs[r].data.tags] == [old]  # not the tune run
    assert new in runs


def test_failed_trial_then_retry(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    tracker.start_study("demo-1", SPEC)
    partial = TrialIdentity("t9", method="margin", dataset="glyphs", split_key="0", seed=1)
    error = "Traceback (most recent call last):\nNonFiniteLossError: non-finite loss (nan) at epoch 2"
    failed = tracker.log_trial(
        TrialRecord.failed(partial, error), stage="eval", checkpoint_dir=study_dir / "missing"
    )
    run = tracker.client.get_run(failed)
    assert run.info.status == "FAILED" and run.data.tags["oodml.error"] == error
    assert run.data.tags["oodml.status"] == "failed"
    local = tracker.client.download_artifacts(failed, "error.txt", str(study_dir / "dl"))
    assert Path(local).read_text() == error

    done = tracker.log_trial(make_record("t9"), stage="eval", checkpoint_dir=checkpoint_dir(study_dir / "t9"))
    assert [r.info.run_id for r in children(tracker)] == [done]
    assert tracker.client.get_run(done).info.status == "FINISHED"


def test_resume_reuses_the_parent_and_kills_orphans(study_dir):
    first = StudyTracker(None, study_dir, "demo")
    parent = first.start_study("demo-1", SPEC)
    first.log_trial(make_record("done"), stage="eval", checkpoint_dir=None)
    # the driver dies while logging trial t1: its child run stays RUNNING
    crashed = first.client.create_run(
        first.experiment_id,
        tags={"mlflow.parentRunId": parent, "oodml.trial_id": "t1", "oodml.stage": "eval"},
    )

    driver = StudyTracker(None, study_dir, "demo")  # a new driver process resumes
    assert driver.experiment_id == first.experiment_id
    assert driver.start_study("demo-1", SPEC | {"training": {"epochs": 5, "lr": 0.001}}) == parent
    study = driver.client.get_run(parent)
    assert study.info.status == "RUNNING" and study.data.tags["oodml.resumes"] == "1"
    assert study.data.tags["oodml.spec_changed"] == '["training.epochs"]'
    assert driver.client.get_run(crashed.info.run_id).info.status == "KILLED"
    assert driver.mark_orphans() == []
    runs = driver.client.search_runs([driver.experiment_id], "tags.`oodml.role` = 'study'")
    assert [r.info.run_id for r in runs] == [parent]

    retried = driver.log_trial(make_record("t1"), stage="eval", checkpoint_dir=None)
    assert sorted(r.data.tags["oodml.trial_id"] for r in children(driver)) == ["done", "t1"]
    assert retried != crashed.info.run_id


def test_finish_study_logs_summary_and_artifacts(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    parent = tracker.start_study("demo-1", SPEC)
    (study_dir / "dashboard.html").write_text("<html></html>")
    figures = study_dir / "figures"
    figures.mkdir()
    (figures / "curve.png").write_bytes(b"png")
    tracker.finish_study({"auc/recall@1/margin": 0.61}, [study_dir / "dashboard.html", figures])
    run = tracker.client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.metrics["auc/recall_at_1/margin"] == 0.61
    paths = {a.path for a in tracker.client.list_artifacts(parent)}
    assert {"dashboard.html", "figures", "spec.yaml"} <= paths
    with pytest.raises(FileNotFoundError):
        tracker.finish_study({}, [study_dir / "nope.html"])

    resumed = StudyTracker(None, study_dir, "demo")
    assert resumed.start_study("demo-1", SPEC) == parent
    resumed.finish_study({"auc/recall@1/margin": 0.65}, [])
    history = resumed.client.get_metric_history(parent, "auc/recall_at_1/margin")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.61), (1, 0.65)]


def test_misuse_is_refused(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    with pytest.raises(RuntimeError, match="start_study"):
        tracker.log_trial(make_record(), stage="eval")
    tracker.start_study("demo-1", SPEC)
    with pytest.raises(ValueError, match="trial id"):
        tracker.log_trial(make_record("x' or '1'='1"), stage="eval")
    with pytest.raises(ValueError, match="stage must be"):
        tracker.log_trial(make_record(), stage="train")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tracker.log_trial(make_record(), stage="eval", checkpoint_dir=study_dir / "none")
    assert children(tracker) == []


def _log_trials(tracker: StudyTracker, worker: int, folder: str) -> list[str]:
    ids = []
    for i in range(2):
        record = make_record(f"w{worker}-{i}", seed=i, r1=0.5 + worker / 10)
        ckpt = checkpoint_dir(Path(folder) / record.trial_id, bytes([worker, i]))
        ids.append(tracker.log_trial(record, stage="eval", checkpoint_dir=ckpt))
    return ids


@pytest.mark.slow  # 4 spawned interpreters each import MLflow (~5 s of CPU apiece)
def test_concurrent_writers_after_the_driver_created_the_store(study_dir):
    tracker = StudyTracker(None, study_dir, "demo")
    tracker.start_study("demo-1", SPEC)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_log_trials, [(tracker, w, str(study_dir / "ckpt")) for w in range(4)])
    runs = children(tracker)
    assert sorted(r.info.run_id for r in runs) == sorted(i for ids in results for i in ids)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        worker = int(run.data.tags["oodml.trial_id"][1])
        assert run.data.metrics["test/recall_at_1"] == pytest.approx(0.5 + worker / 10)
        assert len(tracker.client.get_metric_history(run.info.run_id, "curve/val/recall_at_1")) == 3
        assert "best.pt" in {
            Path(a.path).name for a in tracker.client.list_artifacts(run.info.run_id, "checkpoint")
        }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("test/recall@1", "test/recall_at_1"),
        ("fewshot/5/fewshot/map@r/ci95", "fewshot/5/fewshot/map_at_r/ci95"),
        ("a//b/./c", "a/b/c"),
        ("../../x", "x"),
        ("odd key: ü!", "odd key_ __"),
    ],
)
def test_mlflow_keys_are_valid(key, expected):
    assert mlflow_key(key) == expected
    _validate_metric_name(mlflow_key(key))


def test_ui_binds_loopback_by_default(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_ui_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--port", "5123"])
    command = ui_command(args.study_dir, host=args.host, port=args.port)
    assert (
        command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "5123"
    )
    assert command[command.index("--backend-store-uri") + 1] == default_tracking_uri(tmp_path)
    assert reach("127.0.0.1") == "this machine only" and "every network" in reach("0.0.0.0")
    with pytest.raises(FileNotFoundError, match="no MLflow store"):
        ui(args)


def test_remote_uri_leaves_artifacts_to_the_server(tmp_path):
    assert artifact_location("http://127.0.0.1:5000", tmp_path) is None
    assert artifact_location("postgresql://db/mlflow", tmp_path) == (tmp_path / "mlartifacts").as_uri()


@pytest.fixture
def tracking_server(tmp_path, template_store):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend copied from the template, proxied artifacts)."""
    shutil.copy(template_store, tmp_path / "server.db")
    artifacts = tmp_path / "server-artifacts"
    server = MlflowServer(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", str(artifacts), workers=1)
    server.start(90)
    try:
        yield server.url, artifacts
    finally:
        server.stop()


def test_remote_tracking_server_gets_runs_and_checkpoints(tracking_server, tmp_path):
    url, server_artifacts = tracking_server
    study_dir = tmp_path / "study"
    tracker = StudyTracker(url, study_dir, "remote-demo")
    parent = tracker.start_study("remote-1", SPEC)
    run_id = tracker.log_trial(make_record(), stage="eval", checkpoint_dir=checkpoint_dir(study_dir / "t0"))
    [child] = children(tracker)
    assert child.info.run_id == run_id and child.data.tags["mlflow.parentRunId"] == parent
    assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # the server stores them
    local = tracker.client.download_artifacts(run_id, "checkpoint/best.pt", str(tmp_path / "download"))
    assert Path(local).read_bytes() == b"weights"
    assert list(server_artifacts.rglob("best.pt")) and not (study_dir / "mlartifacts").exists()
    assert not (study_dir / "mlflow.db").exists()  # nothing tracked locally


def test_ui_prints_the_studys_runs_page(study_dir, capsys, monkeypatch):
    """MLflow 3's UI opens on its GenAI overview: `oodml ui` names the page of the study's runs."""
    import study.tracking.ui as ui_module

    tracker = StudyTracker(None, study_dir, "demo")
    (study_dir / "study.yaml").write_text("name: demo\nstorage: {experiment: null}\n")
    page = f"http://127.0.0.1:5123/#/experiments/{tracker.experiment_id}/runs"
    from study.tracking.ui import runs_page

    assert runs_page(study_dir, "0.0.0.0", 5123) == page  # a browser reaches 0.0.0.0 on loopback
    started = []
    monkeypatch.setattr(
        ui_module, "run_process_group", lambda command, on_start=None: started.append(on_start) or 0
    )
    parser = argparse.ArgumentParser()
    add_ui_arguments(parser)
    assert ui(parser.parse_args([str(study_dir), "--port", "5123"])) == 0
    assert f"the study's runs: {page}" in capsys.readouterr().out and started == [None]
    opened = []
    monkeypatch.setattr(ui_module, "_open_when_up", opened.append)
    ui(parser.parse_args([str(study_dir), "--port", "5123", "--open"]))
    started[-1]()
    assert opened == [page]
    (study_dir / "study.yaml").write_text("name: other\n")  # no such experiment in the store
    assert runs_page(study_dir, "127.0.0.1", 5123) is None
