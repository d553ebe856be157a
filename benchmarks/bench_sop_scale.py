"""SOP-scale dry run: the preflight, split building and one evaluation at SOP's size, time and peak memory.

    python benchmarks/bench_sop_scale.py [--classes 22634] [--steps N] [--eval-size 60000] [--no-nmi]
        [--no-tracemalloc] [--keep DIR]

Stages, each through the code a study runs:

1. ``dataset``: a synthetic dataset of SOP's shape in a temporary folder, in SOP's own layout
   (``Info_Files/Ebay_train.txt`` / ``Ebay_test.txt``, ``images/<super>_final/<file>.JPG``): 22,634
   classes of 2-12 tiny JPEGs (8x8; about 120,000 files), half of the classes on each side.
2. ``splits``: ``tasks.splits.build.build_split_file`` from synthetic 2048-d class means (shaped like
   pooled ResNet50 features) with SOP's published settings (``default_settings("sop")``: harder K=1000,
   N=20; ``--steps`` overrides N) and whole-class few-shot episodes (2 shots; 5 would need 5 x 11,316
   of the test side's ~60,000 images, which a split that moves small classes to test can lack), written with
   ``write_split_outputs``.
3. ``preflight``: ``study.preflight.check_inputs`` on a study spec naming the dataset (kind ``sop``) and
   that split file: every image decoded once, the split's classes and support checked against the data.
4. ``evaluation``: ``tasks.evaluate.retrieval_metrics`` of ``--eval-size`` 512-d L2-normalised
   embeddings with SOP-like class sizes (Recall@1/10/100/1000, mAP@R, mAP@1000, NMI with one k-means
   cluster per class).

Per stage: seconds, the peak of Python allocations (``tracemalloc``, which counts numpy's buffers but not
torch's) and the process's peak resident memory in the stage (``VmHWM`` from ``/proc/self/status``, reset
before each stage by writing 5 to ``/proc/self/clear_refs``, which resets ``ru_maxrss`` too, so the
last line gives the largest stage peak). No stage may hold an N x N matrix: the run fails if a stage's peak reaches a quarter of what an
N x N float32 matrix takes (N = --eval-size; 60,000^2 x 4 B = 14.4 GB). The load average is printed with
every stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from loadavg import load
from PIL import Image

SUPERS = ["bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle", "lamp", "mug", "sofa", "stapler",
          "table", "toaster"]  # fmt: skip


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def class_sizes(classes: int, rng: np.random.Generator) -> np.ndarray:
    """2-12 images per class, mean about 5.3 as SOP's (120,053 images / 22,634 classes)."""
    p = np.exp(-np.arange(2, 13) / 5.5)
    return rng.choice(np.arange(2, 13), size=classes, p=p / p.sum())


def tiny_jpegs(count: int, rng: np.random.Generator) -> list[bytes]:
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def write_sop_like(root: Path, classes: int, seed: int) -> tuple[int, list[str], list[str]]:
    """SOP's layout with ``classes`` classes (ids 1..classes; the first 11,318/22,634 are the train side)."""
    rng = np.random.default_rng(seed)
    sizes = class_sizes(classes, rng)
    blobs = tiny_jpegs(256, rng)
    (root / "Info_Files").mkdir(parents=True)
    header = "image_id class_id super_class_id path\n"
    lines = {"train": [header], "test": [header]}
    half = round(classes * 11318 / 22634)  # SOP: 11,318 train and 11,316 test classes
    image_id = 0
    for c in range(1, classes + 1):
        s = (c - 1) % len(SUPERS)
        folder = root / "images" / f"{SUPERS[s]}_final"
        if c <= len(SUPERS):
            folder.mkdir(parents=True)
        side = "train" if c <= half else "test"
        for k in range(int(sizes[c - 1])):
            image_id += 1
            name = f"{SUPERS[s]}_final/{c}_{k}.JPG"
            (root / "images" / name).write_bytes(blobs[image_id % len(blobs)])
            lines[side].append(f"{image_id} {c} {s + 1} {name}\n")
    for side, rows in lines.items():
        (root / "Info_Files" / f"Ebay_{side}.txt").write_text("".join(rows))
    names = [str(c) for c in range(1, classes + 1)]
    return image_id, names[:half], names[half:]


def sop_like_means(classes: int, dim: int, seed: int) -> np.ndarray:
    """Non-negative class means with a decaying low-rank part plus noise (as benchmarks/bench_fid.py)."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(classes, 64)) / np.sqrt(np.arange(1, 65))
    loadings = rng.normal(size=(64, dim))
    return np.maximum(0.5 + 0.0375 * (factors @ loadings) + 0.1 * rng.normal(size=(classes, dim)), 0.0)


def sop_like_embeddings(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` L2-normalised embeddings in classes of SOP-like sizes (class centre + noise)."""
    rng = np.random.default_rng(seed)
    sizes = class_sizes(n // 2 + 1, rng)
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    centres = rng.normal(size=(int(labels.max()) + 1, dim)).astype(np.float32)
    x = centres[labels] + 1.2 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


class Stages:
    def __init__(self, limit: int, trace: bool):
        self.limit, self.trace, self.rows = limit, trace, []
        self.can_reset = _reset_peak_rss()

    def run(self, name: str, fn: Callable[[], object]) -> object:
        _reset_peak_rss()
        if self.trace:
            tracemalloc.start()
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        python = tracemalloc.get_traced_memory()[1] if self.trace else 0
        if self.trace:
            tracemalloc.stop()
        rss = _status("VmHWM")
        self.rows.append((name, seconds, python, rss))
        traced = f"Python peak {python / 2**20:8.1f} MiB, " if self.trace else ""
        print(
            f"{name:>10}: {seconds:8.1f} s, {traced}process peak RSS {rss / 2**20:8.1f} MiB "
            f"({rss / self.limit / 4:.3f} of an N x N float32 matrix); {load()}",
            flush=True,
        )
        assert max(python, rss) < self.limit, f"{name}: peak memory reached {max(python, rss)} B"
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=22634)
    parser.add_argument("--dim", type=int, default=2048, help="class-mean dimension for the splits")
    parser.add_argument("--steps", type=int, help="harder steps N (default: SOP's published 20)")
    parser.add_argument("--select", type=int, default=4, help="splits selected and prepared")
    parser.add_argument("--eval-size", type=int, default=60000)
    parser.add_argument("--no-nmi", action="store_true")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--keep", help="write the dataset and split file here instead of a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from study.preflight import check_inputs
    from study.spec import StudySpec
    from tasks.evaluate import retrieval_metrics
    from tasks.splits.build import build_split_file, write_split_outputs
    from tasks.splits.settings import default_settings

    n = args.eval_size
    stages = Stages(limit=n * n * 4 // 4, trace=not args.no_tracemalloc)
    settings = default_settings("sop")
    if args.steps is not None:
        settings = dataclasses.replace(
            settings, harder=dataclasses.replace(settings.harder, steps=args.steps)
        )
    print(
        f"SOP-scale dry run: {args.classes} classes, class means {args.dim}-d, progressions "
        f"{settings.as_dict() if hasattr(settings, 'as_dict') else settings}, evaluation {n} x 512; limit per "
        f"stage {stages.limit / 2**30:.2f} GiB (a quarter of N x N float32); peak-RSS reset "
        f"{'works' if stages.can_reset else 'unavailable (VmHWM is then the peak so far)'}; {load()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        data = root / "Stanford_Online_Products"
        images, train, test = stages.run("dataset", lambda: write_sop_like(data, args.classes, args.seed))
        print(f"            {images} images, {len(train)} train / {len(test)} test classes", flush=True)

        def splits() -> Path:
            from tasks.data import build_dataset

            dataset = build_dataset("sop", data)
            by_class = {
                c: [dataset.image_ids[i] for i in idx] for c, idx in dataset.indices_by_class().items()
            }
            means = sop_like_means(args.classes, args.dim, args.seed)
            names = sorted(dataset.classes, key=int)
            split_file = build_split_file(
                names, means, dataset.default_train, dataset.default_test, config=settings,
                selection=args.select, images_by_class=by_class, shots=(2,), episodes=10,
                support="classes", seed=args.seed,
            )  # fmt: skip
            json_path, _ = write_split_outputs(split_file, root / "splits")
            return json_path

        split_path = stages.run("splits", splits)

        spec = StudySpec.model_validate(
            {
                "name": "sop-dry-run",
                "datasets": [{"name": "sop", "root": str(data), "split_file": str(split_path)}],
                "methods": [{"name": "margin"}],
                "model": {"backbone": "resnet50", "pretrained": False},
                "fewshot": {"budgets": [0, 2]},
                "storage": {"root": str(root / "runs")},
            }
        )
        stages.run("preflight", lambda: check_inputs(spec, lambda line: print("           ", line)))

        x, labels = sop_like_embeddings(n, 512, args.seed)
        print(f"            {n} embeddings in {int(labels.max()) + 1} classes", flush=True)
        metrics = stages.run("evaluation", lambda: retrieval_metrics(x, labels, with_nmi=not args.no_nmi))
        print("           ", {k: round(v, 4) for k, v in metrics.items()})
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = max([maxrss, *(row[3] for row in stages.rows)])  # clear_refs resets ru_maxrss too
    total = sum(row[1] for row in stages.rows)
    print(
        f"total {total:.1f} s; largest stage peak RSS {peak / 2**20:.1f} MiB = "
        f"{peak / (n * n * 4):.3f} of an N x N float32 matrix ({n * n * 4 / 1e9:.1f} GB); {load()}"
    )
    assert peak < stages.limit, "a stage held memory on the order of an N x N matrix"


if __name__ == "__main__":
    sys.exit(main())
