"""MLflow tracking of a study: one parent run per study, one nested child run per trial and stage.

Everything goes through ``MlflowClient`` with explicit run ids (no active-run globals), so the same
code serves the default local SQLite store and a remote tracking server. Runs are found again by tags,
never by in-memory maps, so a driver that crashed and resumes reuses its parent run and replaces (never
duplicates) a trial's child run. Construct the tracker in the driver before any trial starts: it
creates the store and the experiment, which concurrent writers cannot do safely on a fresh SQLite file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException

from study.results.layout import CHECKPOINT_FILE, MLFLOW_ARTIFACTS_DIR, default_tracking_uri
from study.results.schema import ORACLE, STAGES
from study.results.storage import ObjectPath, StudyPath, Where, local_copy, locate
from study.tracking.keys import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE,
    check_id,
    chunks,
    flatten,
    is_number,
    mlflow_key,
    param_value,
)

RUN_STATUS = {"completed": "FINISHED", "failed": "FAILED"}
_SERVER_SCHEMES = ("http", "https", "databricks")
if TYPE_CHECKING:
    from tasks.record import TrialRecord

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
SUPERSEDED_BY_TAG = "oodml.superseded_by"  # on a child run whose cell a later trial measured again


def artifact_location(tracking_uri: str, study_dir: StudyPath) -> str | None:
    """Database stores keep artifacts under ``<study_dir>/mlartifacts`` (``s3://.../mlartifacts`` for a
    study folder on S3, written by MLflow through boto3); a tracking server decides itself."""
    if urlparse(tracking_uri).scheme.startswith(_SERVER_SCHEMES):
        return None
    if isinstance(study_dir, ObjectPath):
        return str(study_dir / MLFLOW_ARTIFACTS_DIR)
    return (Path(study_dir).resolve() / MLFLOW_ARTIFACTS_DIR).as_uri()


class StudyTracker:
    """Logs a study to MLflow; picklable (the client is rebuilt on first use), so workers can log too."""

    def __init__(self, tracking_uri: str | None, study_dir: Where, experiment_name: str) -> None:
        self.study_dir = locate(study_dir).resolve()
        self.study_dir.mkdir(parents=True, exist_ok=True)
        if tracking_uri is None and isinstance(self.study_dir, ObjectPath):
            raise ValueError(f"{self.study_dir}: a study folder on an object store needs a tracking_uri")
        self.tracking_uri = tracking_uri or default_tracking_uri(self.study_dir)
        self.experiment_name = experiment_name
        self.parent_run_id: str | None = None
        self.resumes = 0  # how often the parent run was resumed: the step of its summary metrics
        self._client: MlflowClient | None = None
        self.experiment_id = self._ensure_experiment()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_client": None}

    def start_study(self, study_id: str, spec: dict) -> str:
        """Create the study's parent run, or reuse it on resume (found by tag ``oodml.study_id``)."""
        check_id("study id", study_id)
        found = self._search(
            f"tags.`oodml.study_id` = '{study_id}' and tags.`oodml.role` = 'study'",
            order_by=["attributes.start_time ASC"],
        )
        tags = _code_version() | {"oodml.study_id": study_id, "oodml.role": "study"}
        if found:
            run = found[0]
            self.parent_run_id = run.info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            self.resumes = int(run.data.tags.get("oodml.resumes", "0")) + 1
            tags["oodml.resumes"] = str(self.resumes)
            self.mark_orphans()
        else:
            run = self.client.create_run(self.experiment_id, run_name=study_id, tags=tags)
            self.parent_run_id = run.info.run_id
        params = {mlflow_key(k): param_value(v) for k, v in flatten(spec).items()}
        old = run.data.params
        changed = sorted(k for k in params if k in old and old[k] != params[k])
        if changed:  # params are immutable: the new spec is in spec.yaml, the changed keys in a tag
            tags["oodml.spec_changed"] = param_value(changed, MAX_TAG_VALUE)
        self._log(self.parent_run_id, params={k: v for k, v in params.items() if k not in old}, tags=tags)
        spec_text = yaml.safe_dump(json.loads(json.dumps(spec, default=str)), sort_keys=False)
        self.client.log_text(self.parent_run_id, spec_text, "spec.yaml")
        return self.parent_run_id

    def log_trial(
        self,
        record: TrialRecord,
        *,
        stage: str,
        checkpoint_dir: Where | None = None,
        tuned: dict | None = None,
    ) -> str:
        """Log one trial as a child run and return its id; idempotent per ``trial_id`` and ``stage``.

        Re-logging the same trial returns the existing run untouched if it holds exactly this record;
        otherwise a new run is logged and the earlier ones (e.g. left RUNNING by a crash, or a failed
        attempt) are tagged ``oodml.replaced_by`` and deleted, so one active run per trial remains.
        ``checkpoint_dir`` is the trial's working folder: its ``best.pt`` becomes the artifact
        ``checkpoint/best.pt`` (None: no checkpoint, e.g. for tuning trials).
        """
        parent = self._parent()
        trial_id = check_id("trial id", record.trial_id)
        status = record.status
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}: {stage!r}")
        stored = locate(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
        checkpoint = local_copy(stored) if stored is not None and stored.is_file() else stored
        if checkpoint is not None and not checkpoint.is_file():
            if status == "completed":
                raise FileNotFoundError(f"trial {trial_id}: no checkpoint at {checkpoint}")
            checkpoint = None
        digest = _digest(record, stage, tuned, checkpoint)
        existing = self._search(
            f"tags.`mlflow.parentRunId` = '{parent}' and tags.`oodml.trial_id` = '{trial_id}' "
            f"and tags.`oodml.stage` = '{stage}'"
        )
        same = [
            r
            for r in existing
            if r.data.tags.get("oodml.digest") == digest and r.info.status == RUN_STATUS[status]
        ]
        if same:
            run_id = same[0].info.run_id
        else:
            run_id = self._new_trial_run(record, stage, tuned)
            self._finish_trial_run(run_id, record, checkpoint, digest)
        for run in existing:
            if run.info.run_id != run_id:
                self._retire(run, replaced_by=run_id)
        return run_id

    def finish_study(
        self, summary_metrics: dict[str, float], artifacts: list[StudyPath], status: str = "FINISHED"
    ) -> None:
        """Log summary metrics (e.g. AUC per method) and files or folders to the parent run, and end it.

        Metrics are logged at ``step`` = the number of resumes, so a resumed study's history shows each run.
        """
        parent = self._parent()
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        missing = [str(p) for p in artifacts if not locate(p).exists()]
        if missing:
            raise FileNotFoundError(f"artifacts not found: {missing}")
        bad = {k: v for k, v in summary_metrics.items() if not is_number(v)}
        if bad:
            raise ValueError(f"summary metrics must be numbers: {bad}")
        now = _now()
        metrics = [Metric(mlflow_key(k), float(v), now, self.resumes) for k, v in summary_metrics.items()]
        self._log(parent, metrics=metrics)
        for path in map(local_copy, artifacts):  # objects of a study on S3: through the scratch space
            if path.is_dir():
                self.client.log_artifacts(parent, str(path), path.name)
            else:
                self.client.log_artifact(parent, str(path))
        self.client.set_terminated(parent, status)

    def mark_superseded(self, trial_ids: list[str], stage: str, by: str) -> list[str]:
        """Tag the child runs of ``trial_ids`` (their results moved to ``superseded/``: their cells were
        measured again under other settings) ``oodml.superseded_by`` = the trial that measured them anew;
        they are kept, as their row sets are. Returns the run ids."""
        parent, by = self._parent(), check_id("trial id", by)
        tagged = []
        for trial_id in trial_ids:
            runs = self._search(
                f"tags.`mlflow.parentRunId` = '{parent}' and tags.`oodml.trial_id` = "
                f"'{check_id('trial id', trial_id)}' and tags.`oodml.stage` = '{stage}'"
            )
            for run in runs:
                self.client.set_tag(run.info.run_id, SUPERSEDED_BY_TAG, by)
                tagged.append(run.info.run_id)
        return tagged

    def mark_orphans(self) -> list[str]:
        """Child runs still RUNNING (their driver died) become KILLED; returns their ids."""
        orphans = self._search(
            f"tags.`mlflow.parentRunId` = '{self._parent()}' and attributes.status = 'RUNNING'"
        )
        for run in orphans:
            self.client.set_tag(run.info.run_id, "oodml.orphaned", "true")
            self.client.set_terminated(run.info.run_id, "KILLED")
        return [run.info.run_id for run in orphans]

    def _ensure_experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)  # creates a missing store
        if found is None:
            try:
                return self.client.create_experiment(
                    self.experiment_name,
                    artifact_location=artifact_location(self.tracking_uri, self.study_dir),
                    tags=self._experiment_tags(),
                )
            except MlflowException as err:  # created meanwhile by another process
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self.client.get_experiment_by_name(self.experiment_name)
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        for key, value in self._experiment_tags().items():
            if key not in found.tags:  # a description edited in the UI stays
                self.client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id

    def _experiment_tags(self) -> dict[str, str]:
        """MLflow 3's UI opens an experiment by its kind: without one it shows the (empty) GenAI traces
        overview; ``custom_model_development`` opens on the runs table. The note is its description."""
        return {
            EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
            "mlflow.note.content": (
                f"oodml study **{self.experiment_name}** (Deep Metric Learning under out-of-distribution "
                "shift): one parent run per study (tag `oodml.role` = study) with a child run per trial, "
                "named `<method> <split> s<seed> (<stage>)`, `<method> <split> s<seed> oracle (<stage>)` for an "
                "oracle trial (trained on the test classes, docs/oracle.md); stage `tune` is the Optuna search, "
                f"`eval` the evaluation grid. Study folder: `{self.study_dir}` (results, dashboard/index.html)."
            ),
        }

    def _new_trial_run(self, record: TrialRecord, stage: str, tuned: dict | None) -> str:
        identity = record.identity
        name = " ".join(str(v) for v in (identity.method, identity.split_key) if v is not None)
        seed = f" s{identity.seed}" if identity.seed is not None else ""
        role = " oracle" if identity.trial_role == ORACLE else ""  # else it reads as its benchmark's
        content = run_content(record, tuned)
        tags = content.tags | {"mlflow.parentRunId": self._parent(), "oodml.stage": stage}
        run = self.client.create_run(
            self.experiment_id, run_name=f"{name or record.trial_id}{seed}{role} ({stage})", tags=tags
        )
        self._log(run.info.run_id, metrics=content.metrics, params=content.params)
        return run.info.run_id

    def _finish_trial_run(
        self, run_id: str, record: TrialRecord, checkpoint: Path | None, digest: str
    ) -> None:
        self.client.log_text(run_id, record.to_json(indent=1), "record.json")
        if record.error:
            self.client.log_text(run_id, record.error, "error.txt")
        if checkpoint is not None:
            self.client.log_artifact(run_id, str(checkpoint), "checkpoint")
        self.client.set_tag(run_id, "oodml.digest", digest)  # with the final status: the run is complete
        self.client.set_terminated(run_id, RUN_STATUS[record.status])

    def _retire(self, run: Run, replaced_by: str) -> None:
        self.client.set_tag(run.info.run_id, "oodml.replaced_by", replaced_by)
        if run.info.status == "RUNNING":
            self.client.set_terminated(run.info.run_id, "KILLED")
        self.client.delete_run(run.info.run_id)

    def _log(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """``log_batch`` within its limits: 1000 metrics, or 100 params and tags, per call."""
        for batch in chunks(list(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch)
        entries = [Param(k, v) for k, v in (params or {}).items()]
        entries += [RunTag(k, v) for k, v in (tags or {}).items()]
        for batch in chunks(entries, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(
                run_id,
                params=[e for e in batch if isinstance(e, Param)],
                tags=[e for e in batch if isinstance(e, RunTag)],
            )

    def _search(self, filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string, max_results=1000, order_by=order_by, page_token=token
            )
            runs += page
            token = page.token
            if not token:
                return runs

    def _parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("no study run: call start_study(study_id, spec) first")
        return self.parent_run_id


@dataclass(frozen=True)
class RunContent:
    params: dict[str, str]
    metrics: list[Metric]
    tags: dict[str, str]


def run_content(record: TrialRecord, tuned: dict | None) -> RunContent:
    """What a trial's MLflow run holds: the one conversion from a ``tasks.record.TrialRecord``.

    Params: the identity fields, ``hyperparameters.*``, ``config.*`` (the resolved trial config),
    ``versions.*`` and ``tuned_hyperparameters``. Metrics: every number of the record at step 0 (under
    its display name, ``TrialRecord.scalars``) and the per-epoch curves ``curve/<key>`` with
    ``step = epoch``. Tags: ``oodml.<identity field>``, the trial id, status, shots and error.
    """
    identity = dataclasses.asdict(record.identity)
    params: dict[str, object] = {k: v for k, v in identity.items() if v is not None and k != "trial_id"}
    for prefix, value in (
        ("hyperparameters", record.hyperparameters),
        ("config", record.config),
        ("versions", record.environment.versions),
    ):
        if value:
            params.update(flatten(dict(value), f"{prefix}."))
    if tuned is not None:
        params["tuned_hyperparameters"] = tuned
    now = _now()
    metrics = [Metric(mlflow_key(k), float(v), now, 0) for k, v in record.scalars().items() if is_number(v)]
    curves = record.curves
    for key, values in curves.values.items():
        metrics += [
            Metric(mlflow_key(f"curve/{key}"), float(v), now, int(e))
            for e, v in zip(curves.epochs, values, strict=True)
            if is_number(v)
        ]
    tags = {f"oodml.{k}": str(v) for k, v in identity.items() if v is not None}
    tags |= {
        "oodml.role": "trial",
        "oodml.status": record.status,
        "oodml.shots": ",".join(map(str, record.shots)),
    }
    if record.error:
        tags["oodml.error"] = param_value(record.error, MAX_TAG_VALUE)
    return RunContent({mlflow_key(k): param_value(v) for k, v in params.items()}, metrics, tags)


def _digest(record: TrialRecord, stage: str, tuned: dict | None, checkpoint: Path | None) -> str:
    """What a trial run holds: equal digests mean re-logging would change nothing."""
    stat = checkpoint.stat() if checkpoint is not None else None
    file = (str(checkpoint), stat.st_size, stat.st_mtime_ns) if stat is not None else None
    payload = json.dumps([record.to_dict(), stage, tuned, file], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _now() -> int:
    return int(time.time() * 1000)


def _code_version() -> dict[str, str]:
    """``oodml.version`` and, in a git checkout of oodml, its commit and whether it had local changes."""
    try:
        tags = {"oodml.version": metadata.version("oodml")}
    except metadata.PackageNotFoundError:
        tags = {"oodml.version": "unknown"}
    root = Path(__file__).resolve().parents[2]
    try:
        head = _git(root, "rev-parse", "--show-toplevel", "HEAD").split()
        if len(head) == 2 and Path(head[0]).resolve() == root:
            tags["mlflow.source.git.commit"] = head[1]
            tags["oodml.git_dirty"] = str(bool(_git(root, "status", "--porcelain", "--untracked-files=no")))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an installed package): the version tag stands alone
    return tags


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
