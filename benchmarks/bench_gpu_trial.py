"""A training trial's throughput against bare forward/backward of the same model on the same batches.

    python benchmarks/bench_gpu_trial.py [--device auto] [--backbone B] [--data glyphs|jpeg]
        [--steps 40] [--epochs 3] [--workers N] [--repeats 2] [--threads N]

The trial is ``tasks.train.train_model`` as a study runs it (class-balanced sampler, DataLoader with the
trial's loader settings, transforms, the method's ``training_loss``, Adam, AMP and channels-last on CUDA,
checkpoints every epoch) with the per-epoch evaluation replaced by a stub, so only training is timed. Its
throughput is measured over epochs 2..E (the first epoch pays worker start-up and warm-up). The reference
runs the same model, method and optimizer (same AMP and memory format) on the same batches, already on
the device: no sampler, no loader, no host-device copies, no reads of the loss. Prints images/s of both
and the ratio trial / bare (the goal is at least 0.85), with and without the time spent writing
checkpoints, and the load average next to each figure.

Defaults: on CUDA ResNet50 at 224 (no pretrained weights needed) on synthetic CUB-like JPEGs, batch 112
of 2 per class, ``--workers`` = cores - 1; on CPU the glyph CNN on rendered glyphs (the array path),
batch 128 of 4 per class, no workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import tasks.train as train
from tasks.config import TrialConfig
from tasks.data import ClassBalancedBatchSampler, build_dataset, image_dataset
from tasks.methods import build_method
from tasks.models import build_model
from tasks.splits.files import Split

sys.path.insert(0, str(Path(__file__).parent))
from loadavg import load  # noqa: E402
from synthetic_images import write_image_folder  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_dataset(kind: str, root: Path, classes: int):
    if kind == "glyphs":
        return build_dataset("glyphs", root, num_classes=classes, jitters=2)
    write_image_folder(root / "images", classes, 12)
    return build_dataset("imagefolder", root / "images")


def make_split(images) -> Split:
    train_classes = sorted(images.default_train)
    cut = max(1, len(train_classes) * 4 // 5)
    return Split(
        id=0,
        key="0",
        fid=0.0,
        train=train_classes,
        test=sorted(images.default_test),
        split_train=train_classes[:cut],
        split_val=train_classes[cut:],
    )


def trial_config(args, root: Path) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {
                "dataset": args.data,
                "root": str(root),
                "split_file": "unused.json",
                "split": "0",
                "num_workers": args.workers,
            },
            "model": {"backbone": args.backbone, "pretrained": False},
            "method": {"name": args.method},
            "training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "samples_per_class": args.samples_per_class,
                "iterations_per_epoch": args.steps,
                "lr": 1e-5,
                "device": args.device,
                "record_test_curve": False,
                "with_nmi": False,
            },
            "evaluate_test": False,
            "fewshot": {"shots": []},
            "seed": 0,
        }
    )


def time_trial(config: TrialConfig, images, split: Split, workdir: Path) -> tuple[float, float]:
    """Seconds per step over epochs 2..E, and the checkpoint seconds per step in them."""
    ends: list[float] = []
    saving: list[float] = []
    save = train.save_checkpoint

    def timed_save(state, path):
        start = time.perf_counter()
        save(state, path)
        saving.append(time.perf_counter() - start)

    def on_epoch(record, _):
        ends.append(time.perf_counter())

    def stub(model, images, classes, config, device):
        return {name: 0.0 for name in config.training.selection_metric}

    evaluate, train.evaluate_classes, train.save_checkpoint = train.evaluate_classes, stub, timed_save
    try:
        train.train_model(config, images, split, workdir, on_epoch=on_epoch)
    finally:
        train.evaluate_classes, train.save_checkpoint = evaluate, save
    steps = (config.training.epochs - 1) * config.training.iterations_per_epoch
    epochs = config.training.epochs
    per_epoch = len(saving) // epochs  # checkpoint writes per epoch (last.pt, and best.pt on the first)
    return (ends[-1] - ends[0]) / steps, sum(saving[per_epoch + 1 :]) / steps


def bare_batches(config: TrialConfig, images, split: Split, device: torch.device) -> list:
    model = build_model(config.model.backbone, pretrained=False)
    classes = list(split.split_train)
    label_index = {c: i for i, c in enumerate(classes)}
    indices = images.indices_of(classes)
    sampler = ClassBalancedBatchSampler(
        [label_index[images.labels[i]] for i in indices],
        config.training.batch_size,
        config.training.samples_per_class,
        seed=0,
        num_batches=config.training.iterations_per_epoch,
    )
    dataset = image_dataset(images, indices, model.preprocess, True, label_index)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.data.num_workers)
    memory = torch.channels_last if train.uses_channels_last(device) else torch.contiguous_format
    return [(x.to(device).contiguous(memory_format=memory), y.to(device)) for x, y in loader]


def time_bare(config: TrialConfig, batches: list, classes: int, device: torch.device, rounds: int) -> float:
    """Seconds per step of forward, loss, backward and Adam on batches already on the device."""
    torch.manual_seed(0)
    model = build_model(config.model.backbone, pretrained=False)
    method = build_method(config.method.name, num_classes=classes, embedding_dim=model.head.out_features)
    model.to(device)
    method.to(device)
    if train.uses_channels_last(device):
        model.to(memory_format=torch.channels_last)
    tc = config.training
    optimizer = torch.optim.Adam(model.param_groups(tc.lr, tc.lr) + method.param_groups())
    amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    model.train()

    def step(x, y):
        with train._autocast(device, amp):
            outputs = model.head(model.features(x))
        loss = method(F.normalize(outputs.float(), dim=-1), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for x, y in batches[:3]:  # warm-up
        step(x, y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(rounds):
        for x, y in batches:
            step(x, y)
    _sync(device)
    return (time.perf_counter() - start) / (rounds * len(batches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbone", help="default: resnet50 on CUDA, glyph_cnn elsewhere")
    parser.add_argument("--data", choices=["glyphs", "jpeg"], help="default: glyphs for glyph_cnn, else jpeg")
    parser.add_argument("--classes", type=int, help="dataset classes (default 200 glyphs, 120 JPEG folders)")
    parser.add_argument("--method", default="margin")
    parser.add_argument("--steps", type=int, default=40, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed: epochs 2..E")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--samples-per-class", type=int)
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: cores - 1 on CUDA, else 0)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = train.resolve_device(args.device)
    args.device = str(device)
    args.backbone = args.backbone or ("resnet50" if device.type == "cuda" else "glyph_cnn")
    args.data = args.data or ("glyphs" if args.backbone == "glyph_cnn" else "jpeg")
    glyph_like = args.backbone == "glyph_cnn"
    args.batch_size = args.batch_size or (128 if glyph_like else 112)
    args.samples_per_class = args.samples_per_class or (4 if glyph_like else 2)
    if args.workers is None:
        args.workers = max(1, (os.cpu_count() or 2) - 1) if device.type == "cuda" else 0
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 is warm-up)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        images = make_dataset(
            args.data, root / "data", args.classes or (200 if args.data == "glyphs" else 120)
        )
        split = make_split(images)
        config = trial_config(args, root / "data")
        print(
            f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads; {args.backbone} on "
            f"{args.data} ({len(images)} images, {len(split.split_train)} training classes, made in "
            f"{time.perf_counter() - started:.1f} s); batch {args.batch_size} ({args.samples_per_class} per "
            f"class), {args.steps} steps x {args.epochs} epochs, {args.workers} workers, method {args.method}, "
            f"AMP {config.training.amp and device.type == 'cuda'}; {load()}"
        )
        batches = bare_batches(config, images, split, device)
        ratios, ratios_no_ckpt = [], []
        for r in range(args.repeats):
            trial, ckpt = time_trial(config, images, split, root / f"trial{r}")
            bare = time_bare(config, batches, len(split.split_train), device, rounds=args.epochs - 1)
            ratios.append(bare / trial)
            ratios_no_ckpt.append(bare / (trial - ckpt))
            rate = lambda seconds: args.batch_size / seconds  # noqa: E731
            print(
                f"run {r + 1}: trial {rate(trial):8.1f} images/s ({trial * 1e3:.1f} ms/step, of which "
                f"checkpoints {ckpt * 1e3:.1f}), bare {rate(bare):8.1f} images/s ({bare * 1e3:.1f} ms/step); "
                f"trial/bare {ratios[-1]:.2f} ({ratios_no_ckpt[-1]:.2f} without checkpoints); {load()}"
            )
        print(
            f"trial / bare forward-backward: median {statistics.median(ratios):.2f} "
            f"({statistics.median(ratios_no_ckpt):.2f} without checkpoint writes); goal >= 0.85"
        )


if __name__ == "__main__":
    main()
