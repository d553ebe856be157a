"""Trial records shaped like ``tasks.trial.run_trial``'s, for the results tests."""

from __future__ import annotations

from study.results import write_trial_result
from tasks.record import Curves, Environment, Measurement, Timings, TrialIdentity, TrialRecord

SPLITS = [(0, "0", 10.0, 100), (1, "R22", 35.0, 80), (2, "6", 20.0, 95)]  # (id, key, fid, test classes)
METRICS = ("recall@1", "recall@2", "map@r", "map@1000", "nmi")


def make_record(
    method="margin", split=SPLITS[0], seed=0, r1=None, shots=(2,), epochs=3, trial_id=None
) -> TrialRecord:
    """A trial record shaped like tasks.trial.run_trial's, with recall@1 = ``r1``."""
    split_id, key, fid, n_test = split
    r1 = 0.9 - fid / 100 + 0.01 * seed if r1 is None else r1
    measurements = [Measurement("val", metric, 0.7) for metric in METRICS]
    measurements.append(Measurement("val", "selection_score", 1.2))
    measurements += [Measurement("test", m, r1 if m == "recall@1" else 0.5) for m in METRICS]
    for s in shots:
        for kind, value in (("fewshot", r1 + 0.05 * s), ("zeroshot", r1 - 0.01)):
            measurements += [
                Measurement(
                    "test", m, value, s, kind, 0.02, episodes=10, left_out_classes=0, support="images"
                )
                for m in METRICS
            ]
    return TrialRecord(
        identity=TrialIdentity(
            trial_id=trial_id or f"{method}-{split_id}-{seed}",
            dataset="glyphs",
            split_id=split_id,
            split_key=key,
            split_progression="harder",
            split_hash="abc123",
            fid=fid,
            num_train_classes=100,
            num_test_classes=n_test,
            method=method,
            method_name=method,
            backbone="glyphnet",
            embedding_dim=64,
            seed=seed,
            epochs=epochs,
        ),
        hyperparameters={"margin": 0.2},
        config={"seed": seed},
        measurements=tuple(measurements),
        curves=Curves(
            tuple(range(epochs)),
            {
                "train/loss": tuple(1.0 / (e + 1) for e in range(epochs)),
                "val/recall@1": tuple(0.5 + 0.1 * e for e in range(epochs)),
            },
        ),
        selected_epoch=epochs - 1,
        checkpoint="/tmp/best.pt",
        timings=Timings(train_s=9.0, test_eval_s=1.0, fewshot_s=2.0, total_s=12.5),
        environment=Environment({"torch": "2.14.1"}, "cpu", 2),
    )


def write_grid(study_dir, methods=("margin", "multisim"), seeds=(0,), values=None) -> None:
    for method in methods:
        for split in SPLITS:
            for seed in seeds:
                r1 = None if values is None else values[method][split[0]][seed]
                write_trial_result(
                    study_dir, make_record(method, split, seed, r1), stage="eval", study="demo"
                )
