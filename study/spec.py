"""The study specification: one validated YAML file (pydantic) describing a whole ooDML study.

A study is the cross product datasets x methods x splits x seeds, each training evaluated at every
few-shot budget, after a tuning stage that searches each method's hyperparameters on the default
split's train/validation division. Each option is declared once: the training, model and few-shot
adaptation sections are the trial's own models (``tasks.config``) and a dataset's ``splits:`` is the
split-build options model that ``oodml splits build`` takes its flags from (``tasks.splits.options``);
this module declares only what a study alone has. Every path is made absolute at load time, because
Ray trials run in other working directories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from study.overrides import apply_overrides
from study.results.storage import ObjectPath, StudyPath, is_remote, locate
from tasks.config import (
    AdaptationConfig,
    DataConfig,
    DatasetOptions,
    HeldoutConfig,
    MethodConfig,
    ModelConfig,
    TrainingConfig,
    TrialSettings,
)
from tasks.metric_names import SELECTION_SCORE, VAL, MetricKey, metric_names
from tasks.registry import PluginError, unknown_name
from tasks.splits.options import SplitOptions
from tasks.validation import error_line
from tasks.validation import format_errors as format_validation_errors


class SpecError(ValueError):
    """A study specification is unreadable or invalid; the message names the field(s) to fix."""


def closest(name: str, choices) -> str:
    """ "unknown name 'x'; did you mean 'y'? (allowed: ...)": the closest known name and all of them."""
    return unknown_name(name, choices)


def _known(name: str, registry: dict, what: str) -> str:
    if name not in registry:
        raise ValueError(f"{what}: {closest(name, registry)}")
    return name


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # names a folder: <study>/splits/<name>/
PATH_OPTIONS = ("train_classes", "test_classes", "image_root")  # option values that may be file paths


class DatasetEntry(_Strict):
    """A dataset with either a split file or the options to build one in the study folder.

    ``name`` is what results, the split folder and the dashboard call it. Without ``kind`` it is also
    the registered dataset that reads it (``name: cub200``); with ``kind`` it is a name of the entry's
    own (``{name: birds, kind: imagefolder}``), so a study can hold several image folders or CSV lists.
    """

    # kind comes first so that name's check sees it (pydantic validates fields in this order).
    kind: str | None = Field(
        None, description="the registered dataset that reads this entry (imagefolder, csv, ...); None: name"
    )
    name: str
    root: str | None = Field(
        None, description="dataset folder (csv: the list file; glyphs: render cache; None: default)"
    )
    options: DatasetOptions = Field(default_factory=dict, description="dataset builder options")
    unreadable_images: Literal["fail", "skip"] = Field(
        "fail",
        description="images that cannot be decoded (every image is opened before the study starts): "
        "fail, naming them, or skip them and report which were left out",
    )
    num_workers: int = DataConfig.model_fields["num_workers"]  # declared once, with its bound: the trial's
    split_file: str | None = Field(None, description="splits.json or an ooDML pickle; None: build")
    splits: SplitOptions | None = Field(None, description="options to build the split file; None: defaults")
    evaluate: list[str] | None = Field(None, description="split keys to evaluate; None: every split")
    default_split: str = Field("0", description="split key whose train/val division the tuning uses")
    evaluate_on: list[str] = Field(
        default_factory=list,
        description="other entries of this study whose default split's test classes every model trained on "
        "this dataset is evaluated on too (cross-dataset rows, subset cross; docs/oracle.md)",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str | None) -> str | None:
        from tasks.data import DATASETS

        return None if kind is None else _known(kind, DATASETS, "dataset")

    @field_validator("name")
    @classmethod
    def _dataset(cls, name: str, info: ValidationInfo) -> str:
        from tasks.data import DATASETS, dataset_options

        if "kind" not in info.data:  # kind itself is wrong: that error says so
            return name
        kind = info.data["kind"]
        if kind is None:
            try:
                return _known(name, DATASETS, "dataset")
            except ValueError as err:
                raise ValueError(
                    f"{err}; to give an entry a name of its own, set kind: to one of them"
                ) from None
        if not ENTRY_NAME.match(name):
            raise ValueError(
                f"{name!r}: an entry's name names its split folder: letters, digits, '_', '.', '-', starting "
                "with a letter or digit"
            )
        if name != kind and name in DATASETS:
            raise ValueError(
                f"{name!r} is the registered dataset {name}; give this {kind} entry another name"
            )
        if name != kind and "name" not in dataset_options(kind):
            raise ValueError(
                f"dataset {kind!r} takes no name of its own (its builder has no name option); leave kind out "
                f"and call it {kind!r}"
            )
        return name

    @field_validator("root", "split_file")
    @classmethod
    def _abs(cls, path: str | None) -> str | None:
        return _absolute(path)

    @field_validator("options")
    @classmethod
    def _option_paths(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Class lists and image folders given as files become absolute, as ``root`` does."""
        return {
            k: _absolute(v) if k in PATH_OPTIONS and isinstance(v, str) else v for k, v in options.items()
        }

    @field_validator("evaluate", mode="before")
    @classmethod
    def _keys(cls, keys: Any) -> Any:
        if keys == []:
            raise ValueError(
                "empty list of split keys: list the keys to evaluate, or leave it out for every split"
            )
        return [str(k) for k in keys] if isinstance(keys, list) else keys

    @field_validator("default_split", mode="before")
    @classmethod
    def _key(cls, key: Any) -> Any:
        return str(key) if isinstance(key, int) else key

    @model_validator(mode="after")
    def _one_source(self) -> DatasetEntry:
        if self.split_file and self.splits is not None:
            raise ValueError("give either split_file (a built split file) or splits (options to build one)")
        return self

    @model_validator(mode="after")
    def _options(self) -> DatasetEntry:
        from tasks.data import dataset_options

        if "unreadable_images" in self.options:
            raise ValueError("options.unreadable_images: set it as the dataset's own key, unreadable_images")
        if "name" in self.options:
            raise ValueError(
                f"options.name: the entry's own name key names it (name: {self.options['name']}, "
                f"kind: {self.dataset})"
            )
        accepted = [o for o in dataset_options(self.dataset) if o not in ("unreadable_images", "name")]
        for option in self.options:
            _known(option, accepted, f"options: dataset {self.dataset!r} option")
        return self

    @property
    def dataset(self) -> str:
        """The registered dataset that reads this entry: ``kind``, or ``name`` when no kind is given."""
        return self.kind or self.name

    def builder_options(self) -> dict[str, Any]:
        """The options, plus the entry's name where it is its own (so the dataset, and every result of
        it, carries that name)."""
        own = {"name": self.name} if self.name != self.dataset else {}
        return {**self.options, **own}

    def loader_options(self) -> dict[str, Any]:
        """What ``tasks.data.build_dataset`` takes: ``builder_options``, plus the unreadable-image policy
        if not the default (so trials of a study that never set it keep their identities)."""
        skip = {"unreadable_images": "skip"} if self.unreadable_images == "skip" else {}
        return {**self.builder_options(), **skip}

    @property
    def build(self) -> SplitOptions:
        return self.splits or SplitOptions()

    @property
    def support(self) -> str:
        """How the built split file's episodes draw their support (docs/protocol.md section 5)."""
        from tasks.splits.settings import default_support

        return self.build.support or default_support(self.dataset)


class Range(_Strict):
    """A search range: ``[low, high]`` or ``[low, high, "log"]`` in YAML, or ``{choices: [a, b, ...]}``
    (the values a tuner picks from)."""

    low: float
    high: float
    log: bool = False
    choices: list[float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(value) not in (2, 3) or (len(value) == 3 and value[2] != "log"):
                raise ValueError(f"a range is [low, high] or [low, high, 'log'], got {value}")
            return {"low": value[0], "high": value[1], "log": len(value) == 3}
        if isinstance(value, dict) and value.get("choices") and set(value) == {"choices"}:
            choices = value["choices"]
            if len(set(choices)) < 2:
                raise ValueError(f"choices: give 2 or more distinct values, got {choices}")
            return {"low": min(choices), "high": max(choices), "choices": choices}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


# What a method entry may set apart from the study's sections (``MethodEntry.model``, ``.training``,
# ``.fewshot``): how one method trains and adapts, as the original's script sets it per method (DiVA's
# batch of 108, S2SD's ResNet101 on SOP, ProxyAnchor's warm-up epoch, S2SD's 100 CARS iterations). How
# methods are compared (protocol, selection, metrics, episodes, adaptation mode) stays study-wide.
METHOD_OVERRIDES: dict[str, tuple[str, ...]] = {
    "model": ("backbone", "embedding_dim", "pretrained"),
    "training": (
        "epochs",
        "warmup_epochs",
        "batch_size",
        "samples_per_class",
        "class_sampling",
        "iterations_per_epoch",
        "lr",
        "head_lr",
        "weight_decay",
        "lr_milestones",
        "lr_gamma",
        "amp",
    ),
    "fewshot": (
        "iterations",
        "lr_multiplier",
        "batch_size",
        "method",
        "hyperparameters",
        "loss_parameters",
        "support_transform",
        "reweight",
    ),
}
Overrides = dict[str, Any]


class MethodEntry(MethodConfig):
    """A method (the trial's ``MethodConfig``: name, variant, fixed hyperparameters), what to tune, and
    the study's settings it changes for itself (``METHOD_OVERRIDES``).

    ``search: true`` tunes every declared hyperparameter over its declared range except the fixed ones;
    a mapping tunes only the named hyperparameters, over the given ranges.
    """

    search: bool | dict[str, Range] = False
    model: Overrides = Field(default_factory=dict, description="this method's model settings, e.g. backbone")
    training: Overrides = Field(
        default_factory=dict, description="this method's training settings, e.g. batch_size, warmup_epochs"
    )
    fewshot: Overrides = Field(
        default_factory=dict, description="this method's few-shot adaptation settings, e.g. iterations"
    )

    @model_validator(mode="after")
    def _overridable(self) -> MethodEntry:
        for section, allowed in METHOD_OVERRIDES.items():
            refused = sorted(set(getattr(self, section)) - set(allowed))
            if refused:
                raise ValueError(
                    f"{section}.{refused[0]}: not settable per method (it decides how methods are compared: "
                    f"set it in the study's {section} section); per method: {', '.join(allowed)}"
                )
        return self

    @field_validator("name")
    @classmethod
    def _method(cls, name: str) -> str:
        from tasks.methods import METHODS

        return _known(name, METHODS, "method")

    def config(self, hyperparameters: dict[str, float | int] | None = None) -> MethodConfig:
        """The trial's method config (``hyperparameters``: the values to train with; default: the fixed ones)."""
        values = dict(self.hyperparameters if hyperparameters is None else hyperparameters)
        return MethodConfig(name=self.name, variant=self.variant, hyperparameters=values)

    @model_validator(mode="after")
    def _names(self) -> MethodEntry:
        from tasks.methods import METHODS, check_variant

        check_variant(METHODS[self.name], self.variant)
        declared = METHODS[self.name].hyperparameters
        searched = self.search if isinstance(self.search, dict) else {}
        for group, names in (("hyperparameters", self.hyperparameters), ("search", searched)):
            for name in names:
                _known(name, declared, f"{group}: method {self.name!r} hyperparameter")
        both = sorted(set(self.hyperparameters) & set(searched))
        if both:
            raise ValueError(f"hyperparameters {both} are both fixed and searched; choose one")
        tunable = {k for k, hp in declared.items() if hp.tune}
        if self.search is True and not tunable - set(self.hyperparameters):
            raise ValueError(f"search: true, but every tunable hyperparameter of {self.name!r} is fixed")
        return self

    def search_space(self) -> dict[str, Range]:
        """The ranges to tune (empty: nothing to tune)."""
        from tasks.methods import METHODS

        declared = METHODS[self.name].hyperparameters
        if self.search is True:  # what the method declares tunable, over its declared range or choices
            return {
                k: Range(
                    low=hp.low, high=hp.high, log=hp.log, choices=list(hp.choices) if hp.choices else None
                )
                for k, hp in declared.items()
                if k not in self.hyperparameters and hp.tune
            }
        return dict(self.search) if self.search else {}


class FewShotSpec(AdaptationConfig):
    """A study's few-shot settings: its shot budgets and what to do with classes too small for one, plus
    the adaptation every trial uses (``tasks.config.AdaptationConfig``, declared once there); a trial's
    ``FewShotConfig`` takes that adaptation and the budgets > 0 (``study.expand.trial_config``)."""

    budgets: list[int] = Field(default_factory=lambda: [0], description="shot budgets; 0 = zero-shot")
    small_classes: Literal["fail", "leave_out"] = Field(
        "fail",
        description="test classes with no image left as a query after a budget's support images: fail "
        "before the study starts, or leave them out of that budget's episodes (counted in left_out_classes)",
    )


class OracleSpec(HeldoutConfig):
    """The shift-vs-difficulty control (docs/oracle.md): per method x split x seed, an oracle trial trains
    the method on the training half (``fraction``, divided with ``seed``) of each test class's images, and
    every evaluation trial is also evaluated on the held-out half. The division is ``HeldoutConfig``'s,
    declared once in ``tasks.config``."""

    enabled: bool = False
    methods: list[str] | None = Field(
        None, description="method labels to train an oracle for; None: every method of the study"
    )


class TuningSpec(_Strict):
    """Stage 1: per method and dataset, ``trials`` Optuna trials of ``epochs`` epochs each."""

    trials: int = Field(8, ge=0)
    epochs: int | None = Field(None, ge=1, description="None: training.epochs")
    metric: str = Field("val/selection_score", description="a validation metric, maximised")
    seed: int = Field(0, description="sampler seed")

    @field_validator("metric")
    @classmethod
    def _validation_only(cls, metric: str) -> str:
        if not metric.startswith("val/"):
            raise ValueError(f"tuning selects on validation classes only: expected 'val/...', got {metric!r}")
        return metric


class Resources(_Strict):
    """Per trial; fractions share a device between trials (docs/cluster.md, GPUs)."""

    cpus: float = Field(1, gt=0)
    gpus: float = Field(
        0, ge=0, description="GPUs per trial: 0.5 puts two trials on one GPU; above 1, whole GPUs only"
    )

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, gpus: float) -> float:
        if gpus > 1 and not float(gpus).is_integer():  # Ray refuses them: one trial's GPUs are whole
            raise ValueError(
                f"{gpus} GPUs per trial: Ray gives a trial a fraction of one GPU (up to 1) or whole GPUs; "
                f"use {int(gpus)} or {int(gpus) + 1}"
            )
        return gpus


class Storage(_Strict):
    root: str | None = Field(
        None, description="study folder: a local path or s3://bucket/prefix; None: runs/<name>"
    )
    tracking_uri: str | None = Field(None, description="MLflow; None: SQLite file in the study folder")
    experiment: str | None = Field(None, description="MLflow experiment; None: the study name")

    @field_validator("root")
    @classmethod
    def _known_scheme(cls, root: str | None) -> str | None:
        if root is not None:
            locate(root)  # refuses a URI scheme other than s3://
        return root

    @model_validator(mode="after")
    def _tracking_beside_an_object_store(self) -> Storage:
        """A study folder on an object store cannot hold MLflow's default SQLite file."""
        if self.root and is_remote(self.root) and self.tracking_uri is None:
            raise ValueError(
                f"storage.root is {self.root}: a study folder on an object store cannot hold MLflow's "
                "SQLite database; set storage.tracking_uri to an MLflow server (http://<host>:5000, "
                "docs/cluster.md) or to a database the driver reaches (postgresql://..., "
                "sqlite:////var/tmp/<study>.db)"
            )
        return self


class RaySpec(_Strict):
    address: str | None = Field(None, description="cluster to join; None: RAY_ADDRESS or a local Ray")
    dashboard: bool = False
    num_cpus: int | None = Field(None, description="CPUs of a local Ray; None: all")


@dataclass(frozen=True)
class MethodSettings:
    """A method's settings in a study: the study's sections with its own values over them."""

    model: ModelConfig
    training: TrainingConfig
    fewshot: AdaptationConfig


def _checked_model(model: ModelConfig, prefix: str) -> ModelConfig:
    """``model`` with its backbone known (a built-in name or any timm model) and a weights file made
    absolute (trials run elsewhere: Ray workers); ``prefix`` leads the field an error names."""
    from tasks.models import backbone_spec

    try:
        backbone_spec(model.backbone)
    except ValueError as err:
        raise ValueError(f"{prefix}backbone: {err}") from None
    if isinstance(model.pretrained, str):
        return model.model_copy(update={"pretrained": _absolute(model.pretrained)})
    return model


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    plugins: list[str] = Field(
        default_factory=list,
        description="modules or .py files (relative to the spec file) registering methods, backbones, "
        "datasets (docs/plugins.md); loaded before the spec is checked and on every worker",
    )
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    fewshot: FewShotSpec = Field(default_factory=FewShotSpec)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    tuning: TuningSpec = TuningSpec()
    oracle: OracleSpec = OracleSpec()
    resources: Resources = Resources()
    concurrency: int | None = Field(None, ge=1, description="trials at once; None: as resources allow")
    max_failures: int = Field(1, ge=-1, description="retries of a failed trial (-1: forever)")
    storage: Storage = Storage()
    ray: RaySpec = RaySpec()

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, entries: list[str], info: ValidationInfo) -> list[str]:
        from study.plugins import resolve

        base = (info.context or {}).get("base")
        resolved = [resolve(e, base) for e in entries]
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"duplicate entries in {entries}")
        return resolved

    @field_validator("model")
    @classmethod
    def _backbone(cls, model: ModelConfig) -> ModelConfig:
        return _checked_model(model, "")

    @model_validator(mode="after")
    def _grid(self) -> StudySpec:
        for field, values in (
            ("datasets", [d.name for d in self.datasets]),
            ("methods", [m.label for m in self.methods]),
            ("seeds", self.seeds),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{field}: duplicate entries in {values}")
        budgets = self.fewshot.budgets
        if not budgets:
            raise ValueError(
                "fewshot.budgets: expected distinct shot counts >= 0, got an empty list; "
                "use [0] for zero-shot only"
            )
        if len(set(budgets)) != len(budgets) or min(budgets) < 0:
            raise ValueError(f"fewshot.budgets: expected distinct shot counts >= 0, got {budgets}")
        for m in self.methods:  # each method's own settings valid, alone and as its evaluation trials'
            self.method_settings(m)
        for d in self.datasets:
            wanted = d.build.shots
            if not d.split_file and wanted is not None and set(self.shots) - set(wanted):
                raise ValueError(
                    f"datasets[{d.name}].splits.shots {wanted} lacks budgets {sorted(set(self.shots) - set(wanted))}"
                )
        searched = [m.label for m in self.methods if m.search_space()]
        if self.training.epochs == 0 and self.tuning.epochs is None and searched and self.tuning.trials:
            raise ValueError(
                f"training.epochs is 0 (no training), so tuning {searched} would compare untrained models: "
                "set tuning.epochs, or drop their search ranges"
            )
        allowed = self.validation_metrics()
        if self.tuning.metric not in allowed:
            raise ValueError(
                f"tuning.metric: {self.tuning.metric!r} is not computed; allowed: {', '.join(allowed)}"
            )
        if self.tuning.trials == 0 and any(m.search_space() for m in self.methods):
            raise ValueError("tuning.trials is 0, but some methods have search ranges; set trials >= 1")
        self._check_oracle_and_cross()
        return self

    def _check_oracle_and_cross(self) -> None:
        oracle = self.oracle
        if oracle.methods == []:
            raise ValueError(
                "oracle.methods: an empty list names no method; leave it out (every method gets an oracle) "
                "or set oracle.enabled: false"
            )
        if not oracle.enabled:  # a saved spec holds every field at its default: only other values count
            fields = OracleSpec.model_fields
            changed = [n for n in ("methods", "fraction", "seed") if getattr(oracle, n) != fields[n].default]
            if changed:
                raise ValueError(
                    f"oracle.{changed[0]}: set, but oracle.enabled is false, so no oracle would run: set "
                    f"oracle.enabled: true, or remove oracle.{', oracle.'.join(changed)}"
                )
        labels = [m.label for m in self.methods]
        for label in self.oracle.methods or []:
            if label not in labels:
                raise ValueError(f"oracle.methods: {closest(label, labels)}")
        names = [d.name for d in self.datasets]
        for i, d in enumerate(self.datasets):
            for other in d.evaluate_on:
                if other == d.name:
                    raise ValueError(
                        f"datasets.{i}.evaluate_on: {other!r} is this entry itself; its own test classes are "
                        "always evaluated: name other entries"
                    )
                if other not in names:
                    raise ValueError(f"datasets.{i}.evaluate_on: entry {closest(other, names)}")
            if len(set(d.evaluate_on)) != len(d.evaluate_on):
                raise ValueError(f"datasets.{i}.evaluate_on: duplicate entries in {d.evaluate_on}")

    def method_settings(self, method: MethodEntry) -> MethodSettings:
        """The model, training and adaptation settings ``method``'s trials use: the study's sections with
        the entry's own values over them; a ValueError names the entry's field."""
        at = f"methods.{self.methods.index(method)} ({method.label})"
        settings = {}
        for section, kind in (
            ("model", ModelConfig),
            ("training", TrainingConfig),
            ("fewshot", AdaptationConfig),
        ):
            study = getattr(self, section)
            base = study.adaptation if section == "fewshot" else study
            try:
                settings[section] = kind.model_validate(base.model_dump() | getattr(method, section))
            except ValidationError as err:
                problems = "; ".join(error_line(e, kind) for e in err.errors())
                raise ValueError(f"{at}.{section}: {problems}") from None
        if method.model:
            settings["model"] = _checked_model(settings["model"], f"{at}.model.")
        self._check_evaluation_settings(method, **settings)
        return MethodSettings(**settings)

    def _check_evaluation_settings(
        self, method: MethodEntry, model: ModelConfig, training: TrainingConfig, fewshot: AdaptationConfig
    ) -> None:
        """The rules across a trial's sections (``tasks.config.TrialSettings``), on ``method``'s evaluation
        trials: a ValueError names the study's field (``methods.<i>.`` where the method sets it itself)."""
        try:
            TrialSettings(
                model=model,
                training=training,
                fewshot=fewshot.model_dump() | {"shots": self.shots},
            )
        except ValidationError as err:
            lines = []
            for error in err.errors():
                section, key = error["loc"][:2]
                own = key in getattr(method, section)
                lines.append(
                    f"methods.{self.methods.index(method)}." * own + error_line(error, TrialSettings)
                )
            raise ValueError("; ".join(lines)) from None

    @property
    def oracle_methods(self) -> list[str]:
        """The method labels that get oracle trials (none unless ``oracle.enabled``)."""
        if not self.oracle.enabled:
            return []
        return self.oracle.methods if self.oracle.methods is not None else [m.label for m in self.methods]

    def validation_metrics(self) -> list[str]:
        """What a trial records per epoch on its validation classes (``tasks.metric_names``)."""
        names = [*metric_names(self.training.ks, self.training.with_nmi), SELECTION_SCORE]
        return sorted(MetricKey(VAL, n).key for n in names)

    @property
    def shots(self) -> list[int]:
        """Budgets that adapt (> 0); zero-shot results come with every trial."""
        return sorted(s for s in self.fewshot.budgets if s > 0)

    @property
    def study_dir(self) -> StudyPath:
        """The study folder: an absolute local path, or an ``s3://`` prefix (``study.results.storage``)."""
        if self.storage.root and is_remote(self.storage.root):
            return locate(self.storage.root)
        return Path(self.storage.root or Path("runs") / self.name).expanduser().resolve()

    def resolved(self) -> StudySpec:
        """The spec with the study folder made absolute (what is saved and resumed)."""
        return self.model_copy(
            update={"storage": self.storage.model_copy(update={"root": str(self.study_dir)})}
        )

    def to_yaml(self) -> str:
        """Every field, defaults included: a resumed study keeps its settings across oodml versions."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def format_errors(err: ValidationError, source: str) -> str:
    return format_validation_errors(
        err, source, StudySpec, "study specification", "a study needs one entry at least"
    )


def load_spec(
    source: str | Path | ObjectPath | dict, overrides: dict[str, Any] | list[str] | None = None
) -> StudySpec:
    """Read (YAML path or dict), apply ``--set`` style overrides, validate; paths become absolute."""
    if isinstance(source, dict):
        raw, where = source, "study spec"
    else:
        where = str(source)
        try:
            raw = yaml.safe_load(locate(source).read_text())  # a saved spec may lie on the object store
        except (OSError, yaml.YAMLError) as err:
            raise SpecError(f"{where}: cannot read study specification ({err})") from err
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or {})
    base = (
        None if isinstance(source, dict) or is_remote(source) else Path(source).expanduser().resolve().parent
    )
    entries = raw.get("plugins") or []
    if isinstance(entries, list) and all(isinstance(e, str) for e in entries):  # else: a field error below
        from study.plugins import load_plugins

        try:  # and the installed ones, before validation, so that the names they register resolve
            resolved = load_plugins(entries, base)
        except PluginError as err:
            raise SpecError(f"{where}: plugins: {err}") from None
        raw = {**raw, "plugins": resolved} if entries else raw
    try:
        return StudySpec.model_validate(raw, context={"base": base}).resolved()
    except ValidationError as err:
        raise SpecError(format_errors(err, where)) from None
