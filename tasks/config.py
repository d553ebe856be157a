"""The configuration of one trial: a typed, validated object (pydantic). Defaults live here only.

A trial trains one DML method on the ``split_train`` part of one split's train classes, selects the
checkpoint on the ``split_val`` classes, evaluates retrieval on the test classes, and optionally adapts
to few-shot support sets (docs/protocol.md sections 4-7).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.validation import field_error, format_errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DatasetOptions = dict[str, bool | int | float | str | list[int | float | str]]  # a dataset builder's options


class DataConfig(_Strict):
    dataset: str
    root: str | None = None
    options: DatasetOptions = Field(default_factory=dict, description="dataset builder options")
    split_file: str
    split: str | int = Field(description="selected split: key (str, e.g. '0', 'R22') or id (int)")
    num_workers: int = Field(0, ge=0, description="loader workers")

    @property
    def dataset_name(self) -> str:
        """The dataset as results name it: a ``name`` option (a study entry's own name), else ``dataset``."""
        return str(self.options.get("name", self.dataset))


class ModelConfig(_Strict):
    backbone: str = "resnet50"
    embedding_dim: int | None = Field(None, description="None: the backbone's default (512 for ResNets)")
    pretrained: bool | str | None = Field(
        None, description="None: ImageNet weights where the backbone has them; a path: weights from that file"
    )


class MethodConfig(_Strict):
    name: str
    variant: str | None = Field(
        None,
        description="the definition to follow (e.g. 'pml'); None: the method's default (the ooDML code's)",
    )
    hyperparameters: dict[str, float | int] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The method's name in results: ``name``, or ``name[variant]`` for a non-default variant."""
        from tasks.methods import method_spec

        default = method_spec(self.name).default_variant
        return self.name if self.variant in (None, default) else f"{self.name}[{self.variant}]"


class TrainingConfig(_Strict):
    """The paper's protocol by default (docs/protocol.md section 10): Adam, lr 1e-5, wd 4e-4, batch 112 of 2 per class."""

    epochs: int = Field(200, description="0: evaluate the model as built, untrained")
    batch_size: int = Field(112, ge=1)
    samples_per_class: int = Field(2, ge=1, description="images of each class in a batch")
    class_sampling: Literal["distinct", "with_replacement"] = Field(
        "distinct",
        description="distinct: a batch's classes and each class's images drawn without replacement; "
        "with_replacement: every class slot and image drawn independently, as the ooDML code's sampler",
    )
    iterations_per_epoch: int | None = Field(None, description="None: one pass over the training images")
    warmup_epochs: int = Field(
        0,
        ge=0,
        description="first epochs with the backbone frozen (no gradient): only the head and the method's "
        "own parameters train, as the original's --warmup (ProxyAnchor on SOP: 1)",
    )
    lr: float = 1e-5
    head_lr: float | None = Field(None, description="None: same as lr")
    weight_decay: float = 4e-4
    lr_milestones: list[int] = Field(default_factory=list, description="epochs at which the lr is multiplied")
    lr_gamma: float = 0.3
    protocol: Literal["validated", "paper"] = Field(
        "validated",
        description="validated: train on split_train, select the epoch on split_val; paper: train on all "
        "train classes, select the epoch on test Recall@1 (the released ooDML code)",
    )
    selection_metric: list[str] = Field(
        default_factory=lambda: ["recall@1", "map@r"], description="validation metrics summed to select on"
    )
    record_test_curve: bool = Field(
        True, description="evaluate the test classes during training (recorded, never selected on)"
    )
    test_curve_every: int | None = Field(
        None,
        ge=1,
        description="epochs between test-curve evaluations, the last epoch always included; None: "
        "ceil(epochs / 20), at most about 20 evaluations, so that on SOP (150 epochs: every 8) they cost "
        "5-8% of the training time (docs/performance.md: a test evaluation of 60,502 images estimated at "
        "25-40 s on a GPU, vs a 60 s epoch at an assumed 1,000 img/s). Protocol paper evaluates the test "
        "classes every epoch (it selects on them)",
    )
    ks: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    with_nmi: bool = True
    device: str = Field(
        "auto",
        description="auto: CUDA, then MPS, then the CPU; in a study, a trial that Ray gave a GPU stops "
        "instead when torch cannot use CUDA on its node (docs/cluster.md, GPUs); cpu: the CPU, even then",
    )
    amp: bool = Field(True, description="mixed precision on CUDA")

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, epochs: int) -> int:
        if epochs < 0:
            raise ValueError("at least 0 (0: evaluate every method untrained, as built)")
        return epochs

    @model_validator(mode="after")
    def _batch(self) -> TrainingConfig:
        size, per_class = self.batch_size, self.samples_per_class
        if size % per_class:
            lower, upper = size - size % per_class, size - size % per_class + per_class
            nearest = f"{lower} or {upper}" if lower else str(upper)
            raise ValueError(
                f"batch_size {size} must be divisible by samples_per_class {per_class} (a batch holds whole "
                f"groups of {per_class} images per class); use batch_size {nearest}, or change "
                "samples_per_class"
            )
        return self


@functools.cache
def _plain_loss(name: str) -> bool:
    from tasks.methods import build_method

    spec_defaults = {"num_classes": 4, "embedding_dim": 64}
    return build_method(name, **spec_defaults).is_plain_loss


class AdaptationConfig(_Strict):
    """How a trained model adapts to a split's few-shot episodes (docs/protocol.md section 5).

    Declared once for a trial (``FewShotConfig``, which adds the shot budgets) and a study (its
    ``fewshot`` section, which adds the budgets of the whole study). The defaults are the original's
    (``utilities/finetune_utils.finetune_model`` as ``OOD-Study_FewShot.sh`` runs it)."""

    episodes: int | None = Field(None, description="episodes per budget; None: all in the split file")
    mode: Literal["head", "full", "linear_probe"] = Field(
        "head",
        description="head: only the embedding layer trains (the original's --finetune_only_last); full: the "
        "whole model; linear_probe: a freshly initialised embedding layer",
    )
    iterations: dict[int, int] = Field(default_factory=lambda: {2: 1000, 5: 1500, 10: 2000})
    lr_multiplier: float = 10.0
    batch_size: int = Field(112, ge=2, description="support images per step (2 per class)")
    method: str = Field("margin", description="the criterion the support trains with (a fresh one)")
    hyperparameters: dict[str, float | int] = Field(
        default_factory=dict,
        description="the criterion's hyperparameters; unset ones take its defaults, except the margin loss's "
        "beta, which starts at the trained method's own margin beta where it has one (the original's "
        "--loss_margin_beta: 0.6 for S2SD and R-Margin, 1.2 otherwise)",
    )
    loss_parameters: Literal["frozen", "trained"] = Field(
        "frozen",
        description="frozen: the criterion's own parameters (the margin loss's boundaries beta, proxies) keep "
        "their initial values, as the original, whose optimizer holds only the embedding layer; trained: "
        "they train at their own learning rate (earlier oodml versions)",
    )
    support_transform: Literal["train", "eval"] = Field(
        "train",
        description="train: each support image drawn is augmented as in training, and a frozen backbone runs "
        "on it every step (the original); eval: support features computed once with the evaluation "
        "transform (exact for a frozen backbone without augmentation, far cheaper; earlier oodml versions)",
    )
    reweight: bool = Field(
        False,
        description="a weighted block embedding (DiVA): adapt on the weighted concatenation (the original's "
        "--finetune_reweight); false: on the unweighted one, as its script runs. Queries are always "
        "evaluated on the reported (weighted) embedding",
    )

    @model_validator(mode="after")
    def _criterion(self) -> AdaptationConfig:
        from tasks.methods import method_spec

        spec = method_spec(self.method)  # an unknown name is refused with the closest known one
        unknown = sorted(set(self.hyperparameters) - set(spec.hyperparameters))
        if unknown:
            raise ValueError(
                f"method {self.method!r} has no hyperparameter {', '.join(map(repr, unknown))} (fewshot."
                f"hyperparameters); allowed: {', '.join(spec.hyperparameters)}"
            )
        if not _plain_loss(self.method):
            raise ValueError(
                f"method {self.method!r} is more than a loss on the embeddings (hooks, heads or inputs of its "
                "own), which few-shot adaptation does not run: adapt with a plain loss such as 'margin'"
            )
        return self

    @property
    def adaptation(self) -> AdaptationConfig:
        """These settings alone (without what a subclass adds)."""
        return AdaptationConfig.model_validate(self.model_dump(include=set(AdaptationConfig.model_fields)))


class FewShotConfig(AdaptationConfig):
    """A trial's few-shot evaluation: its shot budgets, each adapted as ``AdaptationConfig`` says."""

    shots: list[int] = Field(
        default_factory=list, description="shot budgets to evaluate; [] = zero-shot only"
    )

    @field_validator("shots")
    @classmethod
    def _positive(cls, shots: list[int]) -> list[int]:
        if any(s < 1 for s in shots):
            raise ValueError("shot budgets must be >= 1 (zero-shot results are always recorded)")
        return sorted(set(shots))

    @model_validator(mode="after")
    def _iterations_given(self) -> FewShotConfig:
        missing = [s for s in self.shots if s not in self.iterations]
        if missing:
            message = (
                f"no entry for budgets {missing} (has {sorted(self.iterations)}): give each shot budget its "
                f"number of adaptation steps, e.g. {missing[0]}: 1000"
            )
            raise field_error(FewShotConfig, "iterations", message, self.iterations)
        return self


class HeldoutConfig(_Strict):
    """The held-out half of the test classes (``tasks.splits.heldout``): per test class, a seeded share of
    its images for the oracle to train on, the rest held out; both roles are evaluated on the held-out half."""

    fraction: float = Field(
        0.5, gt=0, lt=1, description="share of each test class's images the oracle trains on"
    )
    seed: int = Field(0, description="seeds the division; the same for every trial seed and role")


class TrialSettings(_Strict):
    """What a trial trains, selects its epoch and adapts with, apart from its data, method and seed: the
    sections a trial config holds and a study sets for each of its methods. The rules across these
    sections are declared here once: a trial config is checked against them (``TrialConfig``), and a study
    spec checks each method's evaluation trial against them (``study.spec.StudySpec.method_settings``), so
    ``oodml trial`` and ``oodml run`` refuse the same settings with the same message."""

    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    fewshot: FewShotConfig = Field(default_factory=FewShotConfig)
    evaluate_test: bool = True

    @model_validator(mode="after")
    def _paper_protocol(self) -> TrialSettings:
        """Protocol ``paper`` selects the epoch on the test classes (docs/protocol.md section 6)."""
        if self.training.protocol != "paper":
            return self
        if not self.evaluate_test:
            message = (
                "'paper' selects the epoch on the test classes, but this trial does not evaluate them "
                "(evaluate_test: false, e.g. a tuning trial); use protocol 'validated'"
            )
            raise field_error(TrialSettings, "training.protocol", message, "paper")
        if self.fewshot.shots:
            message = (
                f"'paper' selects the epoch on the test classes, so adapting to them (shot budgets "
                f"{self.fewshot.shots}) would measure a model chosen on its own queries; few-shot trials and "
                "studies select their base model on validation classes (docs/protocol.md section 5): set "
                "training.protocol: validated, or evaluate zero-shot only (no shot budgets)"
            )
            raise field_error(TrialSettings, "training.protocol", message, "paper")
        return self


TrialRole = Literal["benchmark", "oracle"]


class TrialConfig(_Strict):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    method: MethodConfig
    training: TrainingConfig = TrainingConfig()
    fewshot: FewShotConfig = Field(default_factory=FewShotConfig)
    seed: int = 0
    evaluate_test: bool = Field(True, description="False for tuning trials: validation classes only")
    role: TrialRole = Field(
        "benchmark",
        description="benchmark: train on the split's train classes; oracle: train on the training half of its "
        "test classes (the shift-vs-difficulty control, docs/oracle.md)",
    )
    heldout: HeldoutConfig | None = Field(
        None,
        description="evaluate the selected model on the held-out half of the test classes too (subset "
        "heldout); an oracle needs it. None: no held-out evaluation",
    )
    evaluate_on: list[DataConfig] = Field(
        default_factory=list,
        description="other datasets whose split's test classes the selected model is evaluated on too "
        "(subset cross), through this trial's evaluation transform",
    )
    # A trial's identity: tasks.identity.trial_identity (one function for `oodml trial` and studies).

    @model_validator(mode="after")
    def _settings(self) -> TrialConfig:
        """The rules across the sections (``TrialSettings``), reported at the field to change."""
        TrialSettings(
            model=self.model, training=self.training, fewshot=self.fewshot, evaluate_test=self.evaluate_test
        )
        return self

    @model_validator(mode="after")
    def _oracle(self) -> TrialConfig:
        if self.role == "oracle":
            if self.heldout is None:
                raise ValueError(
                    "role oracle: set heldout (the oracle trains on the training half of the test classes)"
                )
            if not self.evaluate_test or self.fewshot.shots or self.evaluate_on:
                raise ValueError(
                    "role oracle: it is evaluated on the held-out half only: set evaluate_test true, "
                    "fewshot.shots [] and evaluate_on []"
                )
        return self


def method_hyperparameters(config: TrialConfig) -> dict[str, float | int]:
    """The hyperparameters a trial builds its method with beyond the defaults: the config's, plus each
    hyperparameter that mirrors a training setting (``MethodSpec.follows``, e.g. uniformity's
    ``network_lr`` follows ``training.lr``) set to that setting unless the config sets it."""
    from tasks.methods import method_spec

    follows = method_spec(config.method.name).follows
    unknown = sorted(set(follows.values()) - set(TrainingConfig.model_fields))
    if unknown:
        raise ValueError(
            f"method {config.method.name!r}: its MethodSpec.follows names training settings {unknown} that do "
            f"not exist; known: {', '.join(TrainingConfig.model_fields)}"
        )
    mirrored = {k: getattr(config.training, setting) for k, setting in follows.items()}
    return mirrored | dict(config.method.hyperparameters)


def adaptation_hyperparameters(config: TrialConfig) -> dict[str, float | int]:
    """The few-shot criterion's hyperparameters, all of them: its defaults; for the margin loss, beta
    from the trained method's own margin beta (``MethodSpec.margin_beta``: set, or its default), as the
    original adapts with ``--loss_margin_beta``; then ``fewshot.hyperparameters``."""
    from tasks.methods import method_spec

    fs = config.fewshot
    values = method_spec(fs.method).defaults()
    trained = method_spec(config.method.name)
    if fs.method == "margin" and trained.margin_beta is not None:
        beta = trained.margin_beta
        values["beta"] = config.method.hyperparameters.get(beta, trained.hyperparameters[beta].default)
    return values | dict(fs.hyperparameters)


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid."""


def load_trial_config(path: str | Path) -> TrialConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read trial config ({err})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as err:  # one line per field, as `oodml run` reports a study spec
        raise ConfigError(format_errors(err, str(path), TrialConfig, "trial config")) from None
