"""A cell (dataset, backbone, method, split, seed, role) measured again under other settings: the earlier
trial's row set moves to superseded/ once the new one completes, so aggregations see one trial per cell."""

from __future__ import annotations

import pyarrow.parquet as pq

from study.results import SupersededResults, auc_summary, read_curves, read_results, write_trial_result
from study.results.layout import CURVES_DIR, RESULTS_DIR, SUPERSEDED_DIR
from tests.records import SPLITS, make_record


def _write(study_dir, trial_id, split=SPLITS[0], seed=0, role="benchmark", r1=None):
    record = make_record("margin", split, seed, r1=r1, trial_id=trial_id).with_identity(trial_role=role)
    write_trial_result(study_dir, record, stage="eval", study="demo")


def test_a_cell_measured_again_sets_the_earlier_trial_aside(tmp_path) -> None:
    for split in SPLITS:
        _write(tmp_path, f"old-{split[0]}", split, r1=0.5)
    _write(tmp_path, "other-seed", SPLITS[0], seed=1)
    superseded = SupersededResults(tmp_path, "eval")
    _write(tmp_path, "new-0", SPLITS[0], r1=0.8)

    assert superseded.completed("new-0") == ["old-0"]

    ids = set(read_results(tmp_path)["trial_id"].to_pylist())
    assert ids == {"new-0", "old-1", "old-2", "other-seed"}
    assert "old-0" not in set(read_curves(tmp_path)["trial_id"].to_pylist())
    for folder in (RESULTS_DIR, CURVES_DIR):  # kept, not deleted
        [kept] = (tmp_path / SUPERSEDED_DIR / folder).glob("*.parquet")
        assert set(pq.read_table(kept)["trial_id"].to_pylist()) == {"old-0"}
    auc = auc_summary(read_results(tmp_path)).to_pylist()  # one trial per cell again: no error
    assert [row["method"] for row in auc] == ["margin"]
    assert superseded.completed("new-0") == []  # known cells stay up to date


def test_a_file_without_roles_is_the_benchmarks_cell(tmp_path) -> None:
    _write(tmp_path, "old", role=None)
    _write(tmp_path, "new")
    assert SupersededResults(tmp_path, "eval").completed("new") == ["old"]
    assert set(read_results(tmp_path)["trial_id"].to_pylist()) == {"new"}


def test_the_oracle_of_a_cell_is_another_cell(tmp_path) -> None:
    _write(tmp_path, "benchmark")
    _write(tmp_path, "oracle", role="oracle")
    assert SupersededResults(tmp_path, "eval").completed("oracle") == []
    assert set(read_results(tmp_path)["trial_id"].to_pylist()) == {"benchmark", "oracle"}
