"""Stage 1: per dataset and method, an Optuna search over the method's ranges (Ray Tune's OptunaSearch).

The search runs on the default split's train/validation division (test classes are never seen) and
maximises the best validation value of ``tuning.metric`` over a trial's epochs.

Persistence: the Optuna study lives in a journal file in the study folder, written by the driver only
(OptunaSearch asks and tells from the driver), so no database is shared by workers, and Tune keeps
its retries and checkpoints, which workers driving a shared storage themselves would have to
re-implement. A resumed study reloads the journal (the sampler sees every earlier trial), counts the
tuning trials recorded in the results against the budget, and re-enqueues the parameters of trials a
killed driver left running, so they get the same identity and resume from their trial folder. The
first trial of a fresh search tries the method's defaults.

All searches run as one Tune experiment (``MethodSearches`` hands each suggestion to the search with
the most budget left), so every method's tuning shares the workers instead of queueing per method.
"""

from __future__ import annotations

import optuna
import pyarrow.compute as pc
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from study.execution import Execution
from study.expand import TUNE, DatasetPlan, tuning_base
from study.results import read_results
from study.results.layout import OPTUNA_JOURNAL
from study.results.storage import ObjectPath, StudyPath, local_copy, scratch_path, upload
from study.spec import MethodEntry, Range, StudySpec
from study.trainable import OBJECTIVE, SEARCH

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(method: MethodEntry) -> dict[str, BaseDistribution]:
    from tasks.methods import METHODS

    declared = METHODS[method.name].hyperparameters

    def distribution(name: str, r: Range) -> BaseDistribution:
        integer = declared[name].integer
        if r.choices:
            return CategoricalDistribution([int(c) if integer else float(c) for c in r.choices])
        if integer:
            return IntDistribution(int(r.low), int(r.high), log=r.log)
        return FloatDistribution(r.low, r.high, log=r.log)

    return {name: distribution(name, r) for name, r in method.search_space().items()}


def recover(study: optuna.Study, method: MethodEntry) -> None:
    """Ask again first for trials a killed driver left running; a fresh study starts at the defaults."""
    from tasks.methods import METHODS

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
    if not study.trials:
        defaults = METHODS[method.name].defaults()
        space = method.search_space()
        start = {
            k: defaults[k]
            for k, r in space.items()
            if (defaults[k] in r.choices if r.choices else r.low <= defaults[k] <= r.high)
        }
        if start:
            study.enqueue_trial(start)


def recorded(study_dir: StudyPath, dataset: str, method: str) -> int:
    """Tuning trials of ``dataset``/``method`` with result rows (completed or failed)."""
    table = read_results(study_dir).select(["trial_id", "stage", "dataset", "method"])
    mask = pc.and_(pc.equal(table["stage"], TUNE), pc.equal(table["dataset"], dataset))
    mask = pc.and_(mask, pc.equal(table["method"], method))
    return len(set(table.filter(mask)["trial_id"].to_pylist()))


def best_values(study: optuna.Study) -> dict[str, float | int]:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return dict(max(completed, key=lambda t: t.value).params) if completed else {}


class Journal:
    """The Optuna journal of the study: a file in the study folder or, for a study folder on an object
    store, a copy in the scratch space (continuing the store's) uploaded by ``save`` after every change."""

    def __init__(self, study_dir: StudyPath) -> None:
        self.stored = study_dir / OPTUNA_JOURNAL
        if isinstance(self.stored, ObjectPath):
            self.local = local_copy(self.stored) if self.stored.exists() else scratch_path(self.stored)
            self.local.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.local = self.stored
        self.storage = JournalStorage(JournalFileBackend(str(self.local)))

    def save(self) -> None:
        if isinstance(self.stored, ObjectPath) and self.local.exists():
            upload(self.local, self.stored)


class MethodSearches(Searcher):
    """Several Optuna searches behind one Tune experiment; the config names its search (``SEARCH``).
    ``journal`` is saved after each suggestion and each completion."""

    def __init__(self, searches: dict[str, OptunaSearch], budgets: dict[str, int], journal: Journal) -> None:
        super().__init__(metric=OBJECTIVE, mode="max")
        self.searches, self.left, self.journal = searches, dict(budgets), journal
        self.owner: dict[str, str] = {}

    def suggest(self, trial_id: str) -> dict | None:
        name = max(self.left, key=self.left.get)
        if self.left[name] <= 0:
            return Searcher.FINISHED
        self.left[name] -= 1
        self.owner[trial_id] = name
        suggested = {SEARCH: name, **self.searches[name].suggest(trial_id)}
        self.journal.save()
        return suggested

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searches[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searches[self.owner[trial_id]].on_trial_complete(trial_id, result, error)
        self.journal.save()

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the searches' state is their Optuna journal (Tune would warn otherwise)."""


def tune_all(spec: StudySpec, plans: list[DatasetPlan], execution: Execution) -> dict:
    """Run what is left of every tuning budget; the tuned values per (dataset, method) that searches
    (empty where no trial completed)."""
    journal = Journal(execution.study_dir)
    storage = journal.storage
    studies, searches, budgets, bases = {}, {}, {}, {}
    for plan in plans:
        for method in (m for m in spec.methods if m.search_space()):
            name = f"{plan.entry.name}/{method.label}"
            sampler = optuna.samplers.TPESampler(seed=spec.tuning.seed)
            studies[(plan.entry.name, method.label)] = study = optuna.create_study(
                study_name=name, storage=storage, sampler=sampler, direction="maximize", load_if_exists=True
            )
            recover(study, method)
            left = spec.tuning.trials - recorded(execution.study_dir, plan.entry.name, method.label)
            if left > 0:
                searches[name] = OptunaSearch(
                    distributions(method), OBJECTIVE, "max", sampler=sampler, study_name=name, storage=storage
                )
                budgets[name], bases[name] = left, tuning_base(spec, plan, method).to_dict()
    if searches:
        total = sum(budgets.values())
        execution.fit(
            "tune",
            total=total,
            search_alg=MethodSearches(searches, budgets, journal),
            num_samples=total,
            bases=bases,
        )
    journal.save()  # the recovered and enqueued trials, also when nothing was left to run
    tuned = {key: best_values(study) for key, study in studies.items()}
    for (dataset, method), values in tuned.items():
        if not values:
            execution.echo(
                f"[tune] {dataset}/{method}: no trial completed; evaluating with fixed/default values"
            )
    return tuned
