"""Running a study: splits, tuning stage, evaluation grid, tracking; resumable at any point.

``run_study`` checks the datasets and split files against the spec (``study.preflight``: a bad input is
refused before anything is written), holds the study folder's lock, saves the resolved spec (what
``oodml resume`` reads), builds missing split files, then runs on Ray Tune every trial without a result
row: stage 1 searches each method's hyperparameters (``study.tuning``), stage 2 trains every dataset x
method x split x seed with them, each training evaluated at every few-shot budget. Import this module after
``study.cluster.configure`` (``study.run`` does), which must run before ``ray`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from dashboards.report import build_report  # not `dashboards`: tests/dashboards shadows it under pytest
from study.cluster import LazyRay
from study.execution import Execution
from study.expand import EVAL, PlannedTrial, evaluation_trials
from study.lock import study_lock
from study.logs import third_party_log
from study.migration import migrate_trial_ids
from study.plugins import read as read_plugins
from study.preflight import check_inputs
from study.projection import write_split_projection
from study.recording import TrialLog
from study.results import auc_summary, completed_trial_ids, read_results
from study.results.compare import write_comparison
from study.results.files import write_text_atomic
from study.results.layout import SPEC_FILE, THIRD_PARTY_LOG
from study.results.storage import StudyPath, local_copy, scratch_path, upload
from study.spec import StudySpec
from study.splitfiles import split_file
from study.status import driver_status
from study.tracking import StudyTracker
from study.tuning import tune_all


@dataclass(frozen=True)
class StudyOutcome:
    study_dir: StudyPath
    tracking_uri: str
    parent_run_id: str
    planned: int  # evaluation trials of the study
    executed: int  # trials (both stages) this call handed to Ray
    failed: tuple[str, ...]  # trials (both stages) of this call that failed
    incomplete: tuple[str, ...]  # evaluation trials without a completed result

    @property
    def ok(self) -> bool:
        return not (self.failed or self.incomplete)


def save_spec(spec: StudySpec) -> StudyPath:
    return write_text_atomic(spec.study_dir / SPEC_FILE, spec.to_yaml())


def evaluate_all(trials: list[PlannedTrial], execution: Execution) -> None:
    """Stage 2: every evaluation trial without a completed result row."""
    done = completed_trial_ids(execution.study_dir, EVAL)
    pending = [t for t in trials if t.trial_id not in done]
    execution.echo(
        f"[eval] {len(trials)} trials, {len(trials) - len(pending)} recorded, {len(pending)} to run"
    )
    if pending:
        grid = tune.grid_search([t.to_dict() for t in pending])
        execution.fit("eval", total=len(pending), param_space={"trial": grid})


def run_study(spec: StudySpec, *, address: str | None, echo: Callable[[str], None]) -> StudyOutcome:
    study_dir = spec.study_dir
    inputs = check_inputs(spec, echo)  # data and split files against the spec, before anything is written
    with study_lock(study_dir), _log_file(study_dir) as log, third_party_log(log) as capture_logs:
        with driver_status(study_dir):
            migrate_trial_ids(study_dir, echo)  # folders written with older trial ids (a no-op after)
            save_spec(spec)
            split_paths = [split_file(d, spec.shots, study_dir) for d in spec.datasets]  # built on first use
            for d, path in zip(spec.datasets, split_paths, strict=True):
                write_split_projection(study_dir, d.name, path)  # the dashboard's view of the splits
            plans = inputs.plans(split_paths)  # given split files as the checks read them; built ones now
            tracker = StudyTracker(spec.storage.tracking_uri, study_dir, spec.storage.experiment or spec.name)
            capture_logs()  # MLflow set up alembic's console handler while creating the store
            parent = tracker.start_study(spec.name, spec.model_dump(mode="json"))
            log = TrialLog(study_dir, spec.name, tracker, echo)
            echo(f"study {spec.name}: {study_dir}")
            with LazyRay(
                address,
                dashboard=spec.ray.dashboard,
                num_cpus=spec.ray.num_cpus,
                echo=echo,
                study_dir=study_dir,
            ) as ray:
                resources = {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}
                execution = Execution(
                    study_dir,
                    resources,
                    spec.concurrency,
                    spec.max_failures,
                    spec.tuning.metric,
                    log,
                    echo,
                    ray,
                    plugins=read_plugins(spec.plugins),  # file plugins' sources travel with the trials
                )
                trials = evaluation_trials(spec, plans, tune_all(spec, plans, execution))
                evaluate_all(trials, execution)
            done = completed_trial_ids(study_dir, EVAL)
            incomplete = tuple(t.label for t in trials if t.trial_id not in done)
            status = "FAILED" if incomplete or log.failed else "FINISHED"
        # after the driver's state is final, so the page built here says the study finished or stopped
        report = build_report(study_dir)  # from the results dataset on disk, like `oodml report`
        artifacts = [study_dir / SPEC_FILE, report.parent, write_comparison(study_dir)]
        tracker.finish_study(summary_metrics(study_dir), artifacts, status)
    return StudyOutcome(
        study_dir=study_dir,
        tracking_uri=tracker.tracking_uri,
        parent_run_id=parent,
        planned=len(trials),
        executed=len(log.completed) + len(log.failed),
        failed=tuple(log.failed),
        incomplete=incomplete,
    )


@contextmanager
def _log_file(study_dir: StudyPath) -> Iterator[Path]:
    """The third-party log's local file: in the study folder, or, for a study on an object store, in the
    scratch space (continuing the store's copy), uploaded when the run ends."""
    remote = study_dir / THIRD_PARTY_LOG
    if isinstance(remote, Path):
        yield remote
        return
    local = local_copy(remote) if remote.exists() else scratch_path(remote)
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield local
    finally:
        if local.exists():
            upload(local, remote)


def summary_metrics(study_dir: StudyPath) -> dict[str, float]:
    """Normalized AUC of test Recall@1 per dataset and method (the parent run's headline numbers)."""
    auc = auc_summary(read_results(study_dir)).to_pylist()
    return {f"auc/{r['dataset']}/{r['method']}/recall@1": r["auc"] for r in auc}
