"""Trial records shaped like ``tasks.trial.run_trial``'s, for the results tests."""

from __future__ import annotations

import json

from study.results import write_trial_result

SPLITS = [(0, "0", 10.0, 100), (1, "R22", 35.0, 80), (2, "6", 20.0, 95)]  # (id, key, fid, test classes)
METRICS = ("recall@1", "recall@2", "map@r", "map@1000", "nmi")


def make_record(method="margin", split=SPLITS[0], seed=0, r1=None, shots=(2,), epochs=3) -> dict:
    """A trial record shaped like tasks.trial.run_trial's, with recall@1 = ``r1``."""
    split_id, key, fid, n_test = split
    r1 = 0.9 - fid / 100 + 0.01 * seed if r1 is None else r1
    rec = {
        "record_version": 1,
        "trial_id": f"{method}-{split_id}-{seed}",
        "dataset": "glyphs",
        "split_id": split_id,
        "split_key": key,
        "split_progression": "harder",
        "split_hash": "abc123",
        "fid": fid,
        "num_train_classes": 100,
        "num_test_classes": n_test,
        "method": method,
        "hyperparameters": json.dumps({"margin": 0.2}),
        "backbone": "glyphnet",
        "embedding_dim": 64,
        "seed": seed,
        "epochs": epochs,
        "selected_epoch": epochs - 1,
        "resumed_from_epoch": None,
        "checkpoint": "/tmp/best.pt",
        "config": json.dumps({"seed": seed}),
        "versions": json.dumps({"torch": "2.14.1"}),
        "device": "cpu",
        "curve/epoch": list(range(epochs)),
        "curve/train/loss": [1.0 / (e + 1) for e in range(epochs)],
        "curve/val/recall@1": [0.5 + 0.1 * e for e in range(epochs)],
        "time/train_s": 9.0,
        "time/test_eval_s": 1.0,
        "time/fewshot_s": 2.0,
        "time/total_s": 12.5,
        "torch_threads": 2,
    }
    for metric in METRICS:
        rec[f"val/{metric}"] = 0.7
        rec[f"test/{metric}"] = r1 if metric == "recall@1" else 0.5
    rec["val/selection_score"] = 1.2
    for s in shots:
        rec[f"fewshot/{s}/episodes"] = 10
        rec[f"fewshot/{s}/left_out_classes"] = 0
        rec[f"fewshot/{s}/support"] = "images"
        for kind, value in (("fewshot", r1 + 0.05 * s), ("zeroshot", r1 - 0.01)):
            for metric in METRICS:
                rec[f"fewshot/{s}/{kind}/{metric}"] = value
                rec[f"fewshot/{s}/{kind}/{metric}/ci95"] = 0.02
    return rec


def write_grid(study_dir, methods=("margin", "multisim"), seeds=(0,), values=None) -> None:
    for method in methods:
        for split in SPLITS:
            for seed in seeds:
                r1 = None if values is None else values[method][split[0]][seed]
                write_trial_result(
                    study_dir, make_record(method, split, seed, r1), stage="eval", study="demo"
                )
