"""Expansion of a study spec into trials, each with a stable identity: a function of the spec and the
datasets' plans (``study.inputs.DatasetPlan``: split files read, once, before), reading nothing itself.

A trial's identity is ``tasks.identity.trial_identity``: the one ``oodml trial`` gives the same config.
Equal identities mean interchangeable results: that is what makes resume skip work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from study.inputs import DatasetPlan
from study.spec import MethodEntry, StudySpec
from tasks.config import DataConfig, FewShotConfig, HeldoutConfig, TrialConfig
from tasks.identity import split_hash, trial_identity
from tasks.splits.files import Split

TUNE, EVAL = "tune", "eval"  # the stages, named as in the results schema


@dataclass(frozen=True)
class PlannedTrial:
    """One scheduled training. ``tuned`` names the hyperparameters that came from the tuning stage."""

    stage: str
    config: TrialConfig
    split_digest: str
    tuned: dict[str, float | int] = field(default_factory=dict)
    cross_digests: tuple[str, ...] = ()  # the split hash of each config.evaluate_on entry

    @property
    def trial_id(self) -> str:
        return trial_identity(self.config, self.split_digest, self.cross_digests)

    @property
    def label(self) -> str:
        c = self.config
        role = "/oracle" if c.role == "oracle" else ""
        return f"{c.data.dataset_name}/{c.method.label}{role}/split {c.data.split}/seed {c.seed}"

    def to_dict(self) -> dict:
        """Plain data, as a Ray Tune trial config carries it."""
        return {
            "stage": self.stage,
            "config": self.config.model_dump(mode="json"),
            "split_digest": self.split_digest,
            "tuned": self.tuned,
            "cross_digests": list(self.cross_digests),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PlannedTrial:
        config = TrialConfig.model_validate(data["config"])
        cross = tuple(data["cross_digests"])
        return cls(data["stage"], config, data["split_digest"], data["tuned"], cross)


def trial_config(
    spec: StudySpec,
    plan: DatasetPlan,
    method: MethodEntry,
    split: Split,
    seed: int,
    hyperparameters: dict[str, float | int],
    *,
    tuning: bool,
) -> TrialConfig:
    """A tuning trial validates only (no test classes, no few-shot); an evaluation trial does all. The
    method's own settings (``StudySpec.method_settings``) stand over the study's."""
    settings = spec.method_settings(method)
    training = settings.training
    if tuning:  # tuning selects on the validation classes, whatever protocol the evaluation follows
        update = {"protocol": "validated"} | ({"epochs": spec.tuning.epochs} if spec.tuning.epochs else {})
        training = training.model_copy(update=update)
    return TrialConfig(
        data=DataConfig(
            dataset=plan.entry.dataset,
            root=plan.entry.root,
            options=plan.entry.loader_options(),
            num_workers=plan.entry.num_workers,
            split_file=str(plan.split_file),
            split=split.key,
        ),
        model=settings.model,
        method=method.config(hyperparameters),
        training=training,
        fewshot=FewShotConfig(**settings.fewshot.model_dump(), shots=[] if tuning else spec.shots),
        seed=seed,
        evaluate_test=not tuning,
    )


def tuning_base(spec: StudySpec, plan: DatasetPlan, method: MethodEntry) -> PlannedTrial:
    """The tuning stage's trial before the searched hyperparameters are filled in."""
    config = trial_config(
        spec, plan, method, plan.default, spec.seeds[0], dict(method.hyperparameters), tuning=True
    )
    return PlannedTrial(TUNE, config, split_hash(plan.default))


def with_hyperparameters(base: PlannedTrial, values: dict[str, float | int]) -> PlannedTrial:
    method = base.config.method
    merged = method.model_copy(update={"hyperparameters": {**method.hyperparameters, **values}})
    config = base.config.model_copy(update={"method": merged})
    return PlannedTrial(base.stage, config, base.split_digest, values, base.cross_digests)


def cross_data(plan: DatasetPlan) -> DataConfig:
    """What a trial trained on another dataset reads to evaluate on ``plan``'s dataset: its default split
    (``default_split``), whose test classes it is evaluated on (docs/oracle.md)."""
    entry = plan.entry
    return DataConfig(
        dataset=entry.dataset,
        root=entry.root,
        options=entry.loader_options(),
        num_workers=entry.num_workers,
        split_file=str(plan.split_file),
        split=plan.default.key,
    )


def oracle_config(config: TrialConfig) -> TrialConfig:
    """The oracle of an evaluation trial's config: the same method, split, seed and schedule, trained on
    the training half of the test classes and evaluated on the held-out half only (docs/oracle.md)."""
    fewshot = config.fewshot.model_copy(update={"shots": []})
    return TrialConfig.model_validate(
        config.model_dump()
        | {"role": "oracle", "fewshot": fewshot.model_dump(), "evaluate_on": [], "heldout": config.heldout}
    )


def evaluation_trials(
    spec: StudySpec, plans: list[DatasetPlan], tuned: dict[tuple[str, str], dict[str, float | int]]
) -> list[PlannedTrial]:
    """Every dataset x method x split x seed, with the tuned values (``tuned[(dataset, method)]``); with
    the oracle enabled, every such trial is evaluated on the held-out half too and the oracle's methods
    get an oracle trial each; each dataset's ``evaluate_on`` entries are evaluated by its trials."""
    by_name = {plan.entry.name: plan for plan in plans}
    heldout = (
        HeldoutConfig(fraction=spec.oracle.fraction, seed=spec.oracle.seed) if spec.oracle_methods else None
    )
    trials = []
    for plan in plans:
        others = [cross_data(by_name[name]) for name in plan.entry.evaluate_on]
        cross = tuple(split_hash(by_name[name].default) for name in plan.entry.evaluate_on)
        for method in spec.methods:
            found = tuned.get((plan.entry.name, method.label), {})
            values = {**method.hyperparameters, **found}
            for split in plan.evaluated:
                digest = split_hash(split)
                for seed in spec.seeds:
                    config = trial_config(spec, plan, method, split, seed, values, tuning=False)
                    config = config.model_copy(update={"heldout": heldout, "evaluate_on": others})
                    trials.append(PlannedTrial(EVAL, config, digest, dict(found), cross))
                    if method.label in spec.oracle_methods:
                        trials.append(PlannedTrial(EVAL, oracle_config(config), digest, dict(found)))
    return trials
