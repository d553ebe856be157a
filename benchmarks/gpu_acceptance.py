"""GPU acceptance: four checks of what a GPU machine must do, one PASS/FAIL/SKIP line each with its figures.

    python benchmarks/gpu_acceptance.py                  # on a machine with CUDA: under 8 minutes on one H100
    python benchmarks/gpu_acceptance.py --dry-run        # the same code on the CPU at tiny sizes (in the tests)
    python benchmarks/gpu_acceptance.py --only evaluate,kmeans

Checks (``--only`` names them):

- ``evaluate``: ``oodml evaluate --no-nmi --json`` of an SOP-test-size set (60,502 x 512 L2-normalised
  embeddings in 11,316 classes of 2-12 images) as a whole process, once with ``--device cpu`` and once
  with ``--device cuda``; both timings, and every Recall@k, mAP@R and mAP@1000 equal within
  ``TIE_FLIPS / n``. Both devices compute full float32 products (TF32 off), but cuBLAS and OpenBLAS sum
  the 512 terms in different orders, so two gallery items whose similarities to a query lie within a few
  float32 ulps can swap places. One such swap changes one query's Recall@k by at most 1 and its AP@R or
  AP@1000 by at most 1, so each mean moves by at most 1/n; ``TIE_FLIPS`` swaps are allowed.
- ``kmeans``: faiss-gpu k-means (``tasks.evaluate.nmi.kmeans_assign`` with a GPU index, one cluster per
  class, the evaluation's seed) against the CPU route on the same set: NMI equal within ``NMI_TOLERANCE``
  (the same algorithm with float sums in another order: a borderline point can change cluster and the
  iterations carry it on, as another seed would; on the CPU, seeds 0, 1, 2 on a 20,000 x 512 set of
  3,740 classes made the same way gave NMI 0.92217, 0.92073, 0.92055: at most 1.6e-3 apart, a third of
  the tolerance). SKIP when faiss has no GPU support (the ``faiss-cpu`` wheel).
- ``trial``: ``benchmarks/bench_gpu_trial.py`` run as it is (ResNet50 at 224, batch 112 of 2 per class,
  AMP): a trial's training throughput over bare forward-backward at least ``TRIAL_GOAL``.
- ``study``: ``oodml run`` of a light study of 4 trials on the glyph demo dataset (1 method, 2 splits x 2
  seeds, no tuning) at ``resources.gpus: 0.25``: all 4 completed on CUDA holding Ray's one GPU (GPU id
  "0" in every result row), and the 4 were placed at once (the study's status table: the driver's
  start and end time of every trial), with the trials' own training intervals (result rows'
  ``finished_at`` minus ``time_total_s``) overlapping as a figure.

``--dry-run`` runs each check's code on the CPU at tiny sizes: 2,000 x 64 embeddings (``--device cpu``
both times), the CPU k-means route twice, bench_gpu_trial's CPU defaults (glyph CNN) on 32 glyph classes
with the ratio printed but no goal, and the study at ``gpus: 0`` with 4 trials at 0.5 CPU on a 2-CPU Ray.
``--force-fail CHECK`` turns that check's verdict into FAIL after it ran, to test that a failure makes the
exit code non-zero. The device, CPU model and load average head the output; exit code 0 when no check
failed, 1 otherwise, 2 without CUDA and without ``--dry-run``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import yaml
from bench_sop_scale import class_sizes
from loadavg import cpu, load

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("evaluate", "kmeans", "trial", "study")
TIE_FLIPS = 10  # near-tie swaps allowed between the CPU's and the GPU's rankings (module docstring)
NMI_TOLERANCE = 0.005
TRIAL_GOAL = 0.85
STUDY_TRIALS = 4


@dataclass(frozen=True)
class Sizes:
    """What a run works on: SOP's test side on a GPU, tiny on the CPU."""

    images: int
    classes: int
    dim: int
    device: str
    trial_args: tuple[str, ...]
    study_resources: dict
    ray_cpus: int | None


GPU_SIZES = Sizes(
    images=60_502,
    classes=11_316,
    dim=512,
    device="cuda",
    trial_args=("--device", "cuda"),  # bench_gpu_trial's CUDA defaults: ResNet50, 224 px, batch 112
    study_resources={"cpus": 1, "gpus": 0.25},
    ray_cpus=None,  # all the machine's
)
DRY_SIZES = Sizes(
    images=2_000,
    classes=374,  # SOP's 5.35 images per class
    dim=64,
    device="cpu",
    trial_args=tuple("--device cpu --classes 32 --batch-size 32 --steps 3 --epochs 2 --repeats 1".split()),
    study_resources={"cpus": 0.5, "gpus": 0},
    ray_cpus=2,
)


@dataclass(frozen=True)
class Verdict:
    status: str  # PASS, FAIL or SKIP
    figures: str


def sop_test_like(images: int, classes: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``images`` L2-normalised embeddings in exactly ``classes`` classes of 2-12 images (SOP-like sizes,
    ``bench_sop_scale.class_sizes``, nudged by one image at a time to the total), class centre + noise."""
    rng = np.random.default_rng(seed)
    sizes = class_sizes(classes, rng)
    if not 2 * classes <= images <= 12 * classes:
        raise ValueError(f"{images} images cannot form {classes} classes of 2-12 images")
    while (gap := images - int(sizes.sum())) != 0:
        room = np.flatnonzero(sizes < 12 if gap > 0 else sizes > 2)
        picked = rng.choice(room, size=min(abs(gap), len(room)), replace=False)
        sizes[picked] += np.sign(gap)
    labels = np.repeat(np.arange(classes), sizes)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centres[labels] + 1.2 * rng.normal(size=(images, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def _run(command: list[str], cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds of a whole process and its outcome; RuntimeError with its output's tail if it failed. The
    process (and Ray's workers, which inherit its environment) imports this checkout's packages."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(command[1:])} exited {done.returncode}:\n{tail}")
    return seconds, done


def check_evaluate(sizes: Sizes, work: Path, dry_run: bool) -> Verdict:
    x, labels = sop_test_like(sizes.images, sizes.classes, sizes.dim)
    path = work / "embeddings.npz"
    np.savez(path, embeddings=x, labels=labels)
    runs = []  # (seconds, metrics) with --device cpu, then with the device under test
    for device in ("cpu", sizes.device):
        command = [sys.executable, "-m", "study.cli", "evaluate", str(path), "--json", "--no-nmi"]
        seconds, done = _run([*command, "--device", device], ROOT, timeout=300)
        runs.append((seconds, json.loads(done.stdout.strip().splitlines()[-1])))
    (cpu_seconds, cpu_values), (device_seconds, device_values) = runs
    if set(cpu_values) != set(device_values):
        return Verdict("FAIL", f"metric names differ: {sorted(cpu_values)} vs {sorted(device_values)}")
    worst = max(abs(cpu_values[k] - device_values[k]) for k in cpu_values) * len(labels)
    values = ", ".join(f"{k} {v:.6f}" for k, v in cpu_values.items())
    figures = (
        f"{len(labels)} x {x.shape[1]}, {sizes.classes} classes; whole process --device cpu {cpu_seconds:.1f} s, "
        f"--device {sizes.device} {device_seconds:.1f} s; largest |difference| = {worst:.2f} / n "
        f"(allowed {TIE_FLIPS} / n); cpu values: {values}"
    )
    return Verdict("PASS" if worst <= TIE_FLIPS else "FAIL", figures)


def check_kmeans(sizes: Sizes, work: Path, dry_run: bool) -> Verdict:
    from tasks.evaluate.nmi import faiss_gpus, kmeans_assign, normalized_mutual_info

    gpus = faiss_gpus()
    if not dry_run and gpus == 0:
        return Verdict("SKIP", "faiss has no GPU support here (get_num_gpus() = 0: the faiss-cpu wheel)")
    x, labels = sop_test_like(sizes.images, sizes.classes, sizes.dim)
    routes = {"cpu": None, "gpu": None if dry_run else 0}  # dry run: the GPU route's call, on the CPU
    nmi, seconds = {}, {}
    for route, gpu in routes.items():
        start = time.perf_counter()
        clusters = kmeans_assign(x, sizes.classes, seed=0, gpu=gpu)
        seconds[route] = time.perf_counter() - start
        nmi[route] = normalized_mutual_info(labels, clusters)
    gap = abs(nmi["cpu"] - nmi["gpu"])
    figures = (
        f"faiss GPUs {gpus}; {len(labels)} x {x.shape[1]} into {sizes.classes} clusters; NMI cpu "
        f"{nmi['cpu']:.6f} ({seconds['cpu']:.1f} s), gpu {nmi['gpu']:.6f} ({seconds['gpu']:.1f} s); "
        f"|difference| {gap:.2e} (allowed {NMI_TOLERANCE})"
    )
    return Verdict("PASS" if gap <= NMI_TOLERANCE else "FAIL", figures)


def check_trial(sizes: Sizes, work: Path, dry_run: bool) -> Verdict:
    script = Path(__file__).with_name("bench_gpu_trial.py")
    _, done = _run([sys.executable, str(script), *sizes.trial_args], ROOT, timeout=400)
    for line in done.stdout.strip().splitlines():
        print(f"    {line}")
    found = re.search(r"trial / bare forward-backward: median ([0-9.]+) \(([0-9.]+) without", done.stdout)
    if found is None:
        return Verdict("FAIL", "bench_gpu_trial.py printed no median ratio")
    ratio, without_checkpoints = float(found[1]), float(found[2])
    figures = (
        f"trial / bare forward-backward {ratio:.2f} ({without_checkpoints:.2f} without checkpoint writes)"
    )
    if dry_run:
        return Verdict("PASS", f"{figures}; dry run: goal {TRIAL_GOAL} not applied")
    return Verdict("PASS" if ratio >= TRIAL_GOAL else "FAIL", f"{figures}; goal >= {TRIAL_GOAL}")


def light_study(sizes: Sizes, root: Path) -> dict:
    """4 trials: one method, 2 splits x 2 seeds, no tuning, few-shot budget 0 only."""
    return {
        "name": "gpu-acceptance",
        "datasets": [
            {
                "name": "glyphs",
                "root": str(root / "glyphs"),
                "options": {"num_classes": 16, "max_chars": 60},
                "splits": {"select": 2, "steps": 3, "easier_steps": 2, "removal_steps": 2, "episodes": 2},
            }
        ],
        "methods": [{"name": "triplet"}],
        "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "samples_per_class": 4,
            "iterations_per_epoch": 10,
            "lr": 2e-3,
            "with_nmi": False,
            "record_test_curve": False,
            "device": sizes.device,
        },
        "fewshot": {"budgets": [0]},
        "tuning": {"trials": 0},
        "seeds": [0, 1],
        "resources": sizes.study_resources,
        "ray": {"num_cpus": sizes.ray_cpus, "dashboard": False},
        "storage": {"root": str(root / "study")},
    }


def most_at_once(intervals: list[tuple]) -> int:
    """The most intervals open at one instant (an end sorts before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def check_study(sizes: Sizes, work: Path, dry_run: bool) -> Verdict:
    from study.results import read_results
    from study.results.status import read_trial_status

    config = work / "study.yaml"
    config.write_text(yaml.safe_dump(light_study(sizes, work)))
    seconds, _ = _run([sys.executable, "-m", "study.cli", "run", str(config)], work, timeout=400)
    results = read_results(work / "study").to_pylist()
    status = read_trial_status(work / "study").to_pylist()
    trials = {row["trial_id"]: row for row in results}
    completed = sorted(t for t, row in trials.items() if row["status"] == "completed")
    devices = sorted({str(row["device"]) for row in trials.values()})
    gpu_ids = sorted({tuple(row["ray_gpu_ids"] or ()) for row in trials.values()})
    placed = most_at_once([(row["started_at"], row["finished_at"]) for row in status])
    ran = most_at_once(
        [(r["finished_at"] - timedelta(seconds=r["time_total_s"]), r["finished_at"]) for r in trials.values()]
    )
    expected_ids = [()] if sizes.study_resources["gpus"] == 0 else [("0",)]
    figures = (
        f"{len(completed)}/{STUDY_TRIALS} completed in {seconds:.1f} s, resources {sizes.study_resources}; "
        f"devices {devices}, Ray GPU ids {gpu_ids}; at once: {placed} placed by Ray, {ran} training"
    )
    ok = (
        len(completed) == STUDY_TRIALS
        and {d.split(":")[0] for d in devices} == {sizes.device}  # cuda or cuda:0
        and gpu_ids == expected_ids
        and placed == STUDY_TRIALS
    )
    return Verdict("PASS" if ok else "FAIL", figures)


RUNNERS: dict[str, Callable[[Sizes, Path, bool], Verdict]] = {
    "evaluate": check_evaluate,
    "kmeans": check_kmeans,
    "trial": check_trial,
    "study": check_study,
}


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return names


def _device_line(dry_run: bool) -> str:
    import torch

    if dry_run:
        return f"device: CPU (dry run: tiny sizes); torch {torch.__version__}"
    props = torch.cuda.get_device_properties(0)
    return f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    parser.add_argument("--only", type=_names, default=list(CHECKS), help="comma-separated checks to run")
    parser.add_argument(
        "--force-fail",
        type=_names,
        default=[],
        help="checks whose verdict becomes FAIL (tests the exit code)",
    )
    args = parser.parse_args()
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print(
                "gpu_acceptance: no CUDA device here: this script checks a GPU machine; run it with "
                "--dry-run to exercise its code on the CPU at tiny sizes",
                file=sys.stderr,
            )
            return 2
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    print(_device_line(args.dry_run))
    print(f"CPU: {cpu()}; {load()}", flush=True)
    started = time.perf_counter()
    failed = False
    for name in args.only:
        check_start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"gpu-acceptance-{name}-") as tmp:
            try:
                verdict = RUNNERS[name](sizes, Path(tmp), args.dry_run)
            except Exception as err:  # one check's failure must not hide the others' verdicts
                verdict = Verdict("FAIL", f"{type(err).__name__}: {err}")
        if name in args.force_fail:
            verdict = Verdict("FAIL", f"{verdict.figures} [was {verdict.status}; forced by --force-fail]")
        failed |= verdict.status == "FAIL"
        print(
            f"{verdict.status} {name}: {verdict.figures} [{time.perf_counter() - check_start:.1f} s; {load()}]",
            flush=True,
        )
    print(f"{'FAILED' if failed else 'OK'} in {time.perf_counter() - started:.1f} s; {load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
