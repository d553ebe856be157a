"""A study's few-shot trials of margin, S2SD and DiVA on the glyph demo data record what the original's
few-shot script would use (docs/protocol.md section 5): the margin criterion's beta of the trained method
(``OOD-Study_FewShot.sh``: 0.6 in the S2SD lines, 1.2 otherwise), DiVA's reported weighting, its three
weightings recorded apart, and a per-method setting reaching its trials."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_fewshot_trials_record_the_originals_beta_and_weights(ray_local, tmp_path, tiny_spec):
    from study.api import run

    raw = tiny_spec(tmp_path / "fewshot")
    raw["datasets"][0] |= {"evaluate": ["0"]}
    raw["methods"] = [
        {"name": "margin"},
        {"name": "s2sd", "fewshot": {"iterations": {2: 3}}},  # as CARS S2SD's own count
        {"name": "diva", "hyperparameters": {"discriminative_weight": 0.75}},
    ]
    raw["tuning"] = {"trials": 0}
    result = run(raw, echo=lambda line: None)
    assert result.outcome.ok and result.outcome.planned == 3

    rows = [r for r in result.table.to_pylist() if r["stage"] == "eval"]
    by_method = {m: [r for r in rows if r["method"] == m] for m in ("margin", "s2sd", "diva")}
    expected_beta = {"margin": 1.2, "s2sd": 0.6, "diva": 1.2}
    for method, found in by_method.items():
        assert {r["fewshot_method"] for r in found} == {"margin"}
        assert {dict(r["fewshot_hyperparameters"])["beta"] for r in found} == {expected_beta[method]}
        assert {r["reported_weighting"] for r in found} == (
            {"0.75-1.25-1.25-1.25"} if method == "diva" else {None}
        )
        assert any(r["shots"] == 2 and r["kind"] == "fewshot" for r in found)
    weighted = {r["weighting"] for r in by_method["diva"] if r["weighting"] is not None}
    assert weighted == {"1-1-1-1", "0.75-1.25-1.25-1.25", "0.5-1.5-1.5-1.5"}
    assert all(r["subset"] == "test" and r["shots"] == 0 for r in by_method["diva"] if r["weighting"])
    reported = {
        r["metric"]: r["value"]
        for r in by_method["diva"]
        if r["subset"] == "test" and r["shots"] == 0 and r["weighting"] is None
    }
    same = {r["metric"]: r["value"] for r in by_method["diva"] if r["weighting"] == "0.75-1.25-1.25-1.25"}
    # the reported embedding is the 0.75 weighting (reweighted from it: equal up to float rounding)
    assert reported == pytest.approx(same, rel=1e-4, abs=1e-4)
    assert not any(r["weighting"] for r in by_method["margin"] + by_method["s2sd"])
    configs = {r["method"]: r["config"] for r in rows}
    assert '"iterations": {"2": 3}' in configs["s2sd"] and '"iterations": {"2": 5}' in configs["margin"]
    curves = result.degradation_curves().to_pylist()  # one curve point per method: the reported embedding
    assert sorted(r["method"] for r in curves) == ["diva", "margin", "s2sd"]
