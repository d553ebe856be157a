"""How many splits an AUC summary stands on when seeds cover different splits (study/results/aggregate.py)."""

import pytest

from study.results import auc_summary, read_results, write_trial_result
from tests.records import SPLITS, make_record

# Recall@1 per seed and split id; the splits' FIDs are 10 (id 0), 35 (id 1) and 20 (id 2).
PARTIAL = {0: {0: 0.8, 1: 0.4, 2: 0.6}, 1: {0: 0.7, 1: 0.3}, 2: {0: 0.9, 1: 0.5, 2: 0.7}}  # seed 1 lacks id 2
FULL = {seed: {split_id: 0.5 for split_id in range(3)} for seed in range(3)}


def test_n_splits_is_the_fewest_splits_any_seed_has(tmp_path):
    for method, values in (("margin", PARTIAL), ("multisim", FULL)):
        for seed, per_split in values.items():
            for split in SPLITS:
                if split[0] in per_split:
                    record = make_record(method, split, seed, r1=per_split[split[0]])
                    write_trial_result(tmp_path, record, stage="eval", study="demo")
    summary = {row["method"]: row for row in auc_summary(read_results(tmp_path)).to_pylist()}

    # seeds 0 and 2 have 3 splits, seed 1 has 2: the fewest is 2 (the most would be 3, the mean 2.67)
    assert summary["margin"]["n_splits"] == 2 and summary["margin"]["n_seeds"] == 3
    assert not summary["margin"]["complete"]
    assert summary["multisim"]["n_splits"] == 3 and summary["multisim"]["complete"]
    # per-seed AUCs by hand (trapezoids over FID 10-20-35, divided by the range 25): seed 0
    # (10 x 0.7 + 15 x 0.5) / 25 = 0.58, seed 2 (10 x 0.8 + 15 x 0.6) / 25 = 0.68, seed 1 over FID 10-35
    # only: (0.7 + 0.3) / 2 = 0.5
    assert summary["margin"]["auc"] == pytest.approx((0.58 + 0.68 + 0.5) / 3)
    assert (summary["margin"]["fid_min"], summary["margin"]["fid_max"]) == (10.0, 35.0)
