"""The Ray Tune function trainable: one planned trial, checkpointed after every epoch.

Runs on a Ray worker, whose working directory is not the study folder, so every path is absolute.
The trial's working folder is ``<study>/trials/<trial id>``; ``run_trial`` resumes from it, and a
retried trial first restores it from its latest Tune checkpoint (the retry may run on another node).
The final report carries the whole trial record (``TrialRecord.to_json``) and the selected weights as its
checkpoint; the driver turns them into result rows and an MLflow run.
"""

from __future__ import annotations

import math
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from study.expand import PlannedTrial, with_hyperparameters
from study.plugins import PluginError, PluginSource
from study.plugins import load as load_plugins
from study.results.layout import trial_dir

if TYPE_CHECKING:
    from tasks.record import TrialRecord

OBJECTIVE = "objective"  # best validation value so far of the tuning metric (what the search maximises)
RECORD = "trial_record"
ERROR = "trial_error"
SEARCH = "search"  # in a tuning trial's config: which search (dataset/method) suggested it
WHERE = ("ray_node_id", "hostname")  # in every report: the Ray node and host the trial runs on
# Raised the same way on every attempt (bad values, a diverging loss): recorded as failed, not retried.
DETERMINISTIC = (ValueError, FloatingPointError)


def trial_workdir(study_dir: str | Path, trial_id: str) -> Path:
    return trial_dir(study_dir, trial_id)


def planned_trial(config: dict, bases: dict[str, dict] | None) -> PlannedTrial:
    """The trial a Tune config stands for: a grid entry, or searched values on their search's base."""
    if bases is None:
        return PlannedTrial.from_dict(config["trial"])
    values = {k: v for k, v in config.items() if k != SEARCH}
    return with_hyperparameters(PlannedTrial.from_dict(bases[config[SEARCH]]), values)


def _numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_planned(
    config: dict,
    *,
    study_dir: str,
    metric: str,
    bases: dict[str, dict] | None = None,
    plugins: tuple[PluginSource, ...] = (),
) -> None:
    """Tune entry point (bind ``study_dir``, ``metric``, the study's ``plugins`` and, for tuning, ``bases``
    with tune.with_parameters). The plugins load first: the trial may name their components."""
    import ray
    from ray import tune

    from tasks.trial import run_trial

    here = dict(zip(WHERE, (ray.get_runtime_context().get_node_id(), socket.gethostname()), strict=True))

    def send(metrics: dict, checkpoint=None) -> None:  # tune.report, saying where the trial runs
        tune.report({**metrics, **here}, checkpoint=checkpoint)

    try:
        load_plugins(plugins)
    except PluginError as err:  # the driver loaded them: this node lacks what they import
        send({OBJECTIVE: math.nan, ERROR: f"{type(err).__name__} on this worker: {err}"})
        return
    trial = planned_trial(config, bases)
    workdir = trial_workdir(study_dir, trial.trial_id)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            shutil.copytree(saved, workdir, dirs_exist_ok=True)
    best = -math.inf

    def report(row: dict, directory: Path) -> None:
        nonlocal best
        best = max(best, row.get(metric, -math.inf))
        send({**_numbers(row), OBJECTIVE: best}, checkpoint=tune.Checkpoint.from_directory(directory))

    try:
        record = run_trial(trial.config, workdir, on_epoch=report)
    except DETERMINISTIC as err:
        send({OBJECTIVE: math.nan, ERROR: f"{type(err).__name__}: {err}"})
        return
    if record.trial_id != trial.trial_id:  # one identity function: only a changed split file gets here
        send({OBJECTIVE: math.nan, ERROR: _changed_split(trial, record.trial_id)})
        return
    curve = record.curves.values.get(metric) or [_final(record, metric)]  # untrained: no epochs
    final = {OBJECTIVE: max(curve), RECORD: record.to_json()}
    if record.checkpoint is None:  # untrained (frozen baseline): its weights are the published ones
        send(final)
        return
    with tempfile.TemporaryDirectory() as selected:
        shutil.copy2(record.checkpoint, selected)
        send(final, checkpoint=tune.Checkpoint.from_directory(selected))


def _final(record: TrialRecord, metric: str) -> float:
    """The recorded value of a tuning metric (a display name such as ``val/recall@1``), else NaN."""
    found = [m.value for m in record.measurements if m.name == metric]
    return found[0] if found else math.nan


def _changed_split(trial: PlannedTrial, trial_id: str) -> str:
    return (
        f"ValueError: trial {trial.label} was planned as {trial.trial_id} but ran as {trial_id}: its split "
        f"file {trial.config.data.split_file} changed after the study read it; rerun the study"
    )
