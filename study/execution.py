"""What every Ray Tune run of a study shares: resources, retries, checkpoints, storage, callbacks.

Each run is a fresh Tune experiment (``<study>/ray/<name>-<time>``) over the trials still to do; resume
works from the study's own state (result rows, trial folders, the Optuna journal), not from
``Tuner.restore``, which would rebuild callbacks and searcher from pickles of an earlier run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ray import tune

from study.cluster import LazyRay
from study.expand import PlannedTrial
from study.plugins import PluginSource
from study.recording import Progress, Recorder, TrialLog
from study.results.layout import RAY_DIR
from study.status import trial_ended, trial_started
from study.trainable import OBJECTIVE, planned_trial, run_planned


class TrialStatus(tune.Callback):
    """Keeps the study's trial status table (``study.status``); place it after the ``Recorder``, whose
    result row it reads when a trial ends. ``resolve`` maps a Tune config to its planned trial."""

    def __init__(self, study_dir: Path, resolve: Callable[[dict], PlannedTrial]) -> None:
        self.study_dir, self.resolve = study_dir, resolve

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        planned = self.resolve(trial.config)
        trial_started(self.study_dir, planned.trial_id, planned.stage, planned.label)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        planned = self.resolve(trial.config)
        trial_ended(self.study_dir, planned.trial_id, planned.stage)

    on_trial_error = on_trial_complete


def _trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


@dataclass(frozen=True)
class Execution:
    study_dir: Path
    resources: dict[str, float]
    concurrency: int | None
    max_failures: int
    metric: str
    log: TrialLog
    echo: Callable[[str], None]
    ray: LazyRay
    plugins: tuple[PluginSource, ...] = ()  # loaded on every worker before its trial (study.plugins)

    def fit(
        self,
        name: str,
        *,
        total: int,
        param_space: dict | None = None,
        search_alg=None,
        num_samples: int = 1,
        bases: dict[str, dict] | None = None,
    ) -> None:
        """Run ``total`` trials: a grid (``param_space``), or ``num_samples`` from ``search_alg`` whose
        suggestions complete the planned trials in ``bases``."""
        self.ray.ensure()
        trainable = tune.with_parameters(
            run_planned, study_dir=str(self.study_dir), metric=self.metric, bases=bases, plugins=self.plugins
        )
        tuner = tune.Tuner(
            tune.with_resources(trainable, self.resources),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode="max",
                search_alg=search_alg,
                num_samples=num_samples,
                max_concurrent_trials=self.concurrency,
                reuse_actors=True,  # a trial's worker serves the next: no process start + imports per trial
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(self.study_dir / RAY_DIR),
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[
                    Recorder(partial(planned_trial, bases=bases), self.log),
                    Progress(name, total, self.log, self.echo),
                    TrialStatus(self.study_dir, partial(planned_trial, bases=bases)),  # after the Recorder
                ],
                verbose=0,
            ),
        )
        tuner.fit()
