"""Training one DML model with checkpoint selection and resumable checkpoints.

Protocol ``validated`` (the default): the model trains on the ``split_train`` classes of a split; after
every epoch it is evaluated on the ``split_val`` classes and the best epoch by the selection metric
(Recall@1 + mAP@R by default) is kept; test classes are recorded per epoch but never selected on.
Protocol ``paper``: as the released ooDML code, it trains on all train classes of the split and keeps
the epoch of best test Recall@1, so that numbers compare with the published ones (docs/protocol.md section 6).
The rule that selects is the trial role's (``tasks.roles``, ``tasks.selection``: an oracle keeps its last
epoch).

``train_model`` runs in stages (``_Run``): set up (model, method, optimizer, schedule, AMP scaler, loader),
resume from ``last.pt``, then per epoch: train (``tasks.step.TrainingStep``, the step few-shot adaptation
runs too), evaluate and select, keep (checkpoints).
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tasks.config import TrialConfig, method_hyperparameters
from tasks.data import ClassBalancedBatchSampler, LabelledImages, TwoViews, image_dataset
from tasks.data.cache import atomic_write
from tasks.data.loading import EpochSeeded, loader_options
from tasks.evaluate import retrieval_metrics
from tasks.methods import Method, TrainBatch, build_method
from tasks.metric_names import (
    LEARNING_RATE,
    SELECTION_SCORE,
    TEST,
    TRAIN_LOSS,
    VAL,
    MetricKey,
    keyed,
    subset_metrics,
    term_key,
)
from tasks.models import EmbeddingModel, build_model
from tasks.models.embedding import BlockHead, reweighted, weighting_label
from tasks.roles import trial_role
from tasks.selection import SelectionRule
from tasks.splits.files import Split
from tasks.step import LossLog, TrainingStep, check_every, check_finite
from tasks.step import NonFiniteLossError as NonFiniteLossError  # raised by training (re-exported)

LAST_CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def uses_channels_last(device: torch.device) -> bool:
    """Channels-last convolutions: faster on CUDA and, measured here, 1.3-3.8x on CPU (not MPS)."""
    return device.type in ("cuda", "cpu")


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast("cuda", dtype=torch.float16) if enabled and device.type == "cuda" else nullcontext()


@torch.no_grad()
def embed(
    model: EmbeddingModel,
    images: LabelledImages,
    indices: np.ndarray,
    device: torch.device,
    *,
    features: bool = False,
    batch_size: int = 256,
    num_workers: int = 0,
    amp: bool = False,
) -> np.ndarray:
    """Embeddings (or pooled backbone features) of ``images[indices]`` with the evaluation transform."""
    classes = sorted({images.labels[i] for i in indices})
    dataset = image_dataset(images, indices, model.preprocess, False, {c: k for k, c in enumerate(classes)})
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, **loader_options(device, num_workers))
    model.eval()
    out = []
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        if uses_channels_last(device) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            out.append((model.features(x) if features else model(x)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def evaluate_classes(
    model: EmbeddingModel,
    images: LabelledImages,
    classes: list[str],
    config: TrialConfig,
    device: torch.device,
) -> dict[str, float]:
    """Retrieval metrics over all images of ``classes`` (query = each image, gallery = the others), computed
    on the trial's device (``tasks.evaluate``: same values on every device)."""
    return evaluate_images(model, images, images.indices_of(classes), config, device)


def evaluate_images(
    model: EmbeddingModel,
    images: LabelledImages,
    indices: np.ndarray,
    config: TrialConfig,
    device: torch.device,
) -> dict[str, float]:
    """Retrieval metrics over ``images[indices]`` (query = each image, gallery = the others)."""
    return trial_metrics(*_embedded(model, images, indices, config, device), config, device)


def evaluate_weightings(
    model: EmbeddingModel,
    images: LabelledImages,
    classes: list[str],
    config: TrialConfig,
    device: torch.device,
) -> dict[str | None, dict[str, float]]:
    """Retrieval metrics over all images of ``classes``: of the embedding the model reports (key None) and,
    for a :class:`BlockHead` (DiVA), under each weighting it names (key: ``weighting_label``), from one
    embedding pass (a weighting is a function of the embedding alone: ``reweighted``; the reported one's
    metrics are not computed twice)."""
    embeddings, labels = _embedded(model, images, images.indices_of(classes), config, device)
    found: dict[str | None, dict[str, float]] = {None: trial_metrics(embeddings, labels, config, device)}
    if isinstance(model.head, BlockHead):
        for weights in model.head.weightings:
            if tuple(weights) == tuple(model.head.weights):
                found[weighting_label(weights)] = found[None]
                continue
            weighted = F.normalize(reweighted(torch.from_numpy(embeddings), weights), dim=-1)
            found[weighting_label(weights)] = trial_metrics(weighted.numpy(), labels, config, device)
    return found


def _embedded(
    model: EmbeddingModel,
    images: LabelledImages,
    indices: np.ndarray,
    config: TrialConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings (evaluation transform) and labels of ``images[indices]``."""
    embeddings = embed(
        model, images, indices, device, num_workers=config.data.num_workers, amp=config.training.amp
    )
    return embeddings, np.asarray(images.labels)[indices]


def trial_metrics(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    config: TrialConfig,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Retrieval metrics of embeddings with the trial's cut-offs and NMI setting, on ``device`` (None:
    the embeddings' own)."""
    tc = config.training
    return retrieval_metrics(embeddings, labels, ks=tc.ks, with_nmi=tc.with_nmi, device=device)


def evaluates_test_curve(config: TrialConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) evaluates the test classes: every epoch under protocol ``paper``
    (it selects on them); else, with ``record_test_curve``, every ``test_curve_every`` epochs (None:
    ``ceil(epochs / 20)``, about 20 points) and always the last epoch; never for a trial that does not
    evaluate them (a tuning trial) or whose role does not measure them (an oracle trains on them)."""
    return TEST in evaluated_subsets(config, trial_role(config).selection_rule(config), epoch)


def evaluated_subsets(config: TrialConfig, rule: SelectionRule, epoch: int) -> tuple[str, ...]:
    """The classes epoch ``epoch`` evaluates, validation before test: the selection rule's, and the test
    classes on the test curve (``evaluates_test_curve``)."""
    tc = config.training
    may_test = config.evaluate_test and trial_role(config).measures_test
    every = tc.test_curve_every or math.ceil(tc.epochs / 20)
    on_curve = tc.record_test_curve and ((epoch + 1) % every == 0 or epoch + 1 == tc.epochs)
    wanted = {rule.subset, TEST if may_test and on_curve else None}
    return tuple(s for s in (VAL, TEST) if s in wanted and (s != TEST or may_test))


UNTRAINED_EPOCH = -1  # ``selected_epoch`` of a model evaluated as built (no training)


@dataclass
class TrainResult:
    """A trained model and its history; ``epochs`` is how many it was trained for (0: none, the model as
    built, whose validation record is ``untrained``: ``selected_epoch`` is then ``UNTRAINED_EPOCH``)."""

    model: EmbeddingModel
    history: list[dict] = field(default_factory=list)
    selected_epoch: int = UNTRAINED_EPOCH
    best_score: float = -math.inf
    resumed_from_epoch: int | None = None
    train_seconds: float = 0.0
    epochs: int = 0
    untrained: dict | None = None

    def selected_metrics(self, subset: str) -> dict[str, float]:
        """The selected epoch's (or the untrained model's) metrics of ``subset``, by name."""
        return subset_metrics(self.selected_record(), subset)

    def selected_record(self) -> dict:
        """The selected epoch's record (``val/`` and ``test/`` metrics), or the untrained model's."""
        if self.untrained is not None:
            return self.untrained
        return next(row for row in self.history if row["epoch"] == self.selected_epoch)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unreadable, or holding more than tensors and plain values."""


def save_checkpoint(state: dict, path: Path) -> None:
    with atomic_write(path) as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """``torch.load(weights_only=True)``: tensors and plain values only, so a checkpoint never runs code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1]
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain values, and loading those could "
            f"run code ({reason}); delete it to restart this trial from scratch"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"{path}: cannot read this checkpoint ({err}); delete it to restart this trial from scratch"
        ) from err


def training_classes(config: TrialConfig, split: Split) -> list[str]:
    """The classes a trial trains on: ``split_train`` (protocol ``validated``) or all train classes of the
    split (protocol ``paper``, as the released ooDML code trains)."""
    return list(split.train if config.training.protocol == "paper" else split.split_train)


def selection_score(record: Mapping[str, float], config: TrialConfig) -> float:
    """The score an epoch's row (its ``val/`` and ``test/`` metrics) is selected on under the trial's rule
    (``tasks.selection``; higher is better)."""
    evaluated = {subset: subset_metrics(record, subset) for subset in (VAL, TEST)}
    return (
        trial_role(config).selection_rule(config).score(int(record.get("epoch", UNTRAINED_EPOCH)), evaluated)
    )


def train_model(
    config: TrialConfig,
    images: LabelledImages,
    split: Split,
    workdir: Path,
    on_epoch: Callable[[dict, Path], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train, select the epoch by the trial's selection rule (``tasks.selection``), checkpoint every epoch;
    resumes from ``workdir/last.pt``."""
    tc = config.training
    device = resolve_device(tc.device)
    workdir.mkdir(parents=True, exist_ok=True)
    model, method = _built(config, len(training_classes(config, split)), device)
    if not trains(config, method):
        return _untrained(model, images, split, config, device)
    run = _Run.set_up(config, images, split, model, method, device, workdir)
    result = run.resume()
    if result.resumed_from_epoch is None:
        method.start(model, run.no_grad_batches)
    started = time.perf_counter()
    for epoch in range(result.resumed_from_epoch or 0, tc.epochs):
        record = run.train_epoch(epoch, progress)
        score = run.evaluate(epoch, record)
        run.keep(epoch, record, score, result)
        if on_epoch is not None:
            on_epoch(record, workdir)
    result.train_seconds = time.perf_counter() - started
    result.epochs = tc.epochs
    if (workdir / BEST_WEIGHTS).is_file():
        model.load_state_dict(load_checkpoint(workdir / BEST_WEIGHTS, device)["model"])
    return result


def _built(config: TrialConfig, num_classes: int, device: torch.device) -> tuple[EmbeddingModel, Method]:
    """The model (seeded by the trial's seed) and the method, with the method's own head where it has one,
    on ``device``."""
    torch.manual_seed(config.seed)
    model = build_model(config.model.backbone, config.model.embedding_dim, pretrained=config.model.pretrained)
    method: Method = build_method(
        config.method.name,
        num_classes=num_classes,
        embedding_dim=model.head.out_features,
        variant=config.method.variant,
        **method_hyperparameters(config),
    )
    head = method.embedding_head(model.head.in_features, model.head.out_features)
    if head is not None:
        model.head = head
    model.to(device)
    method.to(device)
    if uses_channels_last(device):
        model.to(memory_format=torch.channels_last)
    return model, method


@dataclass
class ModelForward:
    """A loader's batch through the model into a ``TrainBatch``: images (and a second view) to the device,
    channels-last where faster, backbone and head under autocast (AMP), the backbone without gradient
    while ``warming_up`` (the first ``warmup_epochs``)."""

    model: EmbeddingModel
    method: Method
    device: torch.device
    amp: bool
    warming_up: bool = False

    def __call__(self, items: Sequence[torch.Tensor]) -> TrainBatch:
        device = self.device
        x, y = items[0].to(device, non_blocking=True), items[-1].to(device, non_blocking=True)
        second = items[1].to(device, non_blocking=True) if len(items) == 3 else None
        if uses_channels_last(device) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
            second = second.contiguous(memory_format=torch.channels_last) if second is not None else None
        with _autocast(device, self.amp):
            with torch.no_grad() if self.warming_up else nullcontext():
                if self.method.wants_max_features:
                    features, max_features = self.model.max_pooled_features(x)
                else:
                    features, max_features = self.model.features(x), None
            outputs = self.model.head(features)
        outputs = outputs.float()
        return TrainBatch(
            features=features.float(),
            outputs=outputs,
            embeddings=F.normalize(outputs, dim=-1),
            labels=y,
            max_features=max_features.float() if max_features is not None else None,
            second_view=second,
        )


@dataclass
class _Run:
    """One training's parts, in the stages ``train_model`` runs: set up, resume, per epoch train, evaluate
    and select, keep (checkpoints)."""

    config: TrialConfig
    images: LabelledImages
    split: Split
    model: EmbeddingModel
    method: Method
    device: torch.device
    workdir: Path
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: ClassBalancedBatchSampler
    dataset: Dataset
    loader: DataLoader
    forward: ModelForward
    step: TrainingStep
    rule: SelectionRule

    @classmethod
    def set_up(
        cls,
        config: TrialConfig,
        images: LabelledImages,
        split: Split,
        model: EmbeddingModel,
        method: Method,
        device: torch.device,
        workdir: Path,
    ) -> _Run:
        """Optimizer (Adam), schedule (multi-step), AMP scaler, class-balanced loader and the step."""
        tc = config.training
        optimizer = torch.optim.Adam(
            model.param_groups(tc.lr, tc.head_lr or tc.lr) + method.param_groups(),
            weight_decay=tc.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=tc.lr_milestones, gamma=tc.lr_gamma
        )
        scaler = torch.amp.GradScaler("cuda", enabled=tc.amp and device.type == "cuda")
        sampler, dataset, loader = _training_data(
            config, images, training_classes(config, split), model, method, device
        )
        forward = ModelForward(model, method, device, tc.amp)
        return cls(
            config,
            images,
            split,
            model,
            method,
            device,
            workdir,
            optimizer,
            scheduler,
            scaler,
            sampler,
            dataset,
            loader,
            forward,
            TrainingStep(forward, model, method, optimizer, scaler),
            trial_role(config).selection_rule(config),
        )

    def resume(self) -> TrainResult:
        """The result so far: empty, or the history and selection of ``last.pt`` with every state it
        holds loaded (model, method, optimizer, schedule, scaler)."""
        result = TrainResult(model=self.model)
        last = self.workdir / LAST_CHECKPOINT
        if last.is_file():
            state = load_checkpoint(last, self.device)
            self.model.load_state_dict(state["model"])
            self.method.load_state_dict(state["method"])
            self.method.resume(self.model)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            result.history = list(state["history"])
            result.selected_epoch, result.best_score = state["selected_epoch"], state["best_score"]
            result.resumed_from_epoch = state["epoch"] + 1
        return result

    def no_grad_batches(self) -> Iterator[TrainBatch]:
        """The training batches under ``no_grad`` (``Method.start``)."""
        with torch.no_grad():
            for items in self.loader:
                yield self.forward(items)

    def train_epoch(self, epoch: int, progress: bool) -> dict:
        """Train one epoch (seeded by the trial's seed and the epoch: reproducible on resume); its row:
        epoch, mean loss, each named term's mean and the learning rate it ends at."""
        config, tc = self.config, self.config.training
        self.forward.warming_up = epoch < tc.warmup_epochs
        self.sampler.set_epoch(epoch)
        torch.manual_seed(config.seed * 1_000_003 + epoch)  # augmentation randomness, reproducible on resume
        if isinstance(self.dataset, EpochSeeded):
            self.dataset.set_seed(config.seed * 1_000_003 + epoch)
        self.model.train()
        losses = LossLog(
            len(self.sampler),
            self.device,
            partial(_check_finite, epoch=epoch, config=config),
            check_every(self.device),
        )
        for items in _progress(self.loader, progress, f"epoch {epoch + 1}/{tc.epochs}"):
            self.step(items, losses)
        losses.finish()
        self.method.end_epoch()
        self.scheduler.step()
        return {
            "epoch": epoch,
            TRAIN_LOSS.key: losses.mean(),
            **{term_key(name).key: value for name, value in losses.term_means().items()},
            LEARNING_RATE: self.optimizer.param_groups[0]["lr"],
        }

    def evaluate(self, epoch: int, record: dict) -> float:
        """Evaluate the classes this epoch evaluates into its row, and the epoch's selection score (the
        rule's subset's score is recorded as ``<subset>/selection_score``)."""
        evaluated = {
            subset: evaluate_classes(self.model, self.images, self._classes(subset), self.config, self.device)
            for subset in evaluated_subsets(self.config, self.rule, epoch)
        }
        for subset, metrics in evaluated.items():
            record.update(keyed(subset, metrics))
        score = self.rule.score(epoch, evaluated)
        if self.rule.subset is not None:
            record[MetricKey(self.rule.subset, SELECTION_SCORE).key] = score
        return score

    def _classes(self, subset: str) -> list[str]:
        return list(self.split.split_val if subset == VAL else self.split.test)

    def keep(self, epoch: int, record: dict, score: float, result: TrainResult) -> None:
        """Append the row; keep the weights of a better epoch (a tie keeps the earlier) in ``best.pt`` and
        every state in ``last.pt``."""
        if score > result.best_score:
            result.best_score, result.selected_epoch = score, epoch
            save_checkpoint({"model": self.model.state_dict(), "epoch": epoch}, self.workdir / BEST_WEIGHTS)
        result.history.append(record)
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": epoch,
                "history": result.history,
                "selected_epoch": result.selected_epoch,
                "best_score": result.best_score,
            },
            self.workdir / LAST_CHECKPOINT,
        )


def _training_data(
    config: TrialConfig,
    images: LabelledImages,
    classes: list[str],
    model: EmbeddingModel,
    method: Method,
    device: torch.device,
) -> tuple[ClassBalancedBatchSampler, Dataset, DataLoader]:
    """The class-balanced sampler over the images of ``classes``, the augmented dataset (two views for a
    method that wants them) and its loader."""
    tc = config.training
    train_indices = images.indices_of(classes)
    label_index = {c: i for i, c in enumerate(classes)}
    labels = [label_index[images.labels[i]] for i in train_indices]
    iterations = tc.iterations_per_epoch or max(1, len(train_indices) // tc.batch_size)
    sampler = ClassBalancedBatchSampler(
        labels,
        tc.batch_size,
        tc.samples_per_class,
        seed=config.seed,
        num_batches=iterations,
        replacement=tc.class_sampling == "with_replacement",
    )
    dataset = image_dataset(images, train_indices, model.preprocess, True, label_index)
    if method.wants_second_view:
        dataset = TwoViews(dataset)
    options = loader_options(device, config.data.num_workers, persistent=True)
    if options.get("persistent_workers"):  # workers outlive an epoch: reseed them per epoch (EpochSeeded)
        dataset = EpochSeeded(dataset)
    return sampler, dataset, DataLoader(dataset, batch_sampler=sampler, **options)


def _check_finite(losses: torch.Tensor, start: int, stop: int, epoch: int, config: TrialConfig) -> None:
    """Raise ``NonFiniteLossError`` naming the first non-finite loss among steps ``start:stop`` of epoch
    ``epoch``."""
    check_finite(
        losses,
        start,
        stop,
        lambda step: (
            f"at epoch {epoch}, step {step} of method {config.method.name!r}: lower the learning "
            f"rate or check the hyperparameters {dict(config.method.hyperparameters)}"
        ),
    )


def trains(config: TrialConfig, method: Method) -> bool:
    """Whether the trial trains at all: not with ``training.epochs: 0`` (every method is then evaluated
    as built: pretrained backbone, initial head) nor for a method that never trains (``frozen``)."""
    return config.training.epochs > 0 and method.trains


def _untrained(
    model: EmbeddingModel, images: LabelledImages, split: Split, config: TrialConfig, device: torch.device
) -> TrainResult:
    """The model as built, with no epoch and no optimizer step: nothing is selected, no checkpoint is
    written (its weights are the backbone's published ones and the method's initial head), and its
    validation metrics (a rule that selects on them) stand where the selected epoch's would."""
    record: dict = {"epoch": UNTRAINED_EPOCH}
    rule = trial_role(config).selection_rule(config)
    if rule.subset == VAL:
        record.update(keyed(VAL, evaluate_classes(model, images, split.split_val, config, device)))
        record[MetricKey(VAL, SELECTION_SCORE).key] = selection_score(record, config)
    return TrainResult(model=model, untrained=record)


def _progress(iterable, enabled: bool, description: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=description, leave=False)
