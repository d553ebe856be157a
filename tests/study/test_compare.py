"""Paired comparisons (study/results/compare.py) against slow references written from the definitions in
its docstring, and the sign-flip test's size and power on many synthetic studies."""

import argparse
import itertools
import json
import zlib

import numpy as np
import pyarrow.compute as pc
import pytest

from study.results import (
    add_results_arguments,
    auc_summary,
    read_results,
    result_path,
    results,
)
from study.results.compare import (
    ALPHA,
    NO_AUC,
    NO_FULL_SEED,
    ONE_SEED,
    RESAMPLES,
    bootstrap_statistic,
    compare,
    holm,
    never_significant,
    sign_flip_p_value,
    smallest_p_value,
    split_weights,
)
from tests.records import SPLITS, write_grid

FIDS = {split_id: fid for split_id, _, fid, _ in SPLITS}


def trapezoid_weights(fid: np.ndarray) -> np.ndarray:
    """w_j of the normalized AUC, from the trapezoid rule over the FID-sorted splits (docs/protocol.md section 8)."""
    order = np.argsort(fid)
    f = fid[order]
    width = f[-1] - f[0]
    w = np.zeros(len(f))
    for k in range(len(f) - 1):  # segment k adds half its width to each of its two ends
        w[k] += (f[k + 1] - f[k]) / 2 / width
        w[k + 1] += (f[k + 1] - f[k]) / 2 / width
    out = np.empty(len(f))
    out[order] = w
    return out


def brute_force_p(x: np.ndarray) -> float:
    """Share of all sign patterns whose |sum| is at least the observed |sum|."""
    observed = abs(sum(x))
    extreme = [
        abs(sum(s * v for s, v in zip(signs, x, strict=True))) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(x))
    ]
    return sum(extreme) / len(extreme)


def holm_loop(p: list[float]) -> list[float]:
    """Holm's adjusted p-values by the textbook step-down loop over the sorted p-values."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, running = [0.0] * m, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted


def grid_values(methods, seeds, rng, spread=0.2):
    return {
        m: {s[0]: rng.uniform(0.5 - spread, 0.5 + spread, size=len(seeds)) for s in SPLITS} for m in methods
    }


def test_split_weights_are_the_trapezoid_weights():
    fid = np.array([35.0, 10.0, 20.0, 12.5])
    assert split_weights(fid) == pytest.approx(trapezoid_weights(fid))
    assert split_weights(fid).sum() == pytest.approx(1.0)
    assert np.isnan(split_weights(np.array([3.0, 3.0]))).all()  # no FID range: no AUC


def test_sign_flip_p_value_is_the_share_of_extreme_sign_patterns():
    rng = np.random.default_rng(0)
    x = rng.normal(0.01, 0.02, size=(6, 7))
    assert sign_flip_p_value(x) == pytest.approx([brute_force_p(row) for row in x])
    assert sign_flip_p_value(np.full(5, 0.1)) == pytest.approx(2 / 32)  # all one sign: both extremes
    assert smallest_p_value(5) == pytest.approx(2 / 32) and smallest_p_value(20) == pytest.approx(1 / 20001)
    # beyond exact_up_to: (1 + count) / (1 + draws) random patterns, close to the exact share
    row = x[0, :]
    random = sign_flip_p_value(row, np.random.default_rng(1), exact_up_to=4, draws=20000)
    assert random == pytest.approx(brute_force_p(row), abs=0.015)
    assert sign_flip_p_value(np.full(20, 0.1), np.random.default_rng(2)) == pytest.approx(1 / 20001, rel=0.5)
    with pytest.raises(ValueError, match="rng"):
        sign_flip_p_value(np.ones(20))


def test_bootstrap_statistic_follows_its_definition():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(3, 4))
    d[2, 1] = np.nan  # a missing cell
    w = trapezoid_weights(np.array([10.0, 20.0, 35.0, 40.0]))
    seeds = rng.integers(0, 3, size=(50, 3))
    splits = rng.integers(0, 4, size=(50, 4))
    expected = []
    for drawn_seeds, drawn_splits in zip(seeds, splits, strict=True):
        total = drawn_weight = 0.0
        for j in drawn_splits:  # a split drawn twice counts twice, in the sum and in its weight
            values = [d[s, j] for s in drawn_seeds if not np.isnan(d[s, j])]
            total += w[j] * (np.mean(values) if values else np.nan)
            drawn_weight += w[j]
        expected.append(total / drawn_weight)
    counts = [
        np.stack([np.bincount(row, minlength=n) for row in draws]) for draws, n in ((seeds, 3), (splits, 4))
    ]
    assert bootstrap_statistic(d, w, *counts) == pytest.approx(expected, nan_ok=True)
    full = d.copy()
    full[2, 1] = 0.3  # a full grid: the mean over drawn seeds of each seed's weighted mean over drawn splits
    grid = [
        np.mean([sum(w[j] * full[s, j] for j in b) / sum(w[j] for j in b) for s in a])
        for a, b in zip(seeds, splits, strict=True)
    ]
    assert bootstrap_statistic(full, w, *counts) == pytest.approx(grid)


def test_a_difference_without_noise_has_a_zero_width_interval(tmp_path):
    # b is a minus 0.05 in every cell: every resample, whichever splits it draws, gives 0.05
    seeds = (0, 1, 2)
    a = grid_values(("a",), seeds, np.random.default_rng(8))["a"]
    write_grid(
        tmp_path, methods=("a", "b"), seeds=seeds, values={"a": a, "b": {j: v - 0.05 for j, v in a.items()}}
    )
    (pair,) = compare(read_results(tmp_path)).pairs.to_pylist()
    assert (pair["diff"], pair["ci_low"], pair["ci_high"]) == pytest.approx((0.05, 0.05, 0.05))
    counts = np.array([[3, 0, 0], [0, 1, 2]]), np.array([[0, 3, 0], [2, 0, 1]])  # unequal splits drawn
    weights = split_weights(np.array([10.0, 35.0, 20.0]))
    assert bootstrap_statistic(np.full((3, 3), 0.05), weights, *counts) == pytest.approx([0.05, 0.05])


def test_the_interval_is_the_2_5th_to_97_5th_percentile_of_a_known_bootstrap_distribution(tmp_path):
    """d = a - b is -1/8, 1/8, 3/8 on seeds 0, 1, 2, the same on every split, so every resample's statistic
    (pair: the weighted mean over drawn splits of equal means; split: the mean over drawn seeds) is the mean
    of 3 seeds drawn with replacement: -1/8 and 3/8 each with probability 1/27 = 3.7%, the next values
    (-1/8 + 1/6, 3/8 - 1/6) with 3/27. The 2.5th and 97.5th percentiles are the extremes -1/8 and 3/8 (with
    2000 resamples, about 74 +- 8 at each end, more than the 50 the 2.5% tail holds); the 5th and 95th
    would be 1/24 and 5/24 (fewer than the 100 of a 5% tail)."""
    seeds = (0, 1, 2)
    d = np.array([-0.125, 0.125, 0.375])
    b = {j: np.full(3, 0.5) for j in FIDS}
    a = {j: 0.5 + d for j in FIDS}
    write_grid(tmp_path, methods=("a", "b"), seeds=seeds, values={"a": a, "b": b})
    result = compare(read_results(tmp_path))
    (pair,) = result.pairs.to_pylist()
    assert (pair["method_a"], pair["diff"]) == ("a", pytest.approx(0.125))
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx((-0.125, 0.375))
    for row in result.splits.to_pylist():
        assert (row["diff"], row["ci_low"], row["ci_high"]) == pytest.approx((0.125, -0.125, 0.375))


def test_the_intervals_are_the_percentiles_of_the_resamples(tmp_path):
    """Against the same resamples (the seeded generator of the pair, drawn as compare draws them: the seed
    counts, the split counts, then per split its seeds), each statistic computed by a loop from the
    definition; the 2.5th and 97.5th percentiles of the resamples that have a value."""
    methods, seeds = ("a", "b"), (0, 1, 2)
    values = grid_values(methods, seeds, np.random.default_rng(12))
    write_grid(tmp_path, methods=methods, seeds=seeds, values=values)
    result_path(tmp_path, "b-1-2", "eval").unlink()  # split 1 has no seed 2: some resamples have no value
    result = compare(read_results(tmp_path))
    (pair,) = result.pairs.to_pylist()
    a, b = pair["method_a"], pair["method_b"]
    split_ids = sorted(FIDS)
    cells = {j: [s for s in seeds if (j, s) != (1, 2)] for j in split_ids}
    d = {(s, j): values[a][j][s] - values[b][j][s] for j in split_ids for s in cells[j]}
    w = trapezoid_weights(np.array([FIDS[j] for j in split_ids]))
    rng = np.random.default_rng([0, zlib.crc32(f"glyphs\0glyphnet\0{a}\0{b}".encode())])
    seed_counts = rng.multinomial(3, np.full(3, 1 / 3), size=RESAMPLES)
    split_counts = rng.multinomial(3, np.full(3, 1 / 3), size=RESAMPLES)
    statistics = []
    for seed_count, split_count in zip(seed_counts, split_counts, strict=True):
        drawn_seeds = [s for s, c in zip(seeds, seed_count, strict=True) for _ in range(c)]
        drawn_splits = [j for j, c in zip(split_ids, split_count, strict=True) for _ in range(c)]
        total = weight = 0.0
        for j in drawn_splits:
            present = [d[s, j] for s in drawn_seeds if (s, j) in d]
            if not present:
                total = np.nan  # a drawn split without a drawn seed: the resample is left out
                break
            total += w[j] * np.mean(present)
            weight += w[j]
        if not np.isnan(total):
            statistics.append(total / weight)
    assert len(statistics) < RESAMPLES  # some resamples were left out
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx(np.percentile(statistics, [2.5, 97.5]))
    # 8 cells: the sign-flip test enumerates its patterns, drawing nothing; the per-split intervals draw next
    for row in result.splits.to_pylist():
        dj = [d[s, row["split_id"]] for s in cells[row["split_id"]]]
        counts = rng.multinomial(len(dj), np.full(len(dj), 1 / len(dj)), size=RESAMPLES)
        means = [sum(c * v for c, v in zip(count, dj, strict=True)) / len(dj) for count in counts]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(np.percentile(means, [2.5, 97.5]))


def test_holm_matches_the_step_down_loop():
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.1, size=9)
    assert holm(p) == pytest.approx(holm_loop(list(p)))
    with_untested = np.array([0.01, np.nan, 0.04, 0.03])
    adjusted = holm(with_untested)
    assert np.isnan(adjusted[1]) and adjusted[[0, 2, 3]] == pytest.approx(holm_loop([0.01, 0.04, 0.03]))


def test_pairs_match_the_definitions_on_a_full_grid(tmp_path):
    methods, seeds = ("a", "b", "c"), (0, 1, 2)
    values = grid_values(methods, seeds, np.random.default_rng(5))
    write_grid(tmp_path, methods=methods, seeds=seeds, values=values)
    table = read_results(tmp_path)
    result = compare(table)
    auc = {r["method"]: r["auc"] for r in auc_summary(table).to_pylist()}
    split_ids = sorted(FIDS)
    w = trapezoid_weights(np.array([FIDS[j] for j in split_ids]))
    pairs = result.pairs.to_pylist()
    assert len(pairs) == 3
    for pair in pairs:
        a, b = pair["method_a"], pair["method_b"]
        assert auc[a] >= auc[b]  # a pair's first method has the higher AUC
        assert pair["diff"] == pytest.approx(auc[a] - auc[b]) and pair["auc_a"] == pytest.approx(auc[a])
        x = [w[k] * (values[a][j][s] - values[b][j][s]) for k, j in enumerate(split_ids) for s in seeds]
        assert pair["p_value"] == pytest.approx(brute_force_p(x))
        assert (pair["n_seeds"], pair["n_splits"], pair["n_cells"], pair["note"]) == (3, 3, 9, None)
        assert pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
    assert [p["p_holm"] for p in pairs] == pytest.approx(holm_loop([p["p_value"] for p in pairs]))
    for row in result.splits.to_pylist():
        j, a, b = row["split_id"], row["method_a"], row["method_b"]
        assert row["diff"] == pytest.approx(np.mean(values[a][j] - values[b][j]))
        assert (
            row["weight"] == pytest.approx(w[split_ids.index(j)])
            and row["ci_low"] <= row["diff"] <= row["ci_high"]
        )
    assert compare(table).pairs.equals(result.pairs)  # seeded: the same intervals again
    assert not compare(table, seed=1).pairs["ci_low"].equals(result.pairs["ci_low"])


def test_missing_cells_are_left_out_of_the_pair(tmp_path):
    methods, seeds = ("a", "b"), (0, 1, 2)
    values = grid_values(methods, seeds, np.random.default_rng(6))
    write_grid(tmp_path, methods=methods, seeds=seeds, values=values)
    result_path(tmp_path, "b-1-2", "eval").unlink()  # method b, split 1, seed 2
    (pair,) = compare(read_results(tmp_path)).pairs.to_pylist()
    a, b = pair["method_a"], pair["method_b"]
    w = trapezoid_weights(np.array([FIDS[j] for j in sorted(FIDS)]))
    cells = {j: [s for s in seeds if (j, s) != (1, 2)] for j in sorted(FIDS)}
    per_split = [np.mean([values[a][j][s] - values[b][j][s] for s in cells[j]]) for j in sorted(FIDS)]
    assert pair["n_cells"] == 8 and pair["diff"] == pytest.approx(w @ per_split)
    x = [w[j] * (values[a][j][s] - values[b][j][s]) for j in sorted(FIDS) for s in cells[j]]
    assert pair["p_value"] == pytest.approx(brute_force_p(x))


def test_rank_is_one_plus_the_methods_significantly_better(tmp_path):
    # a beats c by 0.2 on every cell; b is a plus or minus 0.3, alternating: neither a-b nor b-c is significant
    seeds = (0, 1, 2)
    a = {s[0]: np.full(3, 0.6) for s in SPLITS}
    c = {j: v - 0.2 for j, v in a.items()}
    b = {j: v + 0.3 * np.array([1, -1, 1]) * (-1) ** j for j, v in a.items()}
    write_grid(tmp_path, methods=("a", "b", "c"), seeds=seeds, values={"a": a, "b": b, "c": c})
    result = compare(read_results(tmp_path))
    pairs = result.pairs.to_pylist()
    assert [(p["method_a"], p["method_b"], p["significant"]) for p in pairs if p["significant"]] == [
        ("a", "c", True)
    ]
    ranks = {r["method"]: (r["rank"], r["better_than"]) for r in result.ranking.to_pylist()}
    assert ranks == {"a": (1, "c"), "b": (1, ""), "c": (2, "")}
    for method, (rank, _) in ranks.items():  # rank = 1 + the methods significantly better, from the pairs
        better = [
            p
            for p in pairs
            if p["significant"]
            and method in (p["method_a"], p["method_b"])
            and (p["method_b"] if p["diff"] > 0 else p["method_a"]) == method
        ]
        assert rank == 1 + len(better)


def test_the_seed_unit_flips_per_seed_auc_differences(tmp_path):
    methods, seeds = ("a", "b"), (0, 1, 2)
    values = grid_values(methods, seeds, np.random.default_rng(9))
    write_grid(tmp_path, methods=methods, seeds=seeds, values=values)
    result_path(tmp_path, "b-1-2", "eval").unlink()  # seed 2 lacks split 1: left out of the seed test
    table = read_results(tmp_path)
    (by_cell,), (by_seed,) = (compare(table, unit=unit).pairs.to_pylist() for unit in ("cell", "seed"))
    a, b = by_seed["method_a"], by_seed["method_b"]
    w = trapezoid_weights(np.array([FIDS[j] for j in sorted(FIDS)]))
    per_seed = [sum(w[j] * (values[a][j][s] - values[b][j][s]) for j in sorted(FIDS)) for s in (0, 1)]
    assert by_seed["p_value"] == pytest.approx(brute_force_p(per_seed))
    assert (by_seed["n_units"], by_cell["n_units"], by_cell["n_cells"]) == (2, 8, 8)
    assert by_seed["note"] == never_significant(2, "seed", ALPHA) and by_seed["significant"] is False
    for column in ("diff", "ci_low", "ci_high"):  # the unit changes the test only
        assert by_seed[column] == by_cell[column]
    with pytest.raises(ValueError, match="cell, seed"):
        compare(table, unit="split")


def test_the_seed_unit_needs_six_seeds_for_alpha_005(tmp_path):
    # a is b + 0.05 plus noise in every cell: every seed's difference is positive, p = 2 / 2^seeds
    rng = np.random.default_rng(10)
    b = {j: rng.uniform(0.4, 0.6, size=6) for j in FIDS}
    a = {j: v + 0.05 + rng.normal(0, 0.005, size=6) for j, v in b.items()}
    write_grid(tmp_path, methods=("a", "b"), seeds=tuple(range(6)), values={"a": a, "b": b})
    table = read_results(tmp_path)
    for n in (5, 6):
        (pair,) = compare(table.filter(pc.field("seed") < n), unit="seed").pairs.to_pylist()
        assert pair["p_value"] == pytest.approx(2 / 2**n) and pair["significant"] is (n == 6)
        assert pair["note"] == (never_significant(5, "seed", ALPHA) if n == 5 else None)


def test_a_pair_that_can_never_be_significant_says_so(tmp_path):
    write_grid(tmp_path, seeds=(0, 1))
    for method in ("margin", "multisim"):  # 2 seeds x 2 splits: 4 cells, smallest p 2/16 = 0.125
        for seed in (0, 1):
            result_path(tmp_path, f"{method}-2-{seed}", "eval").unlink()
    (pair,) = compare(read_results(tmp_path)).pairs.to_pylist()
    assert (pair["n_cells"], pair["significant"]) == (4, False) and pair["p_value"] >= 0.125
    assert pair["note"] == never_significant(4, "cell", ALPHA)
    assert "4 cells: the smallest attainable p-value is 0.125 >= alpha 0.05" in pair["note"]


def test_the_seed_unit_without_a_seed_on_every_split_has_no_test(tmp_path):
    write_grid(tmp_path, seeds=(0, 1))
    for split_id, seed in ((0, 0), (1, 1)):
        result_path(tmp_path, f"multisim-{split_id}-{seed}", "eval").unlink()
    (pair,) = compare(read_results(tmp_path), unit="seed").pairs.to_pylist()
    assert (pair["n_units"], pair["p_value"], pair["significant"], pair["note"]) == (
        0,
        None,
        None,
        NO_FULL_SEED,
    )
    assert not np.isnan(pair["ci_low"])  # the interval does not need a full seed


def test_one_seed_says_no_test_is_possible(tmp_path):
    write_grid(tmp_path, seeds=(0,))
    result = compare(read_results(tmp_path))
    (pair,) = result.pairs.to_pylist()
    assert pair["note"] == ONE_SEED and pair["p_value"] is None and pair["significant"] is None
    assert np.isnan(pair["ci_low"]) and not np.isnan(pair["diff"])
    assert {r["rank"] for r in result.ranking.to_pylist()} == {1}
    assert all(np.isnan(r["ci_low"]) for r in result.splits.to_pylist())


def test_a_pair_on_one_split_has_no_auc_and_no_test(tmp_path):
    write_grid(tmp_path, seeds=(0, 1))
    for split_id in (1, 2):  # multisim keeps split 0 only
        for seed in (0, 1):
            result_path(tmp_path, f"multisim-{split_id}-{seed}", "eval").unlink()
    (pair,) = compare(read_results(tmp_path)).pairs.to_pylist()
    assert (pair["n_cells"], pair["n_splits"], pair["note"]) == (2, 1, NO_AUC)
    assert np.isnan(pair["diff"]) and pair["p_value"] is None and pair["significant"] is None


def test_results_command_compares(tmp_path, capsys):
    write_grid(tmp_path, seeds=(0, 1))
    parser = argparse.ArgumentParser()
    add_results_arguments(parser)
    assert results(parser.parse_args([str(tmp_path), "--compare"])) == 0
    out = capsys.readouterr().out
    for title in (
        "Paired differences in normalized AUC",
        "flipping cells",
        "Per split",
        "Ranking: rank = 1 +",
    ):
        assert title in out
    assert f"Holm p < {ALPHA:g}" in out and "Few-shot gain" not in out and "margin" in out
    assert results(parser.parse_args([str(tmp_path), "--compare", "--json"])) == 0
    tables = json.loads(capsys.readouterr().out)
    assert [len(tables[name]) for name in ("pairs", "splits", "ranking")] == [1, 3, 2]
    assert (tables["unit"], tables["alpha"]) == ("cell", ALPHA)
    assert tables["pairs"][0]["n_cells"] == 6 and tables["pairs"][0]["note"] is None
    assert results(parser.parse_args([str(tmp_path), "--compare", "--json", "--unit", "seed"])) == 0
    tables = json.loads(capsys.readouterr().out)
    (pair,) = tables["pairs"]
    assert (
        tables["unit"] == "seed"
        and pair["n_units"] == 2
        and pair["note"] == never_significant(2, "seed", ALPHA)
    )
    with pytest.raises(ValueError, match="--compare"):
        results(parser.parse_args([str(tmp_path), "--unit", "seed"]))
    results(parser.parse_args([str(tmp_path), "--json"]))  # without --compare: the summary's tables
    summary = json.loads(capsys.readouterr().out)
    assert (
        set(summary)
        == {
            "auc",
            "ranking",
            "effective_robustness",
            "robustness_points",
            "robustness_trends",
        }
        and summary["auc"]
    )
    write_grid(tmp_path / "one", seeds=(0,))
    results(parser.parse_args([str(tmp_path / "one"), "--compare", "--json"]))
    (pair,) = json.loads(capsys.readouterr().out)["pairs"]  # NaN written as null: valid JSON
    assert pair["note"] == ONE_SEED and pair["ci_low"] is None and pair["p_value"] is None


def test_size_and_power_of_the_sign_flip_test_over_synthetic_studies():
    """400 studies of 3 seeds x 4 splits: per-cell values share the split's and seed's effect, plus each
    method's own noise (sd 0.02). Identical methods: rejections at alpha 0.05 within 3 binomial standard
    errors of 0.05; a +0.05 difference: found nearly always."""
    studies, seeds, alpha = 400, 3, 0.05
    fid = np.array([17.8, 24.1, 36.9, 45.3])
    w = split_weights(fid)
    rng = np.random.default_rng(7)
    shared = 0.7 - 0.005 * fid + rng.normal(0, 0.03, size=(studies, seeds, 1))  # split and seed effects
    noise = rng.normal(0, 0.02, size=(2, studies, seeds, len(fid)))
    for shift, low, high in ((0.0, alpha - 3 * 0.0109, alpha + 3 * 0.0109), (0.05, 0.98, 1.0)):
        a, b = shared + shift + noise[0], shared + noise[1]
        x = ((a - b) * w).reshape(studies, -1)
        rate = (sign_flip_p_value(x) < alpha).mean()
        assert low <= rate <= high, (shift, rate)


def test_size_of_each_unit_under_a_method_x_seed_effect():
    """400 studies of 8 seeds x 4 splits where each method's trials with one seed share an effect across
    splits (sd 0.02, as a shared initialisation could give), plus cell noise (sd 0.02), and no difference:
    the cell test rejects far above alpha; the seed test at its exact size, the largest attainable level
    below alpha (12/256 with 8 seeds), within 3 binomial standard errors. A +0.05 difference: the seed
    test finds it nearly always."""
    studies, seeds, alpha = 400, 8, 0.05
    w = split_weights(np.array([17.8, 24.1, 36.9, 45.3]))
    rng = np.random.default_rng(12)
    method_seed = rng.normal(0, 0.02, size=(studies, seeds, 1))  # a's minus b's, shared by the seed's splits
    d = method_seed + rng.normal(0, 0.02 * np.sqrt(2), size=(studies, seeds, len(w)))
    by_cell = sign_flip_p_value((d * w).reshape(studies, -1), rng, draws=2000)
    assert (by_cell < alpha).mean() > alpha + 3 * np.sqrt(alpha * (1 - alpha) / studies)
    extreme = [k for k in range(0, 2**seeds + 1, 2) if k / 2**seeds < alpha]  # counts come in pairs +-
    size = max(extreme) / 2**seeds
    assert size == 12 / 256
    rate = (sign_flip_p_value(d @ w) < alpha).mean()
    assert abs(rate - size) <= 3 * np.sqrt(size * (1 - size) / studies), rate
    assert (sign_flip_p_value((d + 0.05) @ w) < alpha).mean() >= 0.9
