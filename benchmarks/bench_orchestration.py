"""Per-trial cost of the study runner (Ray Tune + MLflow + Arrow) against calling ``run_trial`` directly.

    python benchmarks/bench_orchestration.py [--trials 4] [--steps 8]

The same tiny glyph trials (one method on the default split, one seed per trial) run one at a time on
one thread: directly in this process (after one warm-up trial), then as studies of ``trials`` and
``2 x trials`` trials on a local Ray with one CPU per trial and concurrency 1. The difference of the two studies gives the
runner's cost per additional trial (Tune's bookkeeping and per-epoch checkpoints, the MLflow child
run, the Parquet rows), apart from what a study pays once (MLflow store and parent run, a Tune
experiment, the first worker's start; Ray's own start is timed separately).
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
        "name": f"bench{trials}",
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
        "storage": {"root": str(root / f"study-{trials}")},
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

    def prepared(root: Path, trials: int):
        study_spec = load_spec(spec(root, trials, args.steps))
        entry = study_spec.datasets[0]
        plan = DatasetPlan.load(entry, split_file(entry, study_spec.shots, study_spec.study_dir), study_spec)
        return study_spec, evaluation_trials(study_spec, [plan], {})

    def orchestrated(study_spec, count: int) -> float:
        started = time.perf_counter()
        outcome = run_study(study_spec, address=None, echo=lambda line: None)
        assert outcome.ok and outcome.executed == count, outcome
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        root = Path(tmp)
        small, trials = prepared(root, args.trials)
        large, _ = prepared(root, 2 * args.trials)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what a Ray trial with one CPU gets
        run_trial(trials[0].config, root / "warm-up")  # first-call costs, as a worker's first trial pays
        started = time.perf_counter()
        for trial in trials:
            run_trial(trial.config, root / "direct" / trial.trial_id)
        direct = (time.perf_counter() - started) / len(trials)
        torch.set_num_threads(threads)

        started = time.perf_counter()
        with ray_session(None, dashboard=False, num_cpus=2):
            ray_start = time.perf_counter() - started
            t_small, t_large = orchestrated(small, args.trials), orchestrated(large, 2 * args.trials)
        assert not ray.is_initialized()

    per_trial = (t_large - t_small) / args.trials
    once = t_small - args.trials * per_trial
    print(
        f"trials of 2 x {args.steps} steps: direct run_trial {direct:.2f} s/trial; study runner "
        f"{per_trial:.2f} s per additional trial, plus {once:.1f} s once per study and {ray_start:.1f} s Ray start\n"
        f"orchestration overhead {per_trial - direct:.2f} s/trial, ratio {per_trial / direct:.2f}x; "
        f"a whole study of {args.trials} trials takes {t_small / (args.trials * direct):.2f}x the direct loop"
    )


if __name__ == "__main__":
    main()
