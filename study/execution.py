"""What every Ray Tune run of a study shares: resources, retries, checkpoints, storage, callbacks.

Each run is a fresh Tune experiment (``<study>/ray/<name>-<time>``) over the trials still to do; resume
works from the study's own state (result rows, trial folders, the Optuna journal), not from
``Tuner.restore``, which would rebuild callbacks and searcher from pickles of an earlier run.

A trial whose Ray node goes away is retried on a node that is left, from its last checkpoint, and that
loss does not use up its ``max_failures`` (``NodeLosses``, docs/cluster.md section 5).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ray import tune
from ray.core.generated.common_pb2 import ActorDeathCause, ActorDiedErrorContext
from ray.exceptions import ActorDiedError, ActorUnavailableError, NodeDiedError, RayActorError

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


# Node losses per trial retried without counting against max_failures; a trial that loses more nodes
# than this has each further loss counted like a failure of its own, so it cannot loop forever.
NODE_LOSS_RETRIES = 3


def lost_with_node(error: BaseException, death: ActorDeathCause | None = None) -> bool:
    """Whether a failed attempt died with its node rather than of its own doing: a ``NodeDiedError``, an
    actor unreachable (``ActorUnavailableError``) or preempted by a drain, or an ``ActorDiedError`` whose
    death cause, as the GCS records it (``death``), is ``NODE_DIED``. Every other error (an exception in
    the trial, its worker process killed or crashed) is the trial's own."""
    if isinstance(error, NodeDiedError | ActorUnavailableError):
        return True
    if isinstance(error, RayActorError) and error.preempted:
        return True
    return (
        isinstance(error, ActorDiedError)
        and death is not None
        and death.HasField("actor_died_error_context")
        and death.actor_died_error_context.reason == ActorDiedErrorContext.NODE_DIED
    )


def death_cause(error: BaseException) -> ActorDeathCause | None:
    """The GCS's record of why the actor of ``error`` died (None for other errors, or with no record).
    ``ActorDiedError`` keeps only the text of its cause, so the cause is read from the actor table
    (``ray._private.state.actors``: the dashboard-free reader ``ray.util.state`` lacks)."""
    if not isinstance(error, ActorDiedError) or not error.actor_id:
        return None
    from ray._private import state

    return state.actors(actor_id=error.actor_id).get("DeathCause")


def last_error(trial) -> BaseException | None:
    """The exception of a Tune trial's latest failure: ``Trial.handle_error`` pickles every Ray error to
    ``error.pkl`` and appends its text to ``error.txt``; a pickle that is not that latest entry (the
    latest failure was no Ray error) is not it."""
    pickled, text = trial.pickled_error_file, trial.error_file
    if not pickled or not text or not Path(pickled).is_file() or not Path(text).is_file():
        return None
    with open(pickled, "rb") as f:
        error = pickle.load(f)
    return error if Path(text).read_text().endswith(f"{error}\n") else None


class NodeLosses(tune.Callback):
    """Takes a node loss back from a retried trial's failure count, up to ``limit`` per trial.

    Tune counts every failure (``Trial.handle_error``; only a drain's preemption is not counted), retries
    while the count is at most ``max_failures`` (``Trial.should_recover``) and calls ``on_trial_recover``
    after requeuing the trial, before it schedules anything: a node loss taken back here leaves
    ``max_failures`` for the trial's own failures. With ``max_failures: 0`` Tune retries nothing, a node
    loss neither (it decides before this hook can tell the two apart).
    """

    def __init__(
        self,
        resolve: Callable[[dict], PlannedTrial],
        echo: Callable[[str], None],
        limit: int = NODE_LOSS_RETRIES,
    ) -> None:
        self.resolve, self.echo, self.limit = resolve, echo, limit
        self.taken: dict[str, int] = {}  # Tune trial id -> node losses taken back

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        error = last_error(trial)
        if error is None or not lost_with_node(error, death_cause(error)):
            return
        planned, taken = self.resolve(trial.config), self.taken.get(trial.trial_id, 0)
        where = f"[{planned.stage}] trial {planned.trial_id} ({planned.label}) lost its Ray node"
        if taken >= self.limit:
            self.echo(
                f"{where} again: more than {self.limit} node losses, this one counts against max_failures"
            )
            return
        if not (isinstance(error, RayActorError) and error.preempted):  # Tune did not count a preemption
            trial.run_metadata.num_failures -= 1
            trial.run_metadata.invalidate_cache()
        self.taken[trial.trial_id] = taken + 1
        self.echo(
            f"{where}; retried on a node that is left, from its last checkpoint "
            f"(node loss {taken + 1} of {self.limit} not counted against max_failures)"
        )


def _reuse_actors(ray: LazyRay) -> bool:
    """Whether a trial's actor serves the next trial (no worker start and imports per trial): only on a
    local Ray of one node. Tune 2.60 counts a reused actor that dies while it is reset for its next trial
    twice (``TuneController._actor_failed``, then the reset task's error) and ends that trial whatever
    ``max_failures`` says, as a cluster node lost just when a trial finished on it did (issue 19); a local
    Ray's one node dies with the driver."""
    import ray as ray_api

    return ray.address is None and sum(1 for node in ray_api.nodes() if node.get("Alive")) == 1


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
                reuse_actors=_reuse_actors(self.ray),
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
                    NodeLosses(partial(planned_trial, bases=bases), self.echo),
                    TrialStatus(self.study_dir, partial(planned_trial, bases=bases)),  # after the Recorder
                ],
                verbose=0,
            ),
        )
        tuner.fit()
