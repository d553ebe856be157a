"""``oodml results``, ``oodml results --compare --json`` and ``oodml report`` on a paper-shaped study folder.

Writes a results folder shaped like the paper's whole study (3 datasets x 8 methods x 9 splits x 5 seeds
= 1,080 evaluation trials, few-shot budgets 2, 5 and 10, 40-epoch curves) through the same writer the
runner uses, then times each command as a whole process (imports, reading, aggregation, output) against
the goals of 3 s, 4 s and 10 s.

    python benchmarks/bench_results.py [--folder DIR] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loadavg import cpu, load

from study.results import write_trial_result
from tasks.config import TrialConfig
from tasks.record import Curves, Environment, Measurement, Timings, TrialIdentity, TrialRecord

DATASETS = ("cub200", "cars196", "sop")
METHODS = ("margin", "rmargin", "multisimilarity", "arcface", "proxyanchor", "uniformity", "s2sd", "diva")
SPLITS = [
    (k, key, 10.0 + 15 * k) for k, key in enumerate(("0", "6", "10", "30", "-10", "-20", "R22", "R48", "R66"))
]
SEEDS = range(5)
SHOTS = (2, 5, 10)
METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "map@1000", "nmi")
GOALS = {"results": 3.0, "results --compare --json": 4.0, "report": 10.0}


def config(dataset: str, method: str, key: str, seed: int) -> dict:
    """The resolved trial config a real row set stores (every field: about 2 KB of JSON per row)."""
    return TrialConfig.model_validate(
        {
            "data": {
                "dataset": dataset,
                "root": f"/data/{dataset}",
                "split_file": "/runs/splits.json",
                "split": key,
            },
            "method": {"name": method},
            "fewshot": {"shots": list(SHOTS)},
            "seed": seed,
        }
    ).model_dump(mode="json")


def record(dataset: str, method: str, split: tuple, seed: int, rng: np.random.Generator) -> TrialRecord:
    split_id, key, fid = split
    base = 0.75 - 0.002 * fid - 0.01 * METHODS.index(method) / 8 + rng.normal(0, 0.01)
    values = {m: float(np.clip(base * (1 - 0.05 * i), 0, 1)) for i, m in enumerate(METRICS)}
    measurements = [Measurement("test", m, v) for m, v in values.items()]
    measurements += [Measurement("val", m, v + 0.05) for m, v in values.items()]
    measurements.append(Measurement("val", "selection_score", values["recall@1"] + values["map@r"]))
    for s in SHOTS:
        budget = {"episodes": 10, "left_out_classes": 0, "support": "images"}
        for kind, shift in (("zeroshot", 0.0), ("fewshot", 0.01 * s)):
            measurements += [
                Measurement("test", m, v + shift, s, kind, 0.01, **budget) for m, v in values.items()
            ]
    epochs = 40
    return TrialRecord(
        identity=TrialIdentity(
            trial_id=f"{dataset}-{method}-{split_id}-{seed}",
            dataset=dataset,
            split_id=split_id,
            split_key=key,
            split_progression="removal" if key.startswith("R") else "harder",
            split_hash=f"{dataset}{split_id}",
            fid=fid,
            num_train_classes=100,
            num_test_classes=100,
            method=method,
            method_name=method,
            backbone="resnet50",
            embedding_dim=512,
            seed=seed,
            epochs=epochs,
            protocol="validated",
        ),
        measurements=tuple(measurements),
        curves=Curves(
            tuple(range(epochs)),
            {
                "train/loss": tuple(1.0 / (e + 1) for e in range(epochs)),
                "val/recall@1": tuple(0.5 + 0.005 * e for e in range(epochs)),
            },
        ),
        selected_epoch=epochs - 1,
        hyperparameters={"beta": 1.2},
        config=config(dataset, method, key, seed),
        checkpoint=f"/runs/paper/trials/{dataset}-{method}-{split_id}-{seed}/best.pt",
        timings=Timings(train_s=100.0, test_eval_s=5.0, fewshot_s=20.0, total_s=125.0),
        environment=Environment({"python": "3.11", "oodml": "0.1.0", "torch": "2.14.1"}, "cuda", 8),
    )


def write_study(folder: Path) -> int:
    rng = np.random.default_rng(0)
    count = 0
    for dataset in DATASETS:
        for method in METHODS:
            for split in SPLITS:
                for seed in SEEDS:
                    write_trial_result(
                        folder, record(dataset, method, split, seed, rng), stage="eval", study="paper"
                    )
                    count += 1
    return count


def timed(arguments: list[str], repeats: int = 3) -> float:
    """The median wall time of ``oodml ARGUMENTS`` over ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "study.cli", *arguments], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="write (or reuse) the study folder here")
    parser.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-results-"))
    print(f"{cpu()}; {load()}")
    if not (folder / "results").is_dir():
        started = time.perf_counter()
        count = write_study(folder)
        print(f"wrote {count} trials to {folder} in {time.perf_counter() - started:.1f} s")
    commands = {
        "results": ["results", str(folder)],
        "results --compare --json": ["results", str(folder), "--compare", "--json"],
        "report": ["report", str(folder)],
    }
    for name, arguments in commands.items():
        took = timed(arguments)
        verdict = "met" if took < GOALS[name] else "NOT met"
        print(f"oodml {name}: {took:.1f} s (goal < {GOALS[name]:.0f} s: {verdict})")
    print(load())
    if not args.keep and args.folder is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
