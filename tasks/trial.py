"""One trial, end to end: the entry point the study runner schedules (plain PyTorch, no Ray, no MLflow).

``run_trial(config, workdir)`` trains on one split, selects on validation classes, evaluates the test
classes zero-shot and with few-shot adaptation, writes its checkpoints to ``workdir`` and returns a
flat record: config identity, per-epoch curves, selected epoch, val/test metrics, few-shot results,
timings, versions, seeds and the split's hash.

A trial that does not train (``training.epochs: 0``, or the ``frozen`` method) records ``epochs`` 0,
``selected_epoch`` -1 (the model as built), no curves and no checkpoint (``checkpoint`` None: its weights
are the backbone's published ones), and the untrained model's val/test/few-shot metrics.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from tasks.config import TrialConfig
from tasks.data import build_dataset
from tasks.fewshot import evaluate_fewshot
from tasks.splits.check import class_sizes, unknown_classes
from tasks.splits.files import Split, read_split_file
from tasks.train import BEST_WEIGHTS, evaluate_classes, resolve_device, train_model

RECORD_VERSION = 1


def split_hash(split: Split) -> str:
    """A hash of the split's class lists, division and episodes (what a trial's result depends on)."""
    payload = split.model_dump(mode="json", exclude={"id", "progression"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


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


def run_trial(
    config: TrialConfig,
    workdir: str | Path,
    on_epoch: Callable[[dict, Path], None] | None = None,
    progress: bool = False,
) -> dict:
    """Run one trial; resumes from ``workdir`` if it holds a checkpoint of the same trial."""
    workdir = Path(workdir)
    started = time.perf_counter()
    images = build_dataset(config.data.dataset, config.data.root, **config.data.options)
    split = read_split_file(config.data.split_file).split(config.data.split)
    _check_split(split, images, config.data.split_file)

    trained = train_model(config, images, split, workdir, on_epoch=on_epoch, progress=progress)
    device = resolve_device(config.training.device)
    record: dict = {
        "record_version": RECORD_VERSION,
        "trial_id": config.identity(),
        "dataset": images.name,
        "split_id": split.id,
        "split_key": split.key,
        "split_progression": split.progression,
        "split_hash": split_hash(split),
        "fid": split.fid,
        "num_train_classes": len(split.train),
        "num_test_classes": len(split.test),
        "method": config.method.label,
        "hyperparameters": json.dumps(dict(config.method.hyperparameters), sort_keys=True),
        "backbone": config.model.backbone,
        "embedding_dim": trained.model.head.out_features,
        "seed": config.seed,
        "epochs": trained.epochs,
        "protocol": config.training.protocol,
        "selected_epoch": trained.selected_epoch,
        "resumed_from_epoch": trained.resumed_from_epoch,
        "checkpoint": str((workdir / BEST_WEIGHTS).resolve()) if trained.epochs else None,
        "config": json.dumps(config.model_dump(mode="json"), sort_keys=True),
        "versions": json.dumps(versions(), sort_keys=True),
        "device": str(device),
    }
    curves: dict[str, list] = {}
    for row in trained.history:
        for key, value in row.items():
            curves.setdefault(key, []).append(value)
    record.update({f"curve/{k}": v for k, v in curves.items()})
    record.update({k: v for k, v in trained.selected_record().items() if k.startswith("val/")})

    evaluated = time.perf_counter()
    if config.evaluate_test:
        test = evaluate_classes(trained.model, images, split.test, config, device)
        record.update({f"test/{k}": v for k, v in test.items()})
        if "test/recall@1" in curves:
            oracle = int(np.argmax(curves["test/recall@1"]))
            record["test_selected_epoch"] = curves["epoch"][oracle]  # what selecting on test would pick
            record["test_selected/recall@1"] = curves["test/recall@1"][oracle]
    fewshot_started = time.perf_counter()
    if config.evaluate_test:
        for shots, result in evaluate_fewshot(trained.model, images, split, config, device).items():
            record[f"fewshot/{shots}/episodes"] = result["episodes"]
            record[f"fewshot/{shots}/left_out_classes"] = len(result["left_out_classes"])
            record[f"fewshot/{shots}/support"] = result["support"]
            record[f"fewshot/{shots}/nan_reason"] = result["nan_reason"]
            for kind in ("fewshot", "zeroshot"):
                for metric, (mean, ci) in result[kind].items():
                    record[f"fewshot/{shots}/{kind}/{metric}"] = mean
                    record[f"fewshot/{shots}/{kind}/{metric}/ci95"] = ci
    finished = time.perf_counter()
    record.update(
        {
            "time/train_s": trained.train_seconds,
            "time/test_eval_s": fewshot_started - evaluated,
            "time/fewshot_s": finished - fewshot_started,
            "time/total_s": finished - started,
            "torch_threads": torch.get_num_threads(),
        }
    )
    return record
