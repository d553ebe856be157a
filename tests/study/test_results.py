import argparse
import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from scipy import stats

from study.results import (
    DEFAULT_SPLIT_KEY,
    SCHEMA,
    SCHEMA_VERSION,
    UnreadableResultWarning,
    add_results_arguments,
    auc_summary,
    completed_trial_ids,
    degradation_curves,
    fewshot_gain,
    format_summary,
    normalized_auc,
    ranking,
    read_curves,
    read_results,
    result_path,
    results,
    write_trial_result,
)
from tasks.record import TrialIdentity, TrialRecord
from tests.records import SPLITS, make_record, write_grid


def test_schema_round_trip(tmp_path):
    rec = make_record(shots=(2, 5))
    path = write_trial_result(
        tmp_path, rec, stage="eval", study="demo", mlflow_run_id="run1", tuned={"margin": 0.2}
    )
    assert path == result_path(tmp_path, rec.trial_id, "eval") and path.exists()
    assert pq.read_metadata(path).metadata[b"oodml.schema_version"] == str(SCHEMA_VERSION).encode()
    table = read_results(tmp_path)
    assert table.schema.equals(SCHEMA)
    # val: 5 metrics + selection_score; test: 5; few-shot: 2 budgets x 2 kinds x 5 metrics
    assert table.num_rows == 6 + 5 + 20
    rows = table.to_pylist()
    test = next(r for r in rows if r["subset"] == "test" and r["shots"] == 0 and r["metric"] == "recall@1")
    assert (
        test["value"] == rec.measurement("test", "recall@1")
        and test["ci95"] is None
        and test["kind"] == "zeroshot"
    )
    assert (test["fid"], test["split_key"], test["num_test_classes"], test["seed"]) == (10.0, "0", 100, 0)
    assert (test["mlflow_run_id"], test["status"], test["stage"], test["study"]) == (
        "run1",
        "completed",
        "eval",
        "demo",
    )
    assert json.loads(test["tuned_hyperparameters"]) == {"margin": 0.2}
    assert (test["time_train_s"], test["selected_epoch"], test["schema_version"]) == (9.0, 2, SCHEMA_VERSION)
    few = next(r for r in rows if (r["shots"], r["kind"], r["metric"]) == (5, "fewshot", "map@r"))
    assert (
        few["value"] == rec.measurement("test", "map@r", 5, "fewshot")
        and few["ci95"] == 0.02
        and few["episodes"] == 10
    )
    assert few["support"] == "images" and test["support"] is None


def test_a_file_written_before_a_column_existed_reads_it_as_null(tmp_path):
    path = write_trial_result(tmp_path, make_record(shots=(2,)), stage="eval", study="demo")
    older = pq.read_table(path)
    pq.write_table(older.drop_columns(["support"]).replace_schema_metadata(older.schema.metadata), path)
    table = read_results(tmp_path)
    assert table.schema.equals(SCHEMA) and table["support"].null_count == table.num_rows
    assert table.num_rows == older.num_rows
    curves = read_curves(tmp_path)
    assert curves.num_rows == 3 * 2
    assert curves.filter(pa.compute.equal(curves["key"], "val/recall@1"))["value"].to_pylist() == [
        0.5,
        0.6,
        0.7,
    ]


def test_every_reader_sees_the_same_table(tmp_path):
    write_grid(tmp_path)
    folder = tmp_path / "results"
    (folder / f".{result_path(tmp_path, 'x', 'eval').name}.99.tmp").write_bytes(b"PAR1 half a file")
    expected = read_results(tmp_path).num_rows
    assert ds.dataset(folder, format="parquet").to_table().num_rows == expected
    pd = pytest.importorskip("pandas")
    assert len(pd.read_parquet(folder)) == expected
    pl = pytest.importorskip("polars")
    assert pl.read_parquet(folder / "*.parquet").height == expected
    duckdb = pytest.importorskip("duckdb")
    assert duckdb.sql(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchall()[0][0] == expected


def test_newer_schema_version_is_refused_with_a_reason(tmp_path):
    path = write_trial_result(tmp_path, make_record(), stage="eval", study="demo")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"oodml.schema_version": b"99"}), path)
    with pytest.warns(UnreadableResultWarning, match="schema 99"):
        assert read_results(tmp_path).num_rows == 0


def test_rewrite_replaces_and_failed_trials_are_retried(tmp_path):
    rec = make_record()
    known = ("trial_id", "method", "dataset", "split_id", "split_key", "seed")
    identity = TrialIdentity(**{k: getattr(rec.identity, k) for k in known})
    failed = TrialRecord.failed(identity, "Traceback...\nValueError: nan")
    path = write_trial_result(tmp_path, failed, stage="eval", study="demo")
    failed = read_results(tmp_path)
    assert failed.num_rows == 1 and failed["metric"].null_count == 1
    assert failed["error"][0].as_py().endswith("nan") and completed_trial_ids(tmp_path) == set()
    assert "FAILED eval margin-0-0 margin glyphs split 0 seed 0: ValueError: nan" in format_summary(tmp_path)

    assert write_trial_result(tmp_path, rec, stage="eval", study="demo") == path
    first = read_results(tmp_path).num_rows
    write_trial_result(tmp_path, rec, stage="eval", study="demo")
    table = read_results(tmp_path)
    assert table.num_rows == first and set(table["status"].to_pylist()) == {"completed"}
    assert completed_trial_ids(tmp_path) == {"margin-0-0"} == completed_trial_ids(tmp_path, stage="eval")
    assert completed_trial_ids(tmp_path, stage="tune") == set()
    write_trial_result(tmp_path, rec, stage="tune", study="demo")  # same id, other stage: its own file
    assert completed_trial_ids(tmp_path, stage="tune") == {"margin-0-0"}
    assert len(list((tmp_path / "results").glob("*.parquet"))) == 2


def test_invalid_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="stage must be"):
        write_trial_result(tmp_path, make_record(), stage="train", study="demo")
    with pytest.raises(ValueError, match="needs its error"):
        replace(make_record(), status="failed")
    with pytest.raises(ValueError, match="needs a trial id"):
        TrialRecord(TrialIdentity(""))
    with pytest.raises(ValueError, match="holds no metrics"):
        write_trial_result(tmp_path, TrialRecord(TrialIdentity("t")), stage="eval", study="demo")
    odd = write_trial_result(tmp_path, make_record(trial_id="../../x y"), stage="eval", study="demo")
    assert odd.parent == tmp_path / "results" and read_results(tmp_path)["trial_id"][0].as_py() == "../../x y"


def test_empty_study_gives_empty_tables(tmp_path):
    (tmp_path / "results").mkdir()
    table = read_results(tmp_path)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)
    for aggregate in (degradation_curves, auc_summary, ranking, fewshot_gain):
        assert aggregate(table).num_rows == 0
    assert "no trials recorded" in format_summary(tmp_path)


def test_normalized_auc_is_the_trapezoid_over_the_fid_range():
    # sorted by FID: (1, .8), (2, .6), (4, .5): area = 1 * .7 + 2 * .55 = 1.8 over a range of 3
    assert normalized_auc(np.array([4.0, 1.0, 2.0]), np.array([0.5, 0.8, 0.6])) == pytest.approx(0.6)
    assert np.isnan(normalized_auc(np.array([3.0]), np.array([0.5])))


def test_curves_and_auc_mean_and_ci_over_seeds_match_scipy(tmp_path):
    rng = np.random.default_rng(0)
    values = {m: {s[0]: rng.uniform(0.3, 0.9, size=3) for s in SPLITS} for m in ("margin", "multisim")}
    write_grid(tmp_path, seeds=(0, 1, 2), values=values)
    table = read_results(tmp_path)

    curves = degradation_curves(table).to_pylist()
    assert [r["fid"] for r in curves[:3]] == [10.0, 20.0, 35.0]  # FID order within a method
    row = next(r for r in curves if r["method"] == "margin" and r["split_key"] == "R22")
    seeds = values["margin"][1]
    low, _ = stats.t.interval(0.95, 2, loc=seeds.mean(), scale=stats.sem(seeds))
    assert row["mean"] == pytest.approx(seeds.mean()) and row["ci95"] == pytest.approx(seeds.mean() - low)
    assert (row["n_seeds"], row["num_test_classes"], row["shots"], row["kind"]) == (3, 80, 0, "zeroshot")

    fids = np.array([s[2] for s in SPLITS])
    auc = {
        m: np.array([normalized_auc(fids, [values[m][s[0]][k] for s in SPLITS]) for k in range(3)])
        for m in values
    }
    for k in range(3):  # the helper against numpy's trapezoid
        points = sorted(zip(fids, [values["margin"][s[0]][k] for s in SPLITS], strict=True))
        area = np.trapezoid([p[1] for p in points], [p[0] for p in points])
        assert auc["margin"][k] == pytest.approx(area / (fids.max() - fids.min()))
    summary = {r["method"]: r for r in auc_summary(table).to_pylist()}
    for method, per_seed in auc.items():
        low, _ = stats.t.interval(0.95, 2, loc=per_seed.mean(), scale=stats.sem(per_seed))
        assert summary[method]["auc"] == pytest.approx(per_seed.mean())
        assert summary[method]["ci95"] == pytest.approx(per_seed.mean() - low)
        assert (summary[method]["n_seeds"], summary[method]["n_splits"]) == (3, 3)
        assert summary[method]["complete"] and (summary[method]["fid_min"], summary[method]["fid_max"]) == (
            10,
            35,
        )
    best = max(auc, key=lambda m: auc[m].mean())
    assert summary[best]["rank"] == 1.0


def test_one_seed_has_nan_ci_and_missing_splits_are_flagged(tmp_path):
    write_grid(tmp_path)
    result_path(tmp_path, "multisim-1-0", "eval").unlink()
    table = read_results(tmp_path)
    assert all(np.isnan(r["ci95"]) and r["n_seeds"] == 1 for r in degradation_curves(table).to_pylist())
    summary = {r["method"]: r for r in auc_summary(table).to_pylist()}
    assert summary["margin"]["complete"] and not summary["multisim"]["complete"]
    assert summary["multisim"]["n_splits"] == 2 and np.isnan(summary["multisim"]["ci95"])


def test_ranking_matches_scipy_spearman(tmp_path):
    methods = ("a", "b", "c", "d")
    rng = np.random.default_rng(1)
    values = {m: {s[0]: rng.uniform(0.3, 0.9, size=1) for s in SPLITS} for m in methods}
    write_grid(tmp_path, methods=methods, values=values)
    table = read_results(tmp_path)
    rows = {r["method"]: r for r in ranking(table).to_pylist()}
    auc = {r["method"]: r["auc"] for r in auc_summary(table).to_pylist()}
    default = {m: values[m][0][0] for m in methods}  # split id 0 has key "0"
    assert all(rows[m]["auc"] == pytest.approx(auc[m]) for m in methods)
    assert all(rows[m]["default_split"] == pytest.approx(default[m]) for m in methods)
    auc_ranks = stats.rankdata([-auc[m] for m in methods])
    default_ranks = stats.rankdata([-default[m] for m in methods])
    assert [rows[m]["auc_rank"] for m in methods] == list(auc_ranks)
    assert [rows[m]["default_rank"] for m in methods] == list(default_ranks)
    rho = stats.spearmanr([auc[m] for m in methods], [default[m] for m in methods]).statistic
    assert all(rows[m]["spearman"] == pytest.approx(rho) for m in methods)


def test_fewshot_gain(tmp_path):
    values = {"margin": {s[0]: np.array([0.5, 0.6]) for s in SPLITS}}
    write_grid(tmp_path, methods=("margin",), seeds=(0, 1), values=values)
    gain = fewshot_gain(read_results(tmp_path)).to_pylist()
    assert len(gain) == 3 and gain[0]["fid"] == 10.0 and gain[0]["shots"] == 2
    # per seed: few-shot = r1 + 0.1, zero-shot = r1 - 0.01, so the gain is 0.11 with no spread
    assert gain[0]["fewshot"] == pytest.approx(0.65) and gain[0]["zeroshot"] == pytest.approx(0.54)
    assert gain[0]["gain"] == pytest.approx(0.11) and gain[0]["gain_ci95"] == pytest.approx(0.0)
    assert (gain[0]["fewshot_ci95"], gain[0]["n_seeds"], gain[0]["episodes"]) == (0.02, 2, 10)


def test_aggregations_refuse_two_trials_for_one_method_split_seed(tmp_path):
    write_trial_result(tmp_path, make_record(), stage="eval", study="demo")
    write_trial_result(tmp_path, make_record(trial_id="other"), stage="eval", study="demo")
    with pytest.raises(ValueError, match="one trial per"):
        degradation_curves(read_results(tmp_path))


def test_tuning_rows_do_not_enter_the_aggregations(tmp_path):
    write_grid(tmp_path, methods=("margin",))
    write_trial_result(tmp_path, make_record("margin", trial_id="tune-1"), stage="tune", study="demo")
    assert degradation_curves(read_results(tmp_path)).num_rows == 3


def test_results_command_prints_the_summary(tmp_path, capsys):
    write_grid(tmp_path, seeds=(0, 1))
    parser = argparse.ArgumentParser()
    add_results_arguments(parser)
    assert results(parser.parse_args([str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "Study demo" in out and "eval: 12 completed" in out
    for title in ("Normalized AUC", "Ranking", "Degradation curves", "Few-shot gain"):
        assert title in out
    assert "R22 @ 35 (80)" in out
    with pytest.raises(FileNotFoundError, match="study folder"):
        format_summary(tmp_path / "nowhere")


def test_default_split_key_matches_the_split_selection():
    selection = pytest.importorskip("tasks.splits.selection")
    assert selection.DEFAULT_KEY == DEFAULT_SPLIT_KEY
