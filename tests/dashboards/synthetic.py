"""A synthetic study folder shaped like the runner's: result rows, a projection table, a live driver and trial."""

from __future__ import annotations

import os
import shutil
import socket
import traceback
from pathlib import Path

import numpy as np

from study.projection import write_split_projection
from study.results import write_trial_result
from study.results.status import DriverStatus, now, write_driver
from study.status import trial_started
from tasks.record import Measurement, Timings, TrialIdentity, TrialRecord
from tasks.splits.files import Split, SplitFile, write_json

DATASET = "glyphs"
# (id, key, progression, fid, train classes, test classes): removal splits have fewer classes.
SPLITS = [
    (0, "-6", "easier", 17.8, 20, 20),
    (1, "0", "harder", 24.1, 20, 20),
    (2, "12", "harder", 36.9, 20, 20),
    (3, "R4", "removal", 45.3, 20, 16),
]
# Recall@1 on the easiest split and its loss per unit of FID: the single-split and AUC rankings differ.
METHODS = {"multisimilarity": (0.66, 0.0062), "margin": (0.62, 0.0040), "triplet": (0.665, 0.0078)}
RUNNING_TRIAL = "f00dfeedf00dfeed"
# What the dashboard of ``make_study``'s folder holds.
SECTIONS = [
    "degradation",
    "ranking",
    "compare",
    "fewshot",
    "oracle",
    "splits",
    "shift",
    "projection",
    "status",
]
FIGURES = {f"{name}_{DATASET}.png" for name in SECTIONS[:-1] if name != "oracle"} | {"status.png"}


# A study shaped like the paper's: 3 datasets x 8 methods x 9 splits x 5 seeds = 1,080 evaluation trials.
PAPER_DATASETS = ("cub200", "cars196", "sop")
PAPER_METHODS = {
    name: (0.70 - 0.006 * i, 0.0030 + 0.0004 * (i % 5))
    for i, name in enumerate(
        ("margin", "rmargin", "multisimilarity", "arcface", "proxyanchor", "uniformity", "s2sd", "diva")
    )
}
PAPER_SPLITS = [
    (
        k,
        key,
        "removal" if key.startswith("R") else "easier" if key.startswith("-") else "harder",
        fid,
        100,
        n_test,
    )
    for k, (key, fid, n_test) in enumerate(
        [("-20", 12.0, 100), ("-10", 18.0, 100), ("0", 25.0, 100), ("6", 31.0, 100), ("10", 38.0, 100)]
        + [("30", 52.0, 100), ("R22", 44.0, 78), ("R48", 58.0, 52), ("R66", 66.0, 34)]
    )
]
PAPER_SEEDS, PAPER_SHOTS = range(5), (2, 5, 10)


def trial_record(
    method: str,
    split: tuple,
    seed: int,
    shots: tuple[int, ...],
    dataset: str = DATASET,
    methods: dict[str, tuple[float, float]] = METHODS,
) -> TrialRecord:
    """A completed trial's record with degrading Recall@1 and a few-shot gain that grows with FID;
    ``methods``: each method's Recall@1 on the easiest split and its loss per unit of FID."""
    split_id, key, progression, fid, n_train, n_test = split
    start, slope = methods[method]
    rng = np.random.default_rng([split_id, seed, len(method), len(dataset)])
    recall = start - slope * (fid - SPLITS[0][3]) + rng.normal(0, 0.006) + 0.002 * (20 - n_test)
    measurements = [
        Measurement("test", "recall@1", recall),
        Measurement("test", "map@r", 0.55 * recall - 0.05),
        Measurement("val", "recall@1", 0.7),
        Measurement("val", "selection_score", 1.1),
    ]
    for s in shots:
        gain = 0.02 * s**0.5 * (1 + (fid - SPLITS[0][3]) / 20) + rng.normal(0, 0.004)
        budget = {"episodes": 4, "left_out_classes": 0, "support": "images"}
        for kind, value in (("zeroshot", recall + 0.03), ("fewshot", recall + 0.03 + gain)):
            measurements.append(Measurement("test", "recall@1", value, s, kind, 0.012 + 0.01 / s, **budget))
            measurements.append(Measurement("test", "map@r", 0.55 * value - 0.05, s, kind, 0.01, **budget))
    return TrialRecord(
        identity=TrialIdentity(
            trial_id=f"{dataset}-{method}-{split_id}-{seed}",
            dataset=dataset,
            split_id=split_id,
            split_key=key,
            split_progression=progression,
            split_hash=f"hash{split_id}",
            fid=fid,
            num_train_classes=n_train,
            num_test_classes=n_test,
            shift={"mmd": 0.004 * fid - 0.05},  # MMD stored with the split, ordered as FID
            method=method,
            backbone="glyph_cnn",
            embedding_dim=64,
            seed=seed,
            epochs=2,
            protocol="paper",
        ),
        hyperparameters={"lr": 2e-3},
        measurements=tuple(measurements),
        selected_epoch=1,
        timings=Timings(
            train_s=9.0 + rng.uniform(0, 2),
            test_eval_s=1.0,
            fewshot_s=2.0 * len(shots),
            total_s=13.0 + rng.uniform(0, 2),
        ),
    )


def write_split_file(study_dir: Path, splits: list[tuple], dims: int = 16) -> None:
    """``splits/<dataset>/splits.json`` and ``class_means.npz``: two feature clusters, harder splits
    putting more of one cluster on the test side."""
    rng = np.random.default_rng(0)
    classes = max(n_train + n_test for *_, n_train, n_test in splits)
    names = [f"c{i:03d}" for i in range(classes)]
    cluster = np.arange(classes) >= classes // 2
    means = rng.normal(0, 1, (classes, dims)) + 6.0 * cluster[:, None] * np.eye(dims)[0]
    built = []
    for split_id, key, progression, fid, n_train, n_test in splits:
        hardness = split_id / max(len(splits) - 1, 1)
        order = np.argsort(hardness * cluster + (1 - hardness) * rng.uniform(0, 1, classes))
        test = [names[i] for i in order[-n_test:]]
        train = [names[i] for i in order[:n_train]]
        built.append(
            Split(
                id=split_id,
                key=key,
                progression=progression,
                fid=fid,
                train=train,
                test=test,
                split_train=train[: n_train // 2],
                split_val=train[n_train // 2 :],
            )
        )
    folder = study_dir / "splits" / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    write_json(SplitFile(splits=built, provenance={"dataset": DATASET}), folder / "splits.json")
    np.savez(
        folder / "class_means.npz", class_names=np.array(names), means=means, extractor="glyph-classifier"
    )


def make_study(
    study_dir: Path,
    methods: list[str],
    splits: list[tuple] = SPLITS,
    seeds: tuple[int, ...] = (0, 1),
    shots: tuple[int, ...] = (2,),
) -> Path:
    """A study folder mid-run: completed trials, one failed trial, one running (folder, lock held by us)."""
    for method in methods:
        for split in splits:
            for seed in seeds:
                write_trial_result(
                    study_dir, trial_record(method, split, seed, shots), stage="eval", study="demo"
                )
    try:
        raise FloatingPointError("loss is nan at epoch 1 (lr too high?)")
    except FloatingPointError:
        error = traceback.format_exc()
    identity = TrialIdentity("failed-trial", dataset=DATASET, split_key="12", method=methods[0], seed=2)
    write_trial_result(study_dir, TrialRecord.failed(identity, error), stage="eval", study="demo")
    write_split_file(study_dir, splits)
    assert write_split_projection(study_dir, DATASET, study_dir / "splits" / DATASET / "splits.json")
    shutil.rmtree(study_dir / "splits")  # the dashboard reads tables only
    trial_started(study_dir, RUNNING_TRIAL, "eval", f"{DATASET}/{methods[0]}/split 0/seed 3")
    driver_running(study_dir)
    return study_dir


def make_paper_study(study_dir: Path) -> Path:
    """A finished study folder shaped like the paper's: 1,080 completed evaluation trials with few-shot
    budgets 2, 5 and 10 (``benchmarks/bench_results.py`` times the commands on a folder of this shape)."""
    for dataset in PAPER_DATASETS:
        for method in PAPER_METHODS:
            for split in PAPER_SPLITS:
                for seed in PAPER_SEEDS:
                    record = trial_record(method, split, seed, PAPER_SHOTS, dataset, PAPER_METHODS)
                    write_trial_result(study_dir, record, stage="eval", study="paper")
    return study_dir


def driver_running(study_dir: Path, host: str | None = None, state: str = "running") -> None:
    """The status table of a driver that is running now (``state`` running), as ``study.status`` writes it."""
    at = now()
    write_driver(study_dir, DriverStatus(os.getpid(), host or socket.gethostname(), state, at, at))
