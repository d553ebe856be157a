"""Per-trial cost of the study runner (Ray Tune + MLflow + Arrow) against calling ``run_trial`` directly.

    python benchmarks/bench_orchestration.py [--trials 4] [--steps 8]

Both run the same tiny glyph trials (one method on the default split, one seed per trial), one at a
time on one thread: directly in this process, then as a study on a local Ray with one CPU per trial
and concurrency 1 (its Ray start is timed apart: a study pays it once). The difference per trial is
what orchestration costs: a worker process per trial, Tune's bookkeeping and checkpoints, the MLflow
child run and the Parquet rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from study.cluster import configure


def spec(root: Path, trials: int, steps: int) -> dict:
    return {
        "name": "bench",
        "datasets": [
            {
                "name": "glyphs",
                "root": str(root / "cache"),
                "options": {"num_classes": 16, "max_chars": 60},
                "splits": {"select": 2, "steps": 3, "easier_steps": 2, "removal_steps": 2, "episodes": 2},
                "evaluate": ["0"],
            }
        ],
        "methods": [{"name": "multisimilarity"}],
        "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "samples_per_class": 4,
            "iterations_per_epoch": steps,
            "with_nmi": False,
            "record_test_curve": False,
        },
        "fewshot": {"budgets": [0, 2], "iterations": {2: steps}, "batch_size": 16},
        "seeds": list(range(trials)),
        "concurrency": 1,
        "storage": {"root": str(root / "study")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="training steps per epoch (2 epochs)")
    args = parser.parse_args()
    configure(None)
    import ray

    from study.cluster import ray_session
    from study.expand import DatasetPlan, evaluation_trials
    from study.runner import run_study
    from study.spec import load_spec
    from study.splitfiles import split_file
    from tasks.trial import run_trial

    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        root = Path(tmp)
        study_spec = load_spec(spec(root, args.trials, args.steps))
        entry = study_spec.datasets[0]
        plan = DatasetPlan.load(entry, split_file(entry, study_spec.shots, study_spec.study_dir), study_spec)
        trials = evaluation_trials(study_spec, [plan], {})

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what a Ray trial with one CPU gets
        started = time.perf_counter()
        for trial in trials:
            run_trial(trial.config, root / "direct" / trial.trial_id)
        direct = (time.perf_counter() - started) / len(trials)
        torch.set_num_threads(threads)

        started = time.perf_counter()
        with ray_session(None, dashboard=False, num_cpus=2):
            ray_start = time.perf_counter() - started
            started = time.perf_counter()
            outcome = run_study(study_spec, address=None, echo=lambda line: None)
            orchestrated = (time.perf_counter() - started) / len(trials)
        assert outcome.ok and outcome.executed == len(trials), outcome
        assert not ray.is_initialized()

    print(
        f"{len(trials)} trials of 2 x {args.steps} steps: direct run_trial {direct:.2f} s/trial, "
        f"study runner {orchestrated:.2f} s/trial (+ {ray_start:.1f} s Ray start once per study)\n"
        f"orchestration overhead {orchestrated - direct:.2f} s/trial, ratio {orchestrated / direct:.2f}x"
    )


if __name__ == "__main__":
    main()
