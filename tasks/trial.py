"""One trial, end to end: the entry point the study runner schedules (plain PyTorch, no Ray, no MLflow).

``run_trial(config, workdir)`` trains on one split, selects on validation classes, evaluates the test
classes zero-shot and with few-shot adaptation (and, where the config asks, the held-out half of the test
classes and other datasets' test classes), writes its checkpoints to ``workdir`` and returns its
``TrialRecord`` (``tasks.record``): identity (computed before the trial runs, ``tasks.identity``),
hyperparameters, per-epoch curves, selected epoch, the measurements per subset, budget and kind,
timings, environment and checkpoint.

A trial that does not train (``training.epochs: 0``, or the ``frozen`` method) records ``epochs`` 0,
``selected_epoch`` -1 (the model as built), no curves and no checkpoint (``checkpoint`` None: its weights
are the backbone's published ones), and the untrained model's val/test/few-shot metrics.

An oracle trial (``role: oracle``, docs/oracle.md) trains on the training half of the test classes, keeps
its last epoch and records held-out measurements only: no val, test or few-shot ones.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

from tasks.config import TrialConfig
from tasks.data import build_dataset
from tasks.fewshot import evaluate_fewshot
from tasks.identity import config_split, describe
from tasks.metric_names import TEST, VAL, MetricKey, recall_name
from tasks.models.embedding import BlockHead
from tasks.oracle import divide_test_classes, indices_of_ids
from tasks.record import Curves, Environment, Measurement, Timings, TrialRecord, fewshot_measurements
from tasks.roles import trial_role
from tasks.splits.check import class_sizes, unknown_classes
from tasks.splits.files import Split, read_split_file
from tasks.train import (
    BEST_WEIGHTS,
    evaluate_classes,
    evaluate_images,
    evaluate_weightings,
    resolve_device,
    train_model,
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("oodml", "torch", "torchvision", "numpy", "faiss-cpu", "pytorch-metric-learning", "timm"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _check_split(split: Split, images, split_file: str) -> None:
    missing = unknown_classes(split, class_sizes(images))
    if missing:
        raise ValueError(
            f"{split_file}: split {split.id} names {len(missing)} classes that are not in dataset "
            f"{images.name} at {images.root} (e.g. {missing[:3]}); was the split file built for this dataset?"
        )


def _zeroshot(subset: str, metrics: dict[str, float]) -> list[Measurement]:
    return [Measurement(subset, metric, float(value)) for metric, value in metrics.items()]


def cross_measurements(model, config: TrialConfig, device: torch.device) -> list[Measurement]:
    """The model's retrieval metrics on each ``evaluate_on`` dataset's split's test classes (subset
    ``cross``), its images through this trial's evaluation transform (the model's own)."""
    found = []
    for data in config.evaluate_on:
        other = build_dataset(data.dataset, data.root, **data.options)
        split = read_split_file(data.split_file).split(data.split)
        _check_split(split, other, data.split_file)
        metrics = evaluate_classes(model, other, split.test, config, device)
        found += [
            Measurement("cross", k, float(v), eval_dataset=data.dataset_name) for k, v in metrics.items()
        ]
    return found


def run_trial(
    config: TrialConfig,
    workdir: str | Path,
    on_epoch: Callable[[dict, Path], None] | None = None,
    progress: bool = False,
) -> TrialRecord:
    """Run one trial; resumes from ``workdir`` if it holds a checkpoint of the same trial."""
    workdir = Path(workdir)
    started = time.perf_counter()
    images = build_dataset(config.data.dataset, config.data.root, **config.data.options)
    split = config_split(config)
    identity = describe(config, split)  # the trial id is known before the trial runs
    _check_split(split, images, config.data.split_file)
    division = divide_test_classes(images, split, config.heldout) if config.heldout else None
    role = trial_role(config)  # what it trains on, how it selects, what it is measured on (tasks.roles)
    trained = train_model(
        config, *role.training_set(images, split, division), workdir, on_epoch=on_epoch, progress=progress
    )
    device = resolve_device(config.training.device)
    curves = Curves.from_history(trained.history)
    measurements = _zeroshot(VAL, trained.selected_metrics(VAL))
    test_selected: dict = {}
    evaluated = time.perf_counter()
    measures_test = config.evaluate_test and role.measures_test
    if measures_test:
        weightings = evaluate_weightings(trained.model, images, split.test, config, device)
        measurements += _zeroshot(TEST, weightings.pop(None))
        measurements += [
            Measurement(TEST, metric, float(value), weighting=weighting)
            for weighting, metrics in weightings.items()
            for metric, value in metrics.items()
        ]
        test_curve = curves.values.get(MetricKey(TEST, recall_name(1)).key)
        scored = [i for i, value in enumerate(test_curve or ()) if value is not None]  # test_curve_every
        if scored:  # what selecting on test would pick among the evaluated epochs (recorded, never used)
            best = max(scored, key=lambda i: test_curve[i])
            test_selected = {
                "test_selected_epoch": curves.epochs[best],
                "test_selected_recall_at_1": test_curve[best],
            }
    if config.evaluate_test and division is not None:
        heldout = evaluate_images(
            trained.model, images, indices_of_ids(images, division.heldout), config, device
        )
        left_out = len(division.left_out)
        measurements += [
            Measurement("heldout", k, float(v), left_out_classes=left_out) for k, v in heldout.items()
        ]
    if config.evaluate_test:
        measurements += cross_measurements(trained.model, config, device)
    fewshot_started = time.perf_counter()
    if measures_test:
        measurements += fewshot_measurements(evaluate_fewshot(trained.model, images, split, config, device))
    finished = time.perf_counter()
    return TrialRecord(
        identity=dataclasses.replace(
            identity,
            embedding_dim=trained.model.head.out_features,
            epochs=trained.epochs,
            reported_weighting=head.weighting if isinstance(head := trained.model.head, BlockHead) else None,
            **role.identity(division),
        ),
        hyperparameters=dict(config.method.hyperparameters),
        config=config.model_dump(mode="json"),
        measurements=tuple(measurements),
        curves=curves,
        selected_epoch=trained.selected_epoch,
        resumed_from_epoch=trained.resumed_from_epoch,
        **test_selected,
        timings=Timings(
            train_s=trained.train_seconds,
            test_eval_s=fewshot_started - evaluated,
            fewshot_s=finished - fewshot_started,
            total_s=finished - started,
        ),
        environment=Environment(versions(), str(device), torch.get_num_threads()),
        checkpoint=str((workdir / BEST_WEIGHTS).resolve()) if trained.epochs else None,
    )
