"""Few-shot adaptation on a split's episodes, against the unadapted model on the same queries.

docs/protocol.md section 5: per episode, ``shots`` support images of each test class adapt a copy of the
selected model as the original's ``finetune_model`` does by default: only the embedding layer trains
(``mode: head``), with a fresh margin loss and distance-weighted sampling whose boundary beta starts at
the trained method's own margin beta and stays there (the criterion's parameters are not optimised,
``loss_parameters: frozen``), Adam at 10x the training learning rate, each support image augmented as in
training whenever it is drawn; the rest of each class's images are the queries. The same queries are
embedded by the unadapted model for the zero-shot reference. Results are the mean and the 95% Student-t
confidence interval over episodes.

A query's gallery is the other queries, so a class must keep ``MIN_QUERY_IMAGES`` (2) images as
queries: with one, that query has no positive (Recall@1 = 0, mAP@R undefined). A test class with fewer
than ``images_needed(shots)`` images is left out of that budget's episodes, support and queries, and
counted (``left_out_classes``); the study preflight refuses such a budget instead when the spec says
``small_classes: fail``, by the same threshold (``too_small_classes``). A budget that no episode can
score (fewer than 2 query classes left) has NaN metrics and says why (``nan_reason``).

In ``head`` and ``linear_probe`` modes the backbone is frozen, so its pooled features of every test
image are computed once (evaluation transform) for the queries; the support runs through the frozen
backbone at every step, augmented (``support_transform: train``), or its cached features serve the
steps too (``support_transform: eval``: exact for a frozen backbone without augmentation, hundreds of
times cheaper). A block embedding (DiVA) adapts on its unweighted concatenation unless ``reweight``, as
the original's script, and is scored on its reported weighting.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader

from tasks.config import FewShotConfig, TrialConfig, adaptation_hyperparameters
from tasks.data import ClassBalancedBatchSampler, LabelledImages, image_dataset
from tasks.data.loading import loader_options
from tasks.methods import Method, TrainBatch, build_method
from tasks.metric_names import metric_names as retrieval_metric_names
from tasks.models import EmbeddingModel
from tasks.models.embedding import BlockHead
from tasks.record import FewShotResult, MeanCI
from tasks.splits.episodes import (
    MIN_QUERY_IMAGES,
    Episode,
    images_needed,
    is_whole_class,
    too_small,
)
from tasks.splits.files import Split
from tasks.step import LossLog, TrainingStep, check_every, check_finite
from tasks.train import embed, trial_metrics, uses_channels_last

# Retrieval within a single class is trivially perfect and its NMI meaningless: an episode needs two.
MIN_QUERY_CLASSES = 2


def mean_ci95(values: Sequence[float]) -> MeanCI:
    """Mean over episodes and the half-width of its 95% Student-t interval, ``t(0.975, n-1) s / sqrt(n)``
    with the sample standard deviation ``s`` (ddof 1); the half-width is NaN for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return MeanCI(float(values.mean()) if len(values) else float("nan"), float("nan"))
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return MeanCI(float(values.mean()), float(half))


@dataclass(frozen=True)
class EpisodeImages:
    """An episode resolved on a dataset: disjoint support and query image indices, and the test classes
    in neither (too small for the budget, or not named by the episode), sorted."""

    support: np.ndarray
    query: np.ndarray
    left_out: list[str]


def episode_images(images: LabelledImages, episode: Episode, test_classes: Sequence[str]) -> EpisodeImages:
    """Support and query image indices of an episode, leaving out the classes that cannot give 2 queries.

    Per-image support: files are matched by image id, or by base name within their class (ooDML pickles
    store base names); the queries are the other images of the episode's classes. A class with fewer
    than ``images_needed(shots)`` images is left out, as is a test class the episode does not name (a
    split file built with a smaller threshold, or an ooDML file). Whole-class support: every image of the
    episode's classes; the queries are the images of the other test classes that hold at least 2.
    """
    by_class = images.indices_by_class()
    if is_whole_class(episode):
        unknown = sorted(set(test_classes) - set(by_class))
        if unknown:
            raise ValueError(f"episode names classes {unknown[:3]}, which are not in dataset {images.name}")
        chosen = set(episode)
        support = [i for c in sorted(chosen) for i in by_class[c]]
        others = sorted(set(test_classes) - chosen)
        left_out = [c for c in others if too_small(len(by_class[c]), 0)]
        query = [i for c in others if c not in left_out for i in by_class[c]]
        return EpisodeImages(_indices(support), _indices(query), left_out)
    support, query, left_out = [], [], []
    for class_name, files in episode.items():
        members = by_class.get(class_name)
        if members is None:
            raise ValueError(f"episode names class {class_name!r}, which is not in dataset {images.name}")
        lookup = {}
        for i in members:
            image_id = images.image_ids[i]
            lookup[image_id] = i
            lookup.setdefault(PurePosixPath(image_id).name, i)
        try:
            chosen = {lookup[f] for f in files}
        except KeyError as err:
            raise ValueError(
                f"episode support image {err} of class {class_name!r} is not in {images.root}"
            ) from None
        if too_small(len(members), len(chosen)):
            left_out.append(class_name)
            continue
        support += sorted(chosen)
        query += [i for i in members if i not in chosen]
    left_out += [c for c in test_classes if c not in episode]
    return EpisodeImages(_indices(support), _indices(query), sorted(set(left_out)))


def _indices(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def resolve_episode(
    images: LabelledImages, episode: Episode, test_classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Support and query image indices of an episode (``episode_images`` without its left-out classes)."""
    resolved = episode_images(images, episode, test_classes)
    return resolved.support, resolved.query


def _sampler(labels: np.ndarray, fs: FewShotConfig, iterations: int, seed: int):
    """Class-balanced batches of 2 images per class (1 when the smallest support class holds just 1)."""
    per_class = min(2, int(np.bincount(labels).min()))
    n_classes = len(np.unique(labels))
    batch = min(fs.batch_size // per_class, n_classes) * per_class
    return ClassBalancedBatchSampler(labels.tolist(), batch, per_class, seed=seed, num_batches=iterations)


def criterion(config: TrialConfig, num_classes: int, embedding_dim: int) -> Method:
    """A fresh few-shot criterion (``fewshot.method``) with ``adaptation_hyperparameters``; under
    ``fewshot.loss_parameters: frozen`` its own parameters (margin's beta) take no gradient, as in the
    original, whose optimizer holds the embedding layer only."""
    fs = config.fewshot
    method = build_method(
        fs.method, num_classes=num_classes, embedding_dim=embedding_dim, **adaptation_hyperparameters(config)
    )
    if fs.loss_parameters == "frozen":
        method.requires_grad_(False)
    return method


def head_outputs(head: nn.Module, features: torch.Tensor, fs: FewShotConfig) -> torch.Tensor:
    """The head's output the criterion sees (before L2 normalisation): a block head's (DiVA) unweighted
    concatenation unless ``fewshot.reweight``, as the original's script adapts; otherwise the head's
    output."""
    return head(features, weighted=fs.reweight) if isinstance(head, BlockHead) else head(features)


def loss_embeddings(head: nn.Module, features: torch.Tensor, fs: FewShotConfig) -> torch.Tensor:
    """The L2-normalised embeddings the criterion sees (``head_outputs``, normalised)."""
    return F.normalize(head_outputs(head, features, fs), dim=-1)


@dataclass(frozen=True)
class SupportForward:
    """A support batch (images or their cached backbone features, class indices) into a ``TrainBatch``:
    images through the backbone (without gradient unless ``mode: full``), features through ``head``; no
    autocast (adaptation runs in float32)."""

    model: EmbeddingModel
    head: nn.Module
    fs: FewShotConfig
    device: torch.device

    def __call__(self, items: Sequence[torch.Tensor]) -> TrainBatch:
        inputs, targets = (t.to(self.device, non_blocking=True) for t in items)
        if inputs.dim() == 4:  # images: through the backbone (frozen unless mode full)
            if uses_channels_last(self.device):
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with nullcontext() if self.fs.mode == "full" else torch.no_grad():
                inputs = self.model.features(inputs)
        outputs = head_outputs(self.head, inputs, self.fs)
        return TrainBatch(
            features=inputs, outputs=outputs, embeddings=F.normalize(outputs, dim=-1), labels=targets
        )


def _fresh(head: nn.Module, seed: int) -> nn.Module:
    """A copy of ``head`` with newly initialised layers (``linear_probe``)."""
    torch.manual_seed(seed)
    fresh = copy.deepcopy(head)
    for module in fresh.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()
    return fresh


def _adapt(
    model: EmbeddingModel,
    head: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    config: TrialConfig,
    seed: int,
    device: torch.device,
) -> None:
    """Adapt on the support ``batches`` in place (docs/protocol.md section 5): each batch is (images or
    their cached backbone features, class indices). Modes ``head`` and ``linear_probe`` train ``head``
    on features of the frozen backbone; ``full`` trains ``model`` (whose head is ``head``). Adam at
    ``lr_multiplier`` x the training learning rates; the criterion's own parameters join only under
    ``loss_parameters: trained``. Each step is training's (``tasks.step.TrainingStep``: the criterion's
    ``training_loss``, backward, Adam's step, ``after_step``, the loss checked finite), in float32. The
    criterion is a plain loss (``Method.is_plain_loss``, required of ``fewshot.method``): it has no
    ``start``, ``resume`` or ``end_epoch`` of its own to call."""
    fs, training = config.fewshot, config.training
    torch.manual_seed(seed)
    method = criterion(config, num_classes, head.out_features).to(device)
    head_lr = fs.lr_multiplier * (training.head_lr or training.lr)
    if fs.mode == "full":
        groups = model.param_groups(fs.lr_multiplier * training.lr, head_lr)
        model.train()
    else:
        groups = [{"params": list(head.parameters()), "lr": head_lr}]
        model.eval()
        head.train()
    optimizer = torch.optim.Adam(groups + method.param_groups())
    step = TrainingStep(
        SupportForward(model, head, fs, device),
        model,
        method,
        optimizer,
        torch.amp.GradScaler("cuda", enabled=False),  # float32: a disabled scaler is plain backward, step
    )
    where = partial(_adaptation_step, config=config, seed=seed)
    losses = LossLog(0, device, partial(check_finite, where=where), check_every(device))
    for items in batches:
        step(items, losses)
    losses.finish()
    model.eval()
    head.eval()


def _adaptation_step(step: int, config: TrialConfig, seed: int) -> str:
    """Where a non-finite adaptation loss was (``tasks.step.check_finite``)."""
    return (
        f"at few-shot adaptation step {step} (episode seed {seed}) of criterion {config.fewshot.method!r}: "
        f"lower fewshot.lr_multiplier or check its hyperparameters {adaptation_hyperparameters(config)}"
    )


def _feature_batches(
    features: torch.Tensor, labels: np.ndarray, fs: FewShotConfig, iterations: int, seed: int
):
    targets = torch.as_tensor(labels)
    for batch in _sampler(labels, fs, iterations, seed):
        yield features[batch], targets[batch]


def _image_batches(
    images: LabelledImages,
    support: np.ndarray,
    labels: np.ndarray,
    model: EmbeddingModel,
    config: TrialConfig,
    iterations: int,
    seed: int,
    device: torch.device,
) -> DataLoader:
    """The support images in class-balanced batches, augmented as in training under ``support_transform:
    train`` (a fresh draw every time an image is drawn), else through the evaluation transform."""
    fs = config.fewshot
    label_of = dict(zip((images.labels[i] for i in support), labels.tolist(), strict=True))
    dataset = image_dataset(images, support, model.preprocess, fs.support_transform == "train", label_of)
    return DataLoader(
        dataset,
        batch_sampler=_sampler(labels, fs, iterations, seed),
        **loader_options(device, config.data.num_workers),
    )


def metric_names(config: TrialConfig) -> list[str]:
    """The keys ``trial_metrics`` returns under ``config`` (a budget no episode can score reports them NaN)."""
    return retrieval_metric_names(config.training.ks, config.training.with_nmi)


def evaluate_fewshot(
    model: EmbeddingModel, images: LabelledImages, split: Split, config: TrialConfig, device: torch.device
) -> dict[int, FewShotResult]:
    """For every configured shot budget: few-shot and zero-shot metrics (mean, CI) over episodes, as a
    ``tasks.record.FewShotResult``."""
    fs = config.fewshot
    results: dict[int, FewShotResult] = {}
    if not fs.shots:
        return results
    frozen = fs.mode in ("head", "linear_probe")  # the backbone's features of the queries serve every episode
    cached = frozen and fs.support_transform == "eval"  # and those of the support, when not augmented
    workers = config.data.num_workers
    all_test = images.indices_of(split.test)
    position = {int(i): p for p, i in enumerate(all_test)}
    features = (
        torch.from_numpy(embed(model, images, all_test, device, features=True, num_workers=workers))
        if frozen
        else None
    )
    label_array = np.asarray(images.labels)
    for shots in fs.shots:
        episodes = split.episodes.get(shots)
        if not episodes:
            raise ValueError(
                f"split {split.id} (key {split.key}) has no {shots}-shot episodes; "
                f"available: {sorted(split.episodes)}. Rebuild the split file with --shots including {shots}"
            )
        episodes = episodes[: fs.episodes] if fs.episodes else episodes
        per_episode: dict[str, list[dict[str, float]]] = {"fewshot": [], "zeroshot": []}
        left_out: set[str] = set()
        for e, episode in enumerate(episodes):
            seed = config.seed * 7919 + shots * 101 + e
            resolved = episode_images(images, episode, split.test)
            left_out.update(resolved.left_out)
            support, query = resolved.support, resolved.query
            query_labels = label_array[query]
            if len(set(query_labels.tolist())) < MIN_QUERY_CLASSES:
                continue
            _, support_labels = np.unique(label_array[support], return_inverse=True)
            iterations = fs.iterations[shots]  # FewShotConfig: every budget has an entry
            classes = int(support_labels.max()) + 1
            if frozen:
                q_feat = features[[position[int(i)] for i in query]]
                cpu_head = model.head.cpu()
                with torch.no_grad():
                    per_episode["zeroshot"].append(
                        trial_metrics(F.normalize(cpu_head(q_feat), dim=-1), query_labels, config)
                    )
                head = _fresh(cpu_head, seed) if fs.mode == "linear_probe" else copy.deepcopy(cpu_head)
                if cached:
                    s_feat = features[[position[int(i)] for i in support]]
                    batches = _feature_batches(s_feat, support_labels, fs, iterations, seed)
                    _adapt(model, head, batches, classes, config, seed, torch.device("cpu"))
                else:
                    model.to(device)
                    head.to(device)
                    batches = _image_batches(
                        images, support, support_labels, model, config, iterations, seed, device
                    )
                    _adapt(model, head, batches, classes, config, seed, device)
                    head.cpu()
                with torch.no_grad():
                    per_episode["fewshot"].append(
                        trial_metrics(F.normalize(head(q_feat), dim=-1), query_labels, config)
                    )
                model.to(device)
            else:
                per_episode["zeroshot"].append(
                    trial_metrics(
                        embed(model, images, query, device, num_workers=workers), query_labels, config
                    )
                )
                adapted = copy.deepcopy(model)
                batches = _image_batches(
                    images, support, support_labels, adapted, config, iterations, seed, device
                )
                _adapt(adapted, adapted.head, batches, classes, config, seed, device)
                per_episode["fewshot"].append(
                    trial_metrics(
                        embed(adapted, images, query, device, num_workers=workers), query_labels, config
                    )
                )
        scored = len(per_episode["fewshot"])
        means = {
            kind: {m: mean_ci95([r[m] for r in runs]) for m in runs[0]}
            if runs
            else {m: MeanCI(float("nan"), float("nan")) for m in metric_names(config)}
            for kind, runs in per_episode.items()
        }
        results[shots] = FewShotResult(
            episodes=scored,
            support="classes" if is_whole_class(episodes[0]) else "images",
            left_out_classes=sorted(left_out),
            nan_reason=_nan_reason(shots, len(episodes), scored, len(left_out), len(split.test)),
            fewshot=means["fewshot"],
            zeroshot=means["zeroshot"],
        )
    return results


def _nan_reason(shots: int, episodes: int, scored: int, left_out: int, test_classes: int) -> str | None:
    """Why a budget's means (no episode scored) or CIs (one episode) are NaN; None when they are not."""
    if scored == 0:
        return (
            f"no {shots}-shot episode scored: none of the {episodes} leaves {MIN_QUERY_CLASSES} query classes "
            f"of at least {MIN_QUERY_IMAGES} images ({left_out} of the {test_classes} test classes left out; "
            f"with per-image support a class needs {images_needed(shots)} images: {shots} support, "
            f"{MIN_QUERY_IMAGES} queries)"
        )
    if scored == 1:
        skipped = f" ({episodes - 1} could not be scored)" if episodes > 1 else ""
        return f"ci95: 1 {shots}-shot episode scored{skipped}; an interval over episodes needs 2"
    return None
