"""Effective robustness (study/results/robustness.py) on synthetic records with a planted answer: each
model's Recall@1 on a harder split is the trend's value at its default-split Recall@1 (a line on logit
axes, as Taori et al. 2020 fit it) plus its method's planted effective robustness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from study.results import write_trial_result
from study.results.report import format_summary, summary_json
from study.results.robustness import effective_robustness, expit, logit, residuals
from study.results.schema import trial_rows
from tasks.record import TrialRecord
from tests.records import SPLITS, make_record

DEFAULT, HARDER = SPLITS[0], SPLITS[1:]  # the default split (key "0", FID 10) and two harder ones
TRENDS = {1: (-0.6, 1.1), 2: (-0.2, 0.9)}  # per harder split: intercept, slope on logit axes
PLANTED = {"a": 0.04, "b": -0.04, "c": 0.0, "d": 0.02, "e": -0.02}  # balanced: they sum to zero


def planted_records(planted: dict[str, float], noise: float = 0.0, seeds: int = 6) -> list[TrialRecord]:
    """Every method's records on the default and the harder splits: the same default-split values for
    every method, harder-split values on the trend plus the method's planted effective robustness."""
    rng = np.random.default_rng(0)
    x_values = np.linspace(0.35, 0.85, seeds)  # every method gets the same default-split values
    records = []
    for method, er in planted.items():
        for seed, x in enumerate(x_values):
            records.append(make_record(method, DEFAULT, seed, r1=float(x)))
            for split in HARDER:
                a, b = TRENDS[split[0]]
                y = float(expit(a + b * logit(x)) + er + rng.normal(0, noise))
                records.append(make_record(method, split, seed, r1=y))
    return records


def write_planted(study_dir: Path, planted: dict[str, float], study: str = "s") -> None:
    """``planted_records`` through the result store, as a study writes its trials."""
    for record in planted_records(planted):
        write_trial_result(study_dir, record, stage="eval", study=study)


def _table(planted: dict[str, float], noise: float = 0.0, seeds: int = 6) -> pa.Table:
    records = planted_records(planted, noise, seeds)
    return pa.concat_tables([trial_rows(r, stage="eval", study="s") for r in records])


def test_points_on_the_logit_trend_have_no_residual() -> None:
    x = np.array([0.2, 0.4, 0.6, 0.8, 0.9])
    y = np.stack([expit(a + b * logit(x)) for a, b in TRENDS.values()], axis=1)
    assert np.abs(residuals(x, y)).max() < 1e-12  # a line in probability space would leave residuals
    y[0, 0] += 0.05
    r = residuals(x, y)
    assert r[0, 0] > 0.01 and np.abs(r[:, 1]).max() < 1e-12  # each split has its own trend


def test_the_planted_effective_robustness_is_recovered() -> None:
    found = {r["method"]: r for r in effective_robustness(_table(PLANTED), resamples=300).to_pylist()}
    assert set(found) == set(PLANTED)
    for method, planted in PLANTED.items():
        row = found[method]
        assert row["effective_robustness"] == pytest.approx(planted, abs=0.005)
        assert row["ci_low"] <= row["effective_robustness"] <= row["ci_high"]
        assert (row["n_models"], row["n_splits"], row["dataset"]) == (6, 2, "glyphs")
    order = sorted(found, key=lambda m: found[m]["effective_robustness"])
    assert order == sorted(PLANTED, key=PLANTED.get)


def test_noise_widens_the_interval_around_the_planted_value() -> None:
    found = {
        r["method"]: r for r in effective_robustness(_table(PLANTED, noise=0.01), resamples=300).to_pylist()
    }
    assert found["a"]["ci_low"] > found["b"]["ci_high"]  # +0.04 against -0.04: told apart
    for method, planted in PLANTED.items():
        assert found[method]["ci_low"] - 0.01 <= planted <= found[method]["ci_high"] + 0.01
        assert found[method]["ci_high"] > found[method]["ci_low"]


def test_too_few_models_fit_no_trend() -> None:
    assert effective_robustness(_table({"a": 0.0}, seeds=2)).num_rows == 0  # 2 points: no residual


def test_oodml_results_prints_it_and_its_json_holds_it(tmp_path) -> None:
    write_planted(tmp_path, PLANTED)
    assert "Effective robustness, test recall@1" in format_summary(tmp_path)
    summary = json.loads(summary_json(tmp_path))
    rows = summary["effective_robustness"]
    assert {r["method"]: round(r["effective_robustness"], 2) for r in rows} == PLANTED


def test_oodml_results_json_holds_the_scatter_and_its_fitted_lines(tmp_path) -> None:
    """The scatter's points are every model's (default, harder) pair as planted; each harder split's line
    is the least-squares fit of logit y on logit x through its points (np.polyfit as the reference)."""
    write_planted(tmp_path, PLANTED)
    summary = json.loads(summary_json(tmp_path))
    seeds = len({r.identity.seed for r in planted_records(PLANTED)})
    assert len(summary["robustness_points"]) == len(PLANTED) * seeds * len(HARDER)
    by_split: dict[int, list[tuple[float, float]]] = {}
    for point in summary["robustness_points"]:
        intercept, slope = TRENDS[int(point["split_id"])]
        on_trend = expit(intercept + slope * logit(np.array(point["x"])))
        assert point["y"] - on_trend == pytest.approx(PLANTED[point["method"]], abs=1e-9)
        by_split.setdefault(int(point["split_id"]), []).append((point["x"], point["y"]))
    found = {int(t["split_id"]): t for t in summary["robustness_trends"]}
    assert found.keys() == TRENDS.keys()
    for split_id, pairs in by_split.items():
        x, y = np.array(pairs).T
        slope, intercept = np.polyfit(logit(x), logit(y), 1)
        trend = found[split_id]
        assert (trend["intercept"], trend["slope"]) == pytest.approx((intercept, slope), abs=1e-9)
        assert trend["n_models"] == len(PLANTED) * seeds
