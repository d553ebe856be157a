"""The oracle (shift-vs-difficulty control) and cross-dataset evaluation on the study side (docs/oracle.md):
spec validation, expansion, the decomposition against a hand computation, aggregations that ignore the
new rows, and one real study whose oracle and cross-dataset rows reach the results, MLflow and the
dashboard."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest

from study.expand import DatasetPlan, PlannedTrial, evaluation_trials
from study.results import auc_summary, degradation_curves, fewshot_gain, ranking
from study.results.oracle import cross_dataset, shift_decomposition
from study.results.schema import trial_rows
from study.spec import SpecError, load_spec
from tasks.config import HeldoutConfig
from tasks.identity import split_hash
from tasks.record import Measurement, TrialIdentity, TrialRecord
from tasks.splits.files import SplitFile, write_json
from tests.study.test_spec import BASE, _split, spec_error

TWO = {
    "datasets": [
        {"name": "glyphs", "splits": {"select": 2}, "evaluate_on": ["glyphs_b"]},
        {"name": "glyphs_b", "kind": "glyphs", "options": {"seed": 1}, "evaluate_on": ["glyphs"]},
    ]
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"oracle": {"enabled": True, "methods": ["triplett"]}},
            r"oracle.methods: unknown name 'triplett'; did you mean 'triplet'",
        ),
        ({"oracle": {"fraction": 1.0}}, r"oracle.fraction: .*less than 1"),
        (
            {"oracle": {"methods": ["triplet"], "seed": 3}},
            r"oracle.methods: set, but oracle.enabled is false, so no oracle would run: set "
            r"oracle.enabled: true, or remove oracle.methods, oracle.seed",
        ),
        ({"oracle": {"fraction": 0.3}}, r"oracle.fraction: set, but oracle.enabled is false"),
        ({"oracle": {"enabled": True, "methods": []}}, r"oracle.methods: an empty list names no method"),
        (
            {"datasets.0.evaluate_on": ["glyph_b"]},
            r"datasets.0.evaluate_on: entry unknown name 'glyph_b'; did you mean 'glyphs_b'",
        ),
        ({"datasets.0.evaluate_on": ["glyphs"]}, r"datasets.0.evaluate_on: 'glyphs' is this entry itself"),
        ({"datasets.0.evaluate_on": ["glyphs_b", "glyphs_b"]}, r"datasets.0.evaluate_on: duplicate entries"),
    ],
)
def test_bad_oracle_and_cross_settings_name_the_field(overrides: dict, message: str) -> None:
    import re

    assert re.search(message, spec_error(overrides, {**copy.deepcopy(BASE), **TWO}))


def _plans(spec, tmp_path, sizes: dict[str, int] | None = None) -> list[DatasetPlan]:
    """Plans of ``_split``s, whose 8 test classes have ``sizes`` images (10 each unless given)."""
    path = write_json(SplitFile(splits=[_split(1, "0"), _split(2, "R3")]), tmp_path / "splits.json")
    sizes = {f"t{i}": 10 for i in range(8)} | (sizes or {})
    return [DatasetPlan.load(entry, path, spec, sizes) for entry in spec.datasets]


def test_the_oracle_batch_check_counts_the_classes_it_keeps(tmp_path) -> None:
    """A batch of 16 images, 4 per class, needs 4 classes: 8 test classes would do, but with 5 of them
    under 4 images the oracle keeps 3, and its trials would fail; without the oracle nothing is counted."""
    oracle = load_spec(copy.deepcopy(BASE), {"oracle": {"enabled": True}})
    assert len(_plans(oracle, tmp_path, {f"t{i}": 4 for i in range(4)})) == 1  # 4 classes of 4: enough
    small = {f"t{i}": 3 for i in range(5)}
    with pytest.raises(SpecError) as caught:
        _plans(oracle, tmp_path, small)
    message = str(caught.value)
    assert "training.batch_size" in message and "needs 4 distinct classes" in message
    assert "trains on 3 classes (its test classes of 4 images or more, of 8)" in message
    assert "at most 12" in message
    assert len(_plans(load_spec(copy.deepcopy(BASE)), tmp_path, small)) == 1


def test_expansion_adds_oracles_heldout_and_cross_evaluation(tmp_path) -> None:
    """Two entries evaluating on each other: a cycle is allowed (an evaluation only reads the other
    dataset's split file, so no trial waits for another)."""
    spec = load_spec({**copy.deepcopy(BASE), **TWO}, {"oracle": {"enabled": True, "methods": ["triplet"]}})
    trials = evaluation_trials(spec, _plans(spec, tmp_path), {})
    benchmark = [t for t in trials if t.config.role == "benchmark"]
    oracles = [t for t in trials if t.config.role == "oracle"]
    assert len(benchmark) == 2 * 2 * 2 * 2  # datasets x methods x splits x seeds, as without the oracle
    assert len(oracles) == 2 * 1 * 2 * 2 and {t.config.method.name for t in oracles} == {"triplet"}
    assert len({t.trial_id for t in trials}) == len(trials) and all("/oracle/" in t.label for t in oracles)
    assert {t.config.heldout for t in trials} == {HeldoutConfig(fraction=0.5, seed=0)}  # one division
    assert all(not t.config.fewshot.shots and not t.config.evaluate_on for t in oracles)
    for t in benchmark:  # each dataset's trials evaluate on the other's default split
        [other] = t.config.evaluate_on
        assert other.dataset_name == ({"glyphs", "glyphs_b"} - {t.config.data.dataset_name}).pop()
        assert other.split == "0" and other.options.get("seed", 0) == (
            1 if other.dataset_name == "glyphs_b" else 0
        )
        assert t.cross_digests == (split_hash(_split(1, "0")),)  # the other's default split, by content
        assert PlannedTrial.from_dict(t.to_dict()).trial_id == t.trial_id  # as a Ray trial carries it
    assert all(not t.cross_digests for t in oracles)
    plain = evaluation_trials(load_spec({**copy.deepcopy(BASE), **TWO}), _plans(spec, tmp_path), {})
    assert all(t.config.heldout is None for t in plain) and len(plain) == len(benchmark)


METHOD_HELDOUT = {  # (method, split) -> held-out Recall@1 per seed; the oracle's below
    ("m", 0): [0.80, 0.82],
    ("m", 1): [0.70, 0.74],
    ("m", 2): [0.50, 0.52],
    ("n", 0): [0.60, 0.60],
    ("n", 1): [0.60, 0.60],
    ("n", 2): [0.55, 0.57],
}
ORACLE_HELDOUT = {
    ("m", 0): [0.90, 0.92],
    ("m", 1): [0.88, 0.86],
    ("m", 2): [0.80, 0.78],
    ("n", 0): [0.70, 0.72],
    ("n", 1): [0.71, 0.69],
    ("n", 2): [0.66, 0.66],
}
FIDS = {0: 30.0, 1: 10.0, 2: 50.0}  # split 1 is the easiest


def _record(method: str, split: int, seed: int, role: str, value: float) -> TrialRecord:
    measurements = [Measurement("heldout", "recall@1", value, left_out_classes=1)]
    if role == "benchmark":
        measurements += [
            Measurement("test", "recall@1", value - 0.05),
            Measurement("test", "recall@1", value - 0.1, 2, "fewshot", 0.01, 2),
            Measurement("test", "recall@1", value - 0.15, 2, "zeroshot", 0.01, 2),
            Measurement("cross", "recall@1", value / 2, eval_dataset="other"),
        ]
    identity = _identity(f"{method}-{split}-{seed}-{role}", method, split, seed, role)
    return TrialRecord(identity=identity, measurements=tuple(measurements))


def _identity(trial_id: str, method: str, split: int, seed: int, role: str = "benchmark") -> TrialIdentity:
    return TrialIdentity(
        trial_id=trial_id,
        dataset="d",
        split_id=split,
        split_key=f"k{split}",
        fid=FIDS[split],
        num_test_classes=20,
        method=method,
        backbone="b",
        seed=seed,
        trial_role=role,
    )


def _table(roles=("benchmark", "oracle")) -> pa.Table:
    values = {"benchmark": METHOD_HELDOUT, "oracle": ORACLE_HELDOUT}
    rows = [
        trial_rows(_record(m, j, seed, role, values[role][m, j][seed]), stage="eval", study="s")
        for role in roles
        for (m, j) in METHOD_HELDOUT
        for seed in (0, 1)
    ]
    return pa.concat_tables(rows)


def test_decomposition_against_a_hand_computation() -> None:
    out = {(r["method"], r["split_id"]): r for r in shift_decomposition(_table()).to_pylist()}
    assert set(out) == set(METHOD_HELDOUT)
    for method in ("m", "n"):
        mean = {j: sum(METHOD_HELDOUT[method, j]) / 2 for j in FIDS}
        oracle = {j: sum(ORACLE_HELDOUT[method, j]) / 2 for j in FIDS}
        e = 1  # the lowest FID
        for j in FIDS:
            row = out[method, j]
            gap_j, gap_e = oracle[j] - mean[j], oracle[e] - mean[e]
            assert row["easiest_split_key"] == "k1"
            assert row["method_value"] == pytest.approx(mean[j]) and row["oracle_value"] == pytest.approx(
                oracle[j]
            )
            assert row["gap"] == pytest.approx(gap_j)
            assert row["drop"] == pytest.approx(mean[e] - mean[j])
            assert row["difficulty"] == pytest.approx(oracle[e] - oracle[j])
            assert row["shift_part"] == pytest.approx(gap_j - gap_e)
            assert row["drop"] == pytest.approx(row["difficulty"] + row["shift_part"])
            if mean[e] == mean[j]:
                assert row["shift_share"] != row["shift_share"]  # NaN: no drop to divide
            else:
                assert row["shift_share"] == pytest.approx((gap_j - gap_e) / (mean[e] - mean[j]))
            assert row["n_seeds"] == row["n_oracle_seeds"] == 2 and row["left_out_classes"] == 1
    assert shift_decomposition(_table(("benchmark",))).num_rows == 0  # no oracle: no decomposition


def test_aggregations_ignore_oracle_and_cross_rows() -> None:
    with_oracle, without = _table(), _table(("benchmark",))
    for aggregate in (degradation_curves, auc_summary, ranking, fewshot_gain):
        assert aggregate(with_oracle).to_pandas().equals(aggregate(without).to_pandas())  # NaN == NaN
    assert set(degradation_curves(with_oracle)["method"].to_pylist()) == {"m", "n"}
    curves = {(r["method"], r["split_id"]): r["mean"] for r in degradation_curves(with_oracle).to_pylist()}
    assert curves["m", 0] == pytest.approx(0.81 - 0.05)  # the test rows, not the held-out ones


def test_the_dashboard_draws_the_decomposition_gap(tmp_path) -> None:
    """The degradation figure's held-out panel pairs each method with its oracle on the same images: the
    distance between the two lines is the decomposition's gap (not the gap to the all-test curve)."""
    from dashboards.degradation import degradation_blocks, oracle_pairs
    from dashboards.plotting import with_series
    from study.results.oracle import heldout_curves

    table = _table()
    pairs = oracle_pairs(with_series(heldout_curves(table).to_pandas()))
    means = pairs.set_index(["method", "split_id", "trial_role"])["mean"]
    for row in shift_decomposition(table).to_pylist():
        key = (row["method"], row["split_id"])
        assert means[(*key, "oracle")] - means[(*key, "benchmark")] == pytest.approx(row["gap"])
    [figure] = degradation_blocks(table, tmp_path)
    assert figure.path.exists() and "Bottom row: on the held-out half" in figure.caption
    [alone] = degradation_blocks(_table(("benchmark",)), tmp_path)
    assert "held-out" not in alone.caption  # no oracle: no second row
    assert oracle_pairs(with_series(heldout_curves(_table(("benchmark",))).to_pandas())).empty


def test_the_splits_table_counts_oracle_trials_apart() -> None:
    from dashboards.splits import split_rows

    splits = split_rows(_table())
    assert (
        list(splits["trials"]) == [4] * 3 and list(splits["oracle_trials"]) == [4] * 3
    )  # 2 methods x 2 seeds
    assert "oracle_trials" not in split_rows(_table(("benchmark",)))


def test_cross_dataset_table() -> None:
    out = {(r["method"], r["split_id"]): r for r in cross_dataset(_table()).to_pylist()}
    assert set(out) == set(METHOD_HELDOUT)
    for (method, j), row in out.items():
        mean = sum(METHOD_HELDOUT[method, j]) / 2
        assert row["eval_dataset"] == "other" and row["n_seeds"] == 2
        assert row["mean"] == pytest.approx(mean / 2) and row["own_test"] == pytest.approx(mean - 0.05)


def _cross_record(method: str, split: int, seed: int, test: float, cross: dict[str, float]) -> TrialRecord:
    """A benchmark trial with test Recall@1 ``test`` and cross-dataset Recall@1 per evaluated dataset."""
    measurements = [Measurement("test", "recall@1", test)]
    measurements += [Measurement("cross", "recall@1", v, eval_dataset=name) for name, v in cross.items()]
    identity = _identity(f"{method}-{split}-{seed}", method, split, seed)
    return TrialRecord(identity=identity, measurements=tuple(measurements))


def test_own_test_averages_only_the_cross_evaluated_trials() -> None:
    """own_test is the test value of the same trials as the cross-dataset mean (docs/oracle.md): a trial of
    the method and split that was not evaluated on the other dataset (seed 2 of (m, 0), every seed of
    (m, 1)) does not enter it."""
    records = [
        _cross_record("m", 0, 0, 0.5, {"other": 0.25}),
        _cross_record("m", 0, 1, 0.75, {"other": 0.125}),
        _cross_record("m", 0, 2, 0.125, {}),  # not cross-evaluated: its 0.125 stays out of own_test
        _cross_record("m", 1, 0, 0.25, {}),
        _cross_record("m", 1, 1, 0.5, {}),
        _cross_record("n", 0, 0, 0.375, {"other": 0.0625}),
        _cross_record("n", 0, 1, 0.25, {}),
        _cross_record("n", 2, 0, 0.5, {"other": 0.25}),
        _cross_record("n", 2, 1, 0.625, {"other": 0.375}),
    ]
    table = pa.concat_tables([trial_rows(r, stage="eval", study="s") for r in records])
    out = {(r["method"], r["split_id"]): r for r in cross_dataset(table).to_pylist()}
    assert set(out) == {("m", 0), ("n", 0), ("n", 2)}  # (m, 1): no trial was cross-evaluated
    expected = {  # (mean of cross, n_seeds, mean of the same trials' test values), by hand
        ("m", 0): (0.1875, 2, 0.625),  # (0.5 + 0.75) / 2, not (0.5 + 0.75 + 0.125) / 3
        ("n", 0): (0.0625, 1, 0.375),  # seed 0 alone, not (0.375 + 0.25) / 2
        ("n", 2): (0.3125, 2, 0.5625),  # every seed cross-evaluated
    }
    for key, (mean, n_seeds, own_test) in expected.items():
        row = out[key]
        assert row["eval_dataset"] == "other" and row["n_seeds"] == n_seeds
        assert row["mean"] == pytest.approx(mean) and row["own_test"] == pytest.approx(own_test)


def test_own_test_is_per_dataset_evaluated_on() -> None:
    """Seed 0 evaluated on x only, seed 1 on y only: each row's own_test is its own trials' test value."""
    records = [_cross_record("m", 0, 0, 0.5, {"x": 0.25}), _cross_record("m", 0, 1, 0.75, {"y": 0.125})]
    table = pa.concat_tables([trial_rows(r, stage="eval", study="s") for r in records])
    out = {r["eval_dataset"]: r for r in cross_dataset(table).to_pylist()}
    assert (out["x"]["own_test"], out["y"]["own_test"]) == (0.5, 0.75)  # not 0.625 for both


def test_older_rows_without_a_role_read_as_benchmark() -> None:
    table = _table()
    older = table.set_column(
        table.schema.get_field_index("trial_role"),
        "trial_role",
        pa.array([None if r == "benchmark" else r for r in table["trial_role"].to_pylist()], pa.string()),
    )
    assert shift_decomposition(older).to_pandas().equals(shift_decomposition(table).to_pandas())


@pytest.mark.slow
def test_oracle_and_cross_rows_reach_results_mlflow_and_dashboard(ray_local, tmp_path, tiny_spec):
    """The tiny study with a second glyph benchmark (other classes: seed 1), one method, no tuning, the
    oracle on and each dataset evaluated on the other's default split."""
    from mlflow import MlflowClient

    from study.api import run
    from study.results.report import format_summary

    raw = tiny_spec(tmp_path / "oracle")
    first = raw["datasets"][0]
    second = {**first, "name": "glyphs_b", "kind": "glyphs", "options": first["options"] | {"seed": 1}}
    raw["datasets"] = [
        first | {"evaluate_on": ["glyphs_b"]},
        second | {"evaluate": ["0"], "evaluate_on": ["glyphs"]},
    ]
    raw |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}, "oracle": {"enabled": True}}
    raw["fewshot"] = {"budgets": [0]}
    result = run(raw, echo=lambda line: None)
    assert result.outcome.ok and result.outcome.planned == 2 * 3  # (2 + 1 splits) x (benchmark + oracle)

    rows = result.table.to_pylist()
    oracle = [r for r in rows if r["trial_role"] == "oracle"]
    assert {r["subset"] for r in oracle} == {"heldout"} and len({r["trial_id"] for r in oracle}) == 3
    benchmark = [r for r in rows if r["trial_role"] == "benchmark"]
    assert {r["subset"] for r in benchmark} == {"val", "test", "heldout", "cross"}
    cross = {(r["dataset"], r["eval_dataset"]) for r in benchmark if r["subset"] == "cross"}
    assert cross == {("glyphs", "glyphs_b"), ("glyphs_b", "glyphs")}
    assert result.cross_dataset().num_rows == 3  # (2 + 1 splits), each evaluated on the other entry
    parts = result.shift_decomposition().to_pylist()
    assert {(r["dataset"], r["split_key"]) for r in parts} == {(r["dataset"], r["split_key"]) for r in oracle}
    assert all(r["drop"] == pytest.approx(r["difficulty"] + r["shift_part"]) for r in parts)
    assert set(result.degradation_curves()["method"].to_pylist()) == {"triplet"}  # benchmark rows only
    summary = format_summary(result.study_dir)
    assert "Shift vs difficulty" in summary and "Cross-dataset recall@1" in summary

    client = MlflowClient(result.tracking_uri)
    children = client.search_runs(
        [client.get_run(result.parent_run_id).info.experiment_id],
        f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'",
    )
    roles = sorted(r.data.tags["oodml.trial_role"] for r in children)
    assert roles == ["benchmark"] * 3 + ["oracle"] * 3
    for child in children:
        assert "heldout/recall_at_1" in child.data.metrics  # MLflow keys spell @ as _at_
        if child.data.tags["oodml.trial_role"] == "benchmark":
            other = "glyphs" if child.data.tags["oodml.dataset"] == "glyphs_b" else "glyphs_b"
            assert f"cross/{other}/recall_at_1" in child.data.metrics

    page = (result.study_dir / "dashboard" / "index.html").read_text()
    assert '<section id="oracle">' in page and "shift share" in page and "evaluated on" in page
    assert "Bottom row: on the held-out half" in page  # the degradation figure draws them
    assert "could not be drawn" not in page


def test_the_docs_examples_are_valid_specs() -> None:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "oracle.md").read_text()
    oracle, datasets = (yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S))
    spec = load_spec({**copy.deepcopy(BASE), **oracle, **datasets})
    assert spec.oracle_methods == ["multisimilarity", "triplet"]
    assert [d.evaluate_on for d in spec.datasets] == [["glyphs_b"], ["glyphs"]]
