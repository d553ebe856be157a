"""MLflow on a real database: an ``mlflow server`` backed by PostgreSQL on 127.0.0.1, its artifacts on the
S3 server (tests/pgserver.py, tests/s3server.py), as docs/cluster.md tells a cluster's users to run it.

Two light studies log to that server at the same time, each from its own ``oodml run`` process (and its
own local Ray). Counted afterwards against what each trial recorded (its ``record.json`` artifact, turned
into the run's expected content by the tracker's one conversion): no run and no metric is lost, and the
checkpoints reached the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from mlflow import MlflowClient

from study.results import read_results
from study.results.storage import locate
from study.tracking.tracker import run_content
from tasks.record import TrialRecord
from tests.s3server import BUCKET

pytestmark = pytest.mark.slow


def _spec(tiny_spec, name: str, root: Path, url: str) -> dict:
    spec = tiny_spec(root) | {"name": name, "methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    spec["storage"] |= {"tracking_uri": url}
    return spec


def _logged(client: MlflowClient, run) -> tuple[set[str], dict[str, int]]:
    """The metric keys a child run must hold (from its record.json) and the steps each curve must have."""
    local = client.download_artifacts(run.info.run_id, "record.json")
    record = TrialRecord.from_json(Path(local).read_text())
    content = run_content(record, None)
    steps: dict[str, int] = {}
    for metric in content.metrics:
        steps[metric.key] = steps.get(metric.key, 0) + 1
    return set(steps), steps


def test_two_studies_log_to_mlflow_on_postgres_at_once_and_lose_nothing(
    mlflow_on_postgres, s3_server, tmp_path, tiny_spec
):
    url = mlflow_on_postgres.url
    runs = []
    for name in ("pg-a", "pg-b"):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(_spec(tiny_spec, name, tmp_path / name, url)))
        log = (tmp_path / f"{name}.log").open("w")
        command = [sys.executable, "-m", "study.cli", "run", str(config)]
        runs.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)))
    for name, run in runs:
        assert run.wait(600) == 0, (tmp_path / f"{name}.log").read_text()[-4000:]

    client = MlflowClient(url)
    for name, _ in runs:
        table = read_results(tmp_path / name)
        completed = table.filter(pc.equal(table["status"], "completed"))
        run_ids = set(completed["mlflow_run_id"].to_pylist())
        experiment = client.get_experiment_by_name(name)
        logged = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in logged if r.data.tags.get("oodml.role") == "study"]
        children = [r for r in logged if "oodml.trial_id" in r.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(run_ids) == 2 and {r.info.run_id for r in children} == run_ids  # no run lost or extra
        for child in children:
            expected, steps = _logged(client, child)
            assert set(child.data.metrics) == expected, expected ^ set(child.data.metrics)
            curves = [k for k, n in steps.items() if n > 1]
            for key in curves:  # every epoch of every curve
                assert len(client.get_metric_history(child.info.run_id, key)) == steps[key], key
            artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")}
            assert artifacts == {"checkpoint/best.pt"}
        assert not (tmp_path / name / "mlflow.db").exists()  # nothing tracked in the study folder
    artifacts = locate(f"s3://{BUCKET}/mlartifacts")  # <experiment id>/<run id>/artifacts/...
    experiments = [client.get_experiment_by_name(name).experiment_id for name, _ in runs]
    stored = [p for e in experiments for p in (artifacts / e).glob("*/artifacts/checkpoint/best.pt")]
    assert len(stored) == 4, "the checkpoints did not all reach the S3 store"
