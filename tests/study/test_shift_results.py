"""Shift measures beyond FID in the results: the split's measures reach the rows through the trial
record, curves and AUC are drawn against any of them, and Kendall's tau compares their split orders."""

from __future__ import annotations

import argparse
import itertools

import pyarrow.parquet as pq
import pytest

from study.results import (
    add_results_arguments,
    auc_summary,
    degradation_curves,
    format_summary,
    read_results,
    results,
    shift_agreement,
    write_trial_result,
)
from study.results.compare import compare
from tasks.record import TrialRecord
from tests.records import SPLITS, make_record

# split id -> its measures: MMD orders split 2 (FID 20) below split 0 (FID 10), unlike FID
MEASURES = {0: {"mmd": 0.02, "fid@other": 3.0}, 1: {"mmd": 0.30, "fid@other": 9.0}, 2: {"mmd": 0.01}}


def _write(study_dir, measures=MEASURES, seeds=(0, 1)) -> None:
    for split, seed in itertools.product(SPLITS, seeds):
        record = make_record("margin", split, seed).with_identity(shift=measures.get(split[0]))
        write_trial_result(study_dir, record, stage="eval", study="demo")


def test_the_splits_measures_travel_from_the_record_to_the_rows(tmp_path) -> None:
    record = make_record().with_identity(shift={"mmd": 0.25, "fid@resnet50": 40.0})
    assert TrialRecord.from_json(record.to_json()) == record
    assert record.scalars()["shift/mmd"] == 0.25  # an MLflow metric
    path = write_trial_result(tmp_path, record, stage="eval", study="demo")
    rows = read_results(tmp_path)
    assert {tuple(sorted(v)) for v in rows["shift"].to_pylist()} == {(("fid@resnet50", 40.0), ("mmd", 0.25))}
    # a file written before the column reads it as null
    pq.write_table(pq.read_table(path).drop_columns(["shift"]), path)
    assert read_results(tmp_path)["shift"].null_count == read_results(tmp_path).num_rows


def test_curves_and_auc_against_mmd_equal_the_hand_computed_trapezoid(tmp_path) -> None:
    _write(tmp_path)
    table = read_results(tmp_path)
    curves = degradation_curves(table, shift="mmd").to_pandas()
    assert list(curves["split_id"]) == [2, 0, 1] and list(curves["shift_value"]) == [0.01, 0.02, 0.30]
    assert set(curves["shift"]) == {"mmd"}
    # Recall@1 of make_record: 0.9 - FID / 100 + 0.01 seed, so 0.7, 0.8, 0.55 (+0.005 on average) at
    # MMD 0.01, 0.02, 0.30: the trapezoid area over the MMD range
    area = 0.01 * (0.705 + 0.805) / 2 + 0.28 * (0.805 + 0.555) / 2
    auc = auc_summary(table, shift="mmd").to_pylist()[0]
    assert auc["auc"] == pytest.approx(area / 0.29, rel=1e-12)
    assert (auc["shift"], auc["shift_min"], auc["shift_max"]) == ("mmd", 0.01, 0.30)
    assert (auc["fid_min"], auc["fid_max"]) == (10.0, 35.0)
    by_fid = auc_summary(table).to_pylist()[0]
    assert (by_fid["shift"], by_fid["shift_min"], by_fid["shift_max"]) == ("fid", 10.0, 35.0)
    assert by_fid["auc"] != pytest.approx(auc["auc"])


def test_a_measure_that_some_split_lacks_is_refused_naming_those_present(tmp_path) -> None:
    _write(tmp_path)
    table = read_results(tmp_path)
    with pytest.raises(ValueError, match=r"'fid@other' is not stored for splits \['6'\].*have: fid, mmd"):
        auc_summary(table, shift="fid@other")
    with pytest.raises(ValueError, match=r"'mmd2' is not stored for splits \['0', '6', 'R22'\]"):
        degradation_curves(table, shift="mmd2")


def test_kendall_tau_of_each_measure_against_fid(tmp_path) -> None:
    _write(tmp_path)
    agreement = {r["shift"]: r for r in shift_agreement(read_results(tmp_path)).to_pylist()}
    # FID orders the splits 0 < 2 < 1, MMD 2 < 0 < 1: of 3 pairs, 2 concordant and 1 discordant
    assert agreement["mmd"]["kendall_tau"] == pytest.approx((2 - 1) / 3)
    assert agreement["mmd"]["n_splits"] == 3 and agreement["mmd"]["dataset"] == "glyphs"
    assert agreement["fid@other"]["kendall_tau"] == pytest.approx(1.0)  # 2 splits, one concordant pair
    assert agreement["fid@other"]["n_splits"] == 2


def test_results_command_draws_against_the_chosen_measure(tmp_path, capsys) -> None:
    _write(tmp_path)
    parser = argparse.ArgumentParser()
    add_results_arguments(parser)
    assert results(parser.parse_args([str(tmp_path), "--shift", "mmd"])) == 0
    out = capsys.readouterr().out
    assert "Normalized AUC of test recall@1 over mmd" in out
    assert "6 @ 0.01 (95)" in out and "Kendall tau-b" in out
    assert "Normalized AUC of test recall@1 over FID" in format_summary(tmp_path)


def test_paired_comparison_weights_the_splits_by_the_chosen_measure(tmp_path) -> None:
    """Over MMD the pair's AUC difference is that of auc_summary(shift="mmd"), not of FID's AUCs."""
    for split, seed in itertools.product(SPLITS, (0, 1, 2)):
        base = 0.9 - split[2] / 100 + 0.01 * seed
        for method, r1 in (("margin", base), ("triplet", base - 0.05 * (split[0] == 1) - 0.01 * seed)):
            record = make_record(method, split, seed, r1=r1).with_identity(shift=MEASURES[split[0]])
            write_trial_result(tmp_path, record, stage="eval", study="demo")
    table = read_results(tmp_path)
    by_shift = {}
    for shift in ("fid", "mmd"):
        auc = {r["method"]: r["auc"] for r in auc_summary(table, shift=shift).to_pylist()}
        [pair] = compare(table, shift=shift).pairs.to_pylist()
        assert (pair["method_a"], pair["method_b"], pair["shift"]) == ("margin", "triplet", shift)
        assert pair["diff"] == pytest.approx(auc["margin"] - auc["triplet"], abs=1e-12)
        by_shift[shift] = pair["diff"]
    assert by_shift["fid"] != pytest.approx(by_shift["mmd"])  # split 1's weight differs between them
