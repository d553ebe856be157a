"""The trial record: what one trial produced, as typed data (frozen dataclasses).

``run_trial`` returns a ``TrialRecord``; a trial that failed is the same type with its ``error`` and the
identity known before it ran. Downstream, exactly one function turns a record into result rows
(``study.results.schema.record_rows``) and one into an MLflow run's content
(``study.tracking.tracker.run_content``); nothing parses key strings. A record crosses process
boundaries (a Ray worker to the driver) and is stored (MLflow's ``record.json``) as JSON:
``to_json`` / ``from_json``.

Adding a measurement (a new metric from ``tasks.evaluate``) needs no change here nor downstream: it is
one more ``Measurement``. Adding a field is a change here and in its producer (``tasks.trial``); the
results rows copy identity fields by name (each is a column of the results schema).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NamedTuple, TypedDict

RECORD_VERSION = 2  # 1: the flat dict of slash-encoded keys (round 1); 2: this typed record
# val, test: the split's validation and test classes; heldout: the held-out half of the test classes (the
# oracle's comparison, tasks.splits.heldout); cross: another dataset's test classes (``eval_dataset``).
SUBSETS = ("val", "test", "heldout", "cross")
KINDS = ("zeroshot", "fewshot")
STATUSES = ("completed", "failed")
# An identity field that is also a quantity (one plots results against it): it appears among the scalars.
_QUANTITY = {"quantity": True}


@dataclass(frozen=True)
class TrialIdentity:
    """What a trial is: its id (``tasks.identity.trial_identity``, known before it runs) and the fields
    that say which dataset, split, method, model and seed it ran. A failed trial holds what was known
    (fields it never reached are None). Every field is a column of the results table."""

    trial_id: str
    dataset: str | None = None
    split_id: int | None = None
    split_key: str | None = None
    split_progression: str | None = None
    split_hash: str | None = None
    fid: float | None = field(default=None, metadata=_QUANTITY)
    num_train_classes: int | None = field(default=None, metadata=_QUANTITY)
    num_test_classes: int | None = field(default=None, metadata=_QUANTITY)
    # the split's shift measures beyond FID (``tasks.splits.shift``: ``mmd``, ``fid@<extractor>``); None
    # for a split file written before them
    shift: dict[str, float] | None = None
    method: str | None = None  # the label: ``name``, or ``name[variant]`` for a non-default variant
    method_name: str | None = None
    method_variant: str | None = None  # resolved: the method's default variant when the config says none
    backbone: str | None = None
    embedding_dim: int | None = None
    seed: int | None = None
    epochs: int | None = None  # trained for; 0 for a trial that does not train
    protocol: str | None = None
    trial_role: str | None = "benchmark"  # or "oracle": trained on the test classes (docs/oracle.md)
    # the reported embedding's weighting where it is a weighted concatenation of blocks (DiVA:
    # ``0.75-1.25-1.25-1.25``); None for a single embedding
    reported_weighting: str | None = None
    # the few-shot criterion and all its hyperparameters (``tasks.config.adaptation_hyperparameters``: the
    # margin loss's beta from the trained method's); None without few-shot budgets
    fewshot_method: str | None = None
    fewshot_hyperparameters: dict[str, float] | None = None


@dataclass(frozen=True)
class Measurement:
    """One number a trial measured: a metric on a subset, at a shot budget (0: all images), of a kind.

    Few-shot measurements (``shots > 0``) are means over episodes with the half-width of their 95%
    Student-t interval (``ci95``), the number of ``episodes`` scored, the test classes ``left_out_classes``
    of the budget's episodes, the ``support`` kind and why a value is NaN (``nan_reason``). Held-out
    measurements count the test classes too small to divide in ``left_out_classes``; cross-dataset ones
    name the dataset whose test classes they were measured on (``eval_dataset``). A method whose embedding
    is a weighted concatenation of blocks (DiVA) reports one weighting (``weighting`` None, the rows every
    aggregate reads) and records each weighting the original evaluates apart, named (``1-1-1-1``)."""

    subset: str
    metric: str
    value: float
    shots: int = 0
    kind: str = "zeroshot"
    ci95: float | None = None
    episodes: int | None = None
    left_out_classes: int | None = None
    support: str | None = None
    nan_reason: str | None = None
    eval_dataset: str | None = None
    weighting: str | None = None

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS or self.kind not in KINDS:
            raise ValueError(f"measurement {self}: subset must be one of {SUBSETS}, kind one of {KINDS}")
        if (self.subset == "cross") != (self.eval_dataset is not None):
            raise ValueError(f"measurement {self}: subset cross, and only it, names its eval_dataset")
        if self.shots == 0 and self.kind != "zeroshot":
            raise ValueError(f"measurement {self}: without shots it can only be zeroshot")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValueError(f"measurement {self.metric!r} holds {self.value!r}, not a number")

    @property
    def name(self) -> str:
        """A display name (``test/recall@1``, ``fewshot/2/fewshot/recall@1``): for people and MLflow keys;
        never parsed back."""
        if self.weighting is not None:
            return f"{self.subset}/weighting/{self.weighting}/{self.metric}"
        if self.subset == "cross":
            return f"cross/{self.eval_dataset}/{self.metric}"
        if self.shots == 0:
            return f"{self.subset}/{self.metric}"
        return f"fewshot/{self.shots}/{self.kind}/{self.metric}"


class MeanCI(NamedTuple):
    """A mean over episodes and the half-width of its 95% Student-t interval (NaN for fewer than 2)."""

    mean: float
    ci95: float


class FewShotResult(TypedDict):
    """One shot budget's few-shot evaluation (``tasks.fewshot.evaluate_fewshot``): ``episodes`` scored,
    ``support`` (``images`` or ``classes``), the test classes ``left_out_classes`` of any of its episodes
    (sorted), why a mean or interval is NaN (``nan_reason``; None when none is), and per kind (``fewshot``:
    the adapted model, ``zeroshot``: the unadapted one on the same queries) metric -> ``MeanCI``."""

    episodes: int
    support: str
    left_out_classes: list[str]
    nan_reason: str | None
    fewshot: dict[str, MeanCI]
    zeroshot: dict[str, MeanCI]


def fewshot_measurements(results: Mapping[int, FewShotResult]) -> list[Measurement]:
    """The measurements of few-shot results: per budget, kind (few-shot, then zero-shot) and metric."""
    found = []
    for shots, result in results.items():
        budget = {
            "episodes": result["episodes"],
            "left_out_classes": len(result["left_out_classes"]),
            "support": result["support"],
            "nan_reason": result["nan_reason"],
        }
        for kind, means in (("fewshot", result["fewshot"]), ("zeroshot", result["zeroshot"])):
            for metric, (mean, ci) in means.items():
                found.append(Measurement("test", metric, mean, shots, kind, ci, **budget))
    return found


@dataclass(frozen=True)
class Curves:
    """Per-epoch values (train loss, lr, validation and test metrics), aligned on ``epochs``."""

    epochs: tuple[int, ...] = ()
    values: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, series in self.values.items():
            if len(series) != len(self.epochs):
                raise ValueError(f"curve {key!r} has {len(series)} values for {len(self.epochs)} epochs")

    @classmethod
    def from_history(cls, history: Iterable[Mapping[str, Any]]) -> Curves:
        """From per-epoch rows (``{"epoch": e, "train/loss": ..., ...}``, as ``tasks.train`` keeps them)."""
        rows = list(history)
        keys = list(dict.fromkeys(k for row in rows for k in row if k != "epoch"))
        return cls(
            tuple(int(row["epoch"]) for row in rows),
            {k: tuple(row.get(k) for row in rows) for k in keys},
        )


@dataclass(frozen=True)
class Timings:
    train_s: float | None = None
    test_eval_s: float | None = None
    fewshot_s: float | None = None
    total_s: float | None = None


@dataclass(frozen=True)
class Environment:
    """Where the trial ran: package versions, the torch device it used and its threads; under Ray, the GPU
    ids Ray gave it (``()``: none; None: not run by Ray) and ``CUDA_VISIBLE_DEVICES`` as the trial saw it
    (None: unset). The study's trainable fills the last two: ``tasks`` knows nothing of Ray."""

    versions: Mapping[str, str] = field(default_factory=dict)
    device: str | None = None
    torch_threads: int | None = None
    ray_gpu_ids: tuple[str, ...] | None = None
    cuda_visible_devices: str | None = None


@dataclass(frozen=True)
class TrialRecord:
    """Everything one trial produced (docs/results-schema.md, docs/architecture.md)."""

    identity: TrialIdentity
    status: str = "completed"
    error: str | None = None
    hyperparameters: Mapping[str, float | int] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)  # the resolved trial config (JSON data)
    measurements: tuple[Measurement, ...] = ()
    curves: Curves = Curves()
    selected_epoch: int | None = None  # -1: no training, the model as built
    resumed_from_epoch: int | None = None
    test_selected_epoch: int | None = None  # what selecting on test Recall@1 would pick (never used)
    test_selected_recall_at_1: float | None = None
    timings: Timings = Timings()
    environment: Environment = Environment()
    checkpoint: str | None = None  # the selected weights where the trial ran; None without training
    record_version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.identity.trial_id, str) or not self.identity.trial_id:
            raise ValueError(f"a trial record needs a trial id, got {self.identity.trial_id!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "failed") != bool(self.error):
            raise ValueError(f"trial {self.trial_id}: a failed record needs its error, a completed one none")

    @classmethod
    def failed(cls, identity: TrialIdentity, error: str, **known: Any) -> TrialRecord:
        """A trial that produced no result: its identity as far as known, and why."""
        return cls(identity=identity, status="failed", error=error, **known)

    @property
    def trial_id(self) -> str:
        return self.identity.trial_id

    def measurement(
        self, subset: str, metric: str, shots: int = 0, kind: str = "zeroshot", weighting: str | None = None
    ) -> float | None:
        """The value of one measurement (of the reported embedding unless ``weighting`` names another), or
        None if the trial did not record it."""
        found = [
            m.value
            for m in self.measurements
            if (m.subset, m.metric, m.shots, m.kind, m.weighting) == (subset, metric, shots, kind, weighting)
        ]
        return found[0] if found else None

    @property
    def shots(self) -> tuple[int, ...]:
        """The budgets measured: 0 when test classes were evaluated on all images, then each few-shot one."""
        return tuple(sorted({m.shots for m in self.measurements if m.subset == "test"}))

    def scalars(self) -> dict[str, Any]:
        """What the trial measured, flat, under display names (``test/recall@1``,
        ``fewshot/2/fewshot/recall@1/ci95``, ``time/train_s``, ...), with the identity's quantities (FID,
        class counts): MLflow logs the numbers among them as metrics, ``oodml trial`` prints them."""
        out: dict[str, Any] = {
            f.name: getattr(self.identity, f.name)
            for f in fields(self.identity)
            if f.metadata.get("quantity")
        }
        for m in self.measurements:
            out[m.name] = m.value
            if m.shots:
                out[f"{m.name}/ci95"] = m.ci95
                budget = f"fewshot/{m.shots}"
                for key in ("episodes", "left_out_classes", "support", "nan_reason"):
                    out[f"{budget}/{key}"] = getattr(m, key)
            elif m.subset == "heldout":
                out["heldout/left_out_classes"] = m.left_out_classes
        for name in ("selected_epoch", "resumed_from_epoch", "test_selected_epoch"):
            out[name] = getattr(self, name)
        out["test_selected/recall@1"] = self.test_selected_recall_at_1
        out |= {f"time/{k}": v for k, v in asdict(self.timings).items()}
        out["torch_threads"] = self.environment.torch_threads
        out |= {f"shift/{name}": value for name, value in (self.identity.shift or {}).items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """The inverse of ``to_dict``; refuses a record of another version (round 1's flat dicts were
        never read back: resume reads the results table, not records)."""
        version = data.get("record_version")
        if version != RECORD_VERSION:
            raise ValueError(
                f"trial record version {version!r}: this oodml reads version {RECORD_VERSION} records "
                f"(keys: {sorted(data)[:8]})"
            )
        parts = dict(data)
        parts["identity"] = TrialIdentity(**parts["identity"])
        parts["measurements"] = tuple(Measurement(**m) for m in parts.get("measurements", ()))
        curves = parts.get("curves") or {}
        parts["curves"] = Curves(
            tuple(curves.get("epochs", ())), {k: tuple(v) for k, v in curves.get("values", {}).items()}
        )
        parts["timings"] = Timings(**(parts.get("timings") or {}))
        environment = dict(parts.get("environment") or {})  # older records lack the GPU fields: defaults
        if environment.get("ray_gpu_ids") is not None:
            environment["ray_gpu_ids"] = tuple(environment["ray_gpu_ids"])
        parts["environment"] = Environment(**environment)
        return cls(**parts)

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        return cls.from_dict(json.loads(text))

    def with_identity(self, **changes: Any) -> TrialRecord:
        return replace(self, identity=replace(self.identity, **changes))


def identity_fields() -> list[str]:
    """The identity's field names, in order (the results table's identity columns hold them)."""
    return [f.name for f in fields(TrialIdentity)]
