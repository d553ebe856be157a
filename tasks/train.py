"""Training one DML model with checkpoint selection and resumable checkpoints.

Protocol ``validated`` (the default): the model trains on the ``split_train`` classes of a split; after
every epoch it is evaluated on the ``split_val`` classes and the best epoch by the selection metric
(Recall@1 + mAP@R by default) is kept; test classes are recorded per epoch but never selected on.
Protocol ``paper``: as the released ooDML code, it trains on all train classes of the split and keeps
the epoch of best test Recall@1, so that numbers compare with the published ones (docs/protocol.md section 6).
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tasks.config import TrialConfig, method_hyperparameters
from tasks.data import ClassBalancedBatchSampler, LabelledImages, TwoViews, image_dataset
from tasks.data.cache import atomic_write
from tasks.data.loading import EpochSeeded, loader_options
from tasks.evaluate import retrieval_metrics
from tasks.methods import Method, TrainBatch, build_method
from tasks.models import EmbeddingModel, build_model
from tasks.models.embedding import BlockHead, reweighted, weighting_label
from tasks.splits.files import Split

LAST_CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _channels_last(device: torch.device) -> bool:
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
        if _channels_last(device) and x.dim() == 4:
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
    return _metrics(*_embedded(model, images, indices, config, device), config, device)


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
    found: dict[str | None, dict[str, float]] = {None: _metrics(embeddings, labels, config, device)}
    if isinstance(model.head, BlockHead):
        for weights in model.head.weightings:
            if tuple(weights) == tuple(model.head.weights):
                found[weighting_label(weights)] = found[None]
                continue
            weighted = F.normalize(reweighted(torch.from_numpy(embeddings), weights), dim=-1)
            found[weighting_label(weights)] = _metrics(weighted.numpy(), labels, config, device)
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


def _metrics(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    config: TrialConfig,
    device: torch.device,
) -> dict[str, float]:
    """Retrieval metrics of embeddings with the trial's cut-offs and NMI setting."""
    tc = config.training
    return retrieval_metrics(embeddings, labels, ks=tc.ks, with_nmi=tc.with_nmi, device=device)


def evaluates_test_curve(config: TrialConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) evaluates the test classes: every epoch under protocol ``paper``
    (it selects on them); else, with ``record_test_curve``, every ``test_curve_every`` epochs (None:
    ``ceil(epochs / 20)``, about 20 points) and always the last epoch."""
    tc = config.training
    if not config.evaluate_test or config.role == "oracle":  # an oracle trains on the test classes
        return False
    if tc.protocol == "paper":
        return True
    every = tc.test_curve_every or math.ceil(tc.epochs / 20)
    return tc.record_test_curve and ((epoch + 1) % every == 0 or epoch + 1 == tc.epochs)


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


def _selection_score(metrics: dict[str, float], names: list[str]) -> float:
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(f"selection metric(s) {missing} not computed; available: {sorted(metrics)}")
    return float(sum(metrics[n] for n in names))


PAPER_SELECTION = ["recall@1"]  # the released ooDML code keeps the epoch of best test Recall@1


def training_classes(config: TrialConfig, split: Split) -> list[str]:
    """The classes a trial trains on: ``split_train`` (protocol ``validated``) or all train classes of the
    split (protocol ``paper``, as the released ooDML code trains)."""
    return list(split.train if config.training.protocol == "paper" else split.split_train)


def selection_subset(config: TrialConfig) -> str:
    """The classes the epoch is selected on: ``val`` (protocol ``validated``) or ``test`` (``paper``)."""
    return "test" if config.training.protocol == "paper" else "val"


def selects_last_epoch(config: TrialConfig) -> bool:
    """An oracle keeps its last epoch: its classes are the test classes, so no classes are left to
    validate on, and selecting on its held-out half would choose on its own evaluation (docs/oracle.md)."""
    return config.role == "oracle"


def selection_score(record: dict[str, float], config: TrialConfig) -> float:
    """The score an epoch is selected on (higher is better), from one epoch's record of ``val/`` and
    ``test/`` metrics: ``selection_metric`` summed over the validation classes (protocol ``validated``),
    or test Recall@1 (protocol ``paper``: what the published numbers were selected on)."""
    subset = selection_subset(config)
    names = PAPER_SELECTION if subset == "test" else config.training.selection_metric
    prefix = f"{subset}/"
    return _selection_score({k[len(prefix) :]: v for k, v in record.items() if k.startswith(prefix)}, names)


def train_model(
    config: TrialConfig,
    images: LabelledImages,
    split: Split,
    workdir: Path,
    on_epoch: Callable[[dict, Path], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train, select the epoch as ``training.protocol`` says, checkpoint every epoch; resumes from
    ``workdir/last.pt``."""
    tc = config.training
    if tc.protocol == "paper" and not config.evaluate_test:
        raise ValueError(
            "training.protocol 'paper' selects the epoch on the test classes, but this trial does not "
            "evaluate them (evaluate_test: false, e.g. a tuning trial); use protocol 'validated'"
        )
    device = resolve_device(tc.device)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_model(config.model.backbone, config.model.embedding_dim, pretrained=config.model.pretrained)
    classes = training_classes(config, split)
    method: Method = build_method(
        config.method.name,
        num_classes=len(classes),
        embedding_dim=model.head.out_features,
        variant=config.method.variant,
        **method_hyperparameters(config),
    )
    head = method.embedding_head(model.head.in_features, model.head.out_features)
    if head is not None:
        model.head = head
    model.to(device)
    method.to(device)
    if _channels_last(device):
        model.to(memory_format=torch.channels_last)
    if not trains(config, method):
        return _untrained(model, images, split, config, device)
    optimizer = torch.optim.Adam(
        model.param_groups(tc.lr, tc.head_lr or tc.lr) + method.param_groups(), weight_decay=tc.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=tc.lr_milestones, gamma=tc.lr_gamma
    )
    scaler = torch.amp.GradScaler("cuda", enabled=tc.amp and device.type == "cuda")

    result = TrainResult(model=model)
    last = workdir / LAST_CHECKPOINT
    start_epoch = 0
    if last.is_file():
        state = load_checkpoint(last, device)
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        method.resume(model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        result.history = list(state["history"])
        result.selected_epoch, result.best_score = state["selected_epoch"], state["best_score"]
        start_epoch = result.resumed_from_epoch = state["epoch"] + 1

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
    loader = DataLoader(dataset, batch_sampler=sampler, **options)

    warming_up = False  # the first ``warmup_epochs``: the backbone runs without gradient

    def step_batch(items: list[torch.Tensor]) -> TrainBatch:
        x, y = items[0].to(device, non_blocking=True), items[-1].to(device, non_blocking=True)
        second = items[1].to(device, non_blocking=True) if len(items) == 3 else None
        if _channels_last(device) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
            second = second.contiguous(memory_format=torch.channels_last) if second is not None else None
        with _autocast(device, tc.amp):
            with torch.no_grad() if warming_up else nullcontext():
                if method.wants_max_features:
                    features, max_features = model.max_pooled_features(x)
                else:
                    features, max_features = model.features(x), None
            outputs = model.head(features)
        outputs = outputs.float()
        return TrainBatch(
            features=features.float(),
            outputs=outputs,
            embeddings=torch.nn.functional.normalize(outputs, dim=-1),
            labels=y,
            max_features=max_features.float() if max_features is not None else None,
            second_view=second,
        )

    def no_grad_batches():
        with torch.no_grad():
            for items in loader:
                yield step_batch(items)

    if start_epoch == 0:
        method.start(model, no_grad_batches)

    # Reading a loss or the AMP scale back (.item(), a tensor's truth value) waits for the device: on CUDA
    # the losses stay on the device and are checked every CHECK_EVERY steps (the error still names the
    # first non-finite step), and the scale is read only for a method whose after_step does something.
    check_every = 1 if device.type == "cpu" else CHECK_EVERY
    skip_check = scaler.is_enabled() and type(method).after_step is not Method.after_step
    started = time.perf_counter()
    for epoch in range(start_epoch, tc.epochs):
        warming_up = epoch < tc.warmup_epochs
        sampler.set_epoch(epoch)
        torch.manual_seed(config.seed * 1_000_003 + epoch)  # augmentation randomness, reproducible on resume
        if isinstance(dataset, EpochSeeded):
            dataset.set_seed(config.seed * 1_000_003 + epoch)
        model.train()
        losses = torch.zeros(len(sampler), device=device)
        terms: dict[str, list[torch.Tensor]] = {}  # a composite method's named terms, per step
        checked = 0
        batches = _progress(loader, progress, f"epoch {epoch + 1}/{tc.epochs}")
        for step, items in enumerate(batches):
            loss = method.training_loss(step_batch(items))
            losses[step] = loss.detach()
            for name, value in method.terms.items():
                terms.setdefault(name, []).append(value)
            if step + 1 - checked >= check_every:
                _check_finite(losses, checked, step + 1, epoch, config)
                checked = step + 1
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scale = scaler.get_scale() if skip_check else None
            scaler.step(optimizer)
            scaler.update()
            if not skip_check or scaler.get_scale() >= scale:  # a lowered scale: step skipped
                method.after_step(model)
        _check_finite(losses, checked, len(losses), epoch, config)
        method.end_epoch()
        scheduler.step()

        record = {
            "epoch": epoch,
            "train/loss": losses.double().mean().item(),
            **{f"train/loss/{name}": torch.stack(v).double().mean().item() for name, v in terms.items()},
            "lr": optimizer.param_groups[0]["lr"],
        }
        if selects_last_epoch(config):
            score = float(epoch)
        else:
            if tc.protocol == "validated":
                val = evaluate_classes(model, images, split.split_val, config, device)
                record.update({f"val/{k}": v for k, v in val.items()})
            if evaluates_test_curve(config, epoch):
                test = evaluate_classes(model, images, split.test, config, device)
                record.update({f"test/{k}": v for k, v in test.items()})
            score = selection_score(record, config)
            record[f"{selection_subset(config)}/selection_score"] = score
        if score > result.best_score:
            result.best_score, result.selected_epoch = score, epoch
            save_checkpoint({"model": model.state_dict(), "epoch": epoch}, workdir / BEST_WEIGHTS)
        result.history.append(record)
        save_checkpoint(
            {
                "model": model.state_dict(),
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "history": result.history,
                "selected_epoch": result.selected_epoch,
                "best_score": result.best_score,
            },
            last,
        )
        if on_epoch is not None:
            on_epoch(record, workdir)
    result.train_seconds = time.perf_counter() - started
    result.epochs = tc.epochs
    if (workdir / BEST_WEIGHTS).is_file():
        model.load_state_dict(load_checkpoint(workdir / BEST_WEIGHTS, device)["model"])
    return result


CHECK_EVERY = 32  # steps between reads of the losses on an accelerator (one wait for the device each)


def _check_finite(losses: torch.Tensor, start: int, stop: int, epoch: int, config: TrialConfig) -> None:
    """Raise ``NonFiniteLossError`` naming the first non-finite loss among steps ``start:stop``."""
    bad = torch.nonzero(~torch.isfinite(losses[start:stop])).flatten().tolist()
    if bad:
        step = start + bad[0]
        raise NonFiniteLossError(
            f"non-finite loss ({losses[step].item()}) at epoch {epoch}, step {step} of method "
            f"{config.method.name!r}: lower the learning rate or check the hyperparameters "
            f"{dict(config.method.hyperparameters)}"
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
    validation metrics (protocol ``validated``) stand where the selected epoch's would."""
    record: dict = {"epoch": UNTRAINED_EPOCH}
    if config.training.protocol == "validated" and not selects_last_epoch(config):
        val = evaluate_classes(model, images, split.split_val, config, device)
        record.update({f"val/{k}": v for k, v in val.items()})
        record["val/selection_score"] = selection_score(record, config)
    return TrainResult(model=model, untrained=record)


def _progress(iterable, enabled: bool, description: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=description, leave=False)
