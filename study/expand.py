"""Expansion of a study spec into trials, each with a stable identity.

A trial's identity is ``tasks.identity.trial_identity``: the one ``oodml trial`` gives the same config.
Equal identities mean interchangeable results: that is what makes resume skip work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from study.results.storage import StudyPath, local_copy, locate
from study.spec import DatasetEntry, MethodEntry, SpecError, StudySpec
from tasks.config import DataConfig, FewShotConfig, HeldoutConfig, TrialConfig
from tasks.identity import split_hash, trial_identity
from tasks.splits.episodes import has_support
from tasks.splits.files import Split, SplitFileError, read_split_file
from tasks.splits.heldout import MIN_HALF, kept_classes

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


@dataclass(frozen=True)
class DatasetPlan:
    """A dataset with its split file read: the splits to evaluate and the one to tune on."""

    entry: DatasetEntry
    split_file: StudyPath  # where trials read it: a local path, or an object (fetched by the trainable)
    evaluated: tuple[Split, ...]
    default: Split

    @classmethod
    def load(
        cls,
        entry: DatasetEntry,
        split_file: StudyPath,
        spec: StudySpec,
        class_sizes: Mapping[str, int] | None = None,
    ) -> DatasetPlan:
        """Read and check the split file against the spec (keys exist, every budget has episodes, batches
        fit). ``class_sizes`` (images per class) serves the oracle's check: without it, and with the oracle
        on, the entry's dataset is built to count them."""
        split_file = locate(split_file).resolve()
        field = f"datasets.{spec.datasets.index(entry)}"
        source = (
            f"{field}.split_file" if entry.split_file else f"{field} (split file built from {field}.splits)"
        )
        where = f"{source} ({split_file})"
        try:
            splits = read_split_file(local_copy(split_file))
        except SplitFileError as err:
            raise SpecError(f"{source}: {err}") from None
        keys = [s.key for s in splits.splits]
        wanted = entry.evaluate or keys
        unknown = [k for k in [*wanted, entry.default_split] if k not in keys]
        if unknown:
            raise SpecError(
                f"{where}: split keys {unknown} are not in the split file; it has {keys}: set "
                f"{field}.evaluate and {field}.default_split to keys it has"
            )
        evaluated = tuple(splits.split(k) for k in wanted)
        for split in evaluated:
            have = sorted(
                s for s, episodes in split.episodes.items() if episodes and has_support(episodes[0])
            )
            missing = [s for s in spec.shots if s not in have]
            if missing:
                raise SpecError(
                    f"{where}: split {split.key} has no few-shot episodes for budgets {missing} "
                    f"(its test classes are too small or the file was built without them; it has {have}); "
                    "lower fewshot.budgets or rebuild the splits with these shots"
                )
        default = splits.split(entry.default_split)
        _check_batch(spec, [default, *evaluated], where)
        if spec.oracle_methods:  # an oracle trains on the test classes the held-out division keeps
            sizes = class_sizes if class_sizes is not None else dataset_class_sizes(entry, field)
            kept = {s.key: len(kept_classes(s.test, sizes)) for s in evaluated}
            fewest = min(kept, key=kept.__getitem__)
            holder = f"the oracle of split {fewest} of {where}"
            which = f"its test classes of {2 * MIN_HALF} images or more, of {len(splits.split(fewest).test)}"
            check_batch_classes(spec, kept[fewest], holder, which)
        return cls(entry, split_file, evaluated, default)


def dataset_class_sizes(entry: DatasetEntry, field: str) -> dict[str, int]:
    """Images per class of the entry's dataset (built, not decoded)."""
    from tasks.data import DatasetError, build_dataset
    from tasks.splits.check import class_sizes

    try:
        return class_sizes(build_dataset(entry.dataset, entry.root, **entry.builder_options()))
    except DatasetError as err:
        raise SpecError(f"{field}.root: {err}") from None


def _check_batch(spec: StudySpec, splits: list[Split], where: str) -> None:
    smallest = min(splits, key=lambda s: len(s.split_train))
    check_batch_classes(spec, len(smallest.split_train), f"split {smallest.key} of {where}")


def check_batch_classes(spec: StudySpec, classes: int, holder: str, which: str = "its split_train") -> None:
    """Every training batch needs ``batch_size / samples_per_class`` distinct training classes, for each
    method's training settings; ``holder`` (a split, in words) trains on ``classes`` (``which`` ones)."""
    for index, method in enumerate(spec.methods):
        training = spec.method_settings(method).training
        size, per_class = training.batch_size, training.samples_per_class
        if classes < size // per_class:
            field = f"methods.{index}.training" if "batch_size" in method.training else "training"
            raise SpecError(
                f"{field}.batch_size: a batch of {size} images with samples_per_class {per_class} needs "
                f"{size // per_class} distinct classes, but {holder} trains on {classes} classes ({which}); "
                f"lower {field}.batch_size to at most {classes * per_class}"
            )


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
