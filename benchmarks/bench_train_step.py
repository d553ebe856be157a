"""Training-step speed of the glyph demo (glyph_cnn, margin loss, batch 128 of 32x32), in the same run:

    python benchmarks/bench_train_step.py [--steps 20] [--threads 2]

(1) one full step (forward, distance-weighted sampling, margin loss, backward, Adam) in the default
memory format against channels-last, both fp32; (2) the sampler alone, ours (vectorised, one triplet
per anchor) against pytorch-metric-learning's ``DistanceWeightedMiner`` and against a per-anchor loop
(the shape of the ooDML reference sampler).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning.miners import DistanceWeightedMiner

from tasks.methods import DistanceWeightedSampler, build_method
from tasks.models import build_model

CLASSES, PER_CLASS = 32, 4


def _median_time(fn: Callable[[], object], steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _train_step(channels_last: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = build_model("glyph_cnn")
    method = build_method("margin", num_classes=CLASSES, embedding_dim=64)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    images = torch.randn(len(labels), 1, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.param_groups(2e-3, 2e-3) + method.param_groups())
    model.train()

    def step() -> None:
        loss = method(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def _loop_sampler(
    x: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """Per anchor: a random positive and a negative drawn with numpy from q(d)^-1 (lower cut-off 0.5)."""
    n = x.shape[1]
    d = torch.cdist(x, x).clamp(0.5, 2 - 1e-3)
    log_w = (2.0 - n) * d.log() - (n - 3) / 2 * torch.log1p(-0.25 * d.pow(2))
    labels_np = labels.numpy()
    triplets = []
    for i in range(len(labels_np)):
        same = labels_np == labels_np[i]
        w = log_w[i].numpy().copy()
        w[same] = -np.inf
        p = np.exp(w - w.max())
        same[i] = False
        triplets.append((i, int(rng.choice(np.flatnonzero(same))), int(rng.choice(len(p), p=p / p.sum()))))
    return triplets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {CLASSES}x{PER_CLASS} of 1x32x32, fp32")

    t_default = _median_time(_train_step(channels_last=False), args.steps)
    t_cl = _median_time(_train_step(channels_last=True), args.steps)
    print(
        f"train step: default {t_default * 1e3:.1f} ms, channels-last {t_cl * 1e3:.1f} ms, "
        f"ratio default/channels-last {t_default / t_cl:.2f}x"
    )

    torch.manual_seed(0)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    x = F.normalize(torch.randn(len(labels), 64), dim=1)
    ours, pml, rng = DistanceWeightedSampler(), DistanceWeightedMiner(), np.random.default_rng(0)
    t_ours = _median_time(lambda: ours(x, labels), args.steps * 5)
    t_pml = _median_time(lambda: pml(x, labels), args.steps * 5)
    t_loop = _median_time(lambda: _loop_sampler(x, labels, rng), args.steps)
    print(
        f"sampler (128 x 64-d): ours {t_ours * 1e3:.2f} ms ({len(ours(x, labels)[0])} triplets), "
        f"PML DistanceWeightedMiner {t_pml * 1e3:.2f} ms ({len(pml(x, labels)[0])} triplets), "
        f"per-anchor loop {t_loop * 1e3:.1f} ms; PML/ours {t_pml / t_ours:.1f}x, loop/ours {t_loop / t_ours:.0f}x; "
        f"ours is {t_ours / t_default:.1%} of a train step"
    )


if __name__ == "__main__":
    main()
