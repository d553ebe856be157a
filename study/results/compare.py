"""Paired comparisons of methods: the difference in normalized AUC with a paired interval, a sign-flip
permutation test with Holm's correction, and a ranking by the number of methods significantly better.

The definitions (docs/statistics.md states them for readers):

- **Cells.** Every trial is trained on its own, per split and seed, so two methods of one dataset and
  backbone are compared on the cells (split j, seed s) both completed, by the paired difference
  ``d[s, j] = v_a[s, j] - v_b[s, j]`` of the metric's value (zero-shot; for ``shots > 0`` the few-shot
  value, as ``aggregate.py`` takes it).
- **Weights.** The normalized AUC (docs/protocol.md section 8) is linear in the per-split values:
  ``AUC = sum_j w_j v_j`` with the trapezoid weights ``w_j = normalized_auc(fid, e_j)`` over the FIDs (or
  the values of the ``shift`` measure chosen, e.g. ``mmd``) of the splits in the pair's cells (they sum
  to 1; NaN when those splits span fewer than 2 distinct values).
- **Difference.** ``diff = sum_j w_j dbar_j``, ``dbar_j`` the mean of ``d[s, j]`` over the seeds with a cell
  on split j. With every cell present it is the mean over seeds of the per-seed AUC differences, i.e.
  ``auc_summary``'s AUC of a minus that of b. ``auc_a`` and ``auc_b`` are the same sums of each method's own
  values, so ``diff = auc_a - auc_b``.
- **Interval.** A seeded two-way bootstrap of ``RESAMPLES`` resamples: each draws the seeds with
  replacement and, independently, the splits with replacement; its statistic is the weighted mean over the
  splits drawn, ``sum_j c_j w_j dbar_j / sum_j c_j w_j`` (``c_j``: how often split j was drawn, ``dbar_j``:
  the mean of ``d`` over the drawn seeds with a cell on split j), so a difference that is the same in every
  cell gives a zero-width interval. The 95% interval is the 2.5th and 97.5th percentile; a resample in
  which a drawn split has no drawn seed is left out. Per split: the mean of ``d`` over seeds with a
  bootstrap-over-seeds interval.
- **Test.** A sign-flip test of ``T = sum_u x_u`` over units ``u`` whose signs it flips (``unit``):
  the two-sided p-value is the share of sign patterns ``e`` with ``|sum_u e_u x_u| >= |T|``, over all
  ``2^n`` patterns for ``n <= EXACT_UP_TO`` units, else ``(1 + count) / (1 + DRAWS)`` over ``DRAWS`` seeded
  random patterns; the smallest p-value it can give is ``2 / 2^n`` (exact).

  - ``unit="cell"`` (default): ``x = w_j d[s, j]`` per cell. Assumes the cells are independent: H0 is that
    within every cell the two methods' values are exchangeable, independently across cells, i.e. no
    method x seed effect shared across splits. A method's trials with one seed share their initialisation
    (``torch.manual_seed(seed)``) on every split, so such an effect can exist; then this test rejects too
    often (docs/statistics.md measures how much). It has power with 3 seeds.
  - ``unit="seed"``: ``x = sum_j w_j d[s, j]``, the per-seed AUC difference, over the seeds with a cell
    on every split of the pair. Assumes only that seeds are independent: H0 is that each seed's difference
    is as likely as its negation, which holds with a method x seed effect. With ``n`` seeds the smallest
    p-value is ``2 / 2^n``: 0.0625 with 5, 0.031 with 6, so it needs 6+ seeds for alpha 0.05.
- **Holm.** Across the tested pairs of a dataset (all its backbones): with the p-values sorted,
  ``p_holm_(i) = max_{k <= i} min(1, (m - k + 1) p_(k))``; a pair is ``significant`` when
  ``p_holm < alpha``.
- **Rank.** ``rank(m) = 1 + the number of methods significantly better than m`` (a significant pair whose
  ``diff`` favours the other method), within a dataset and backbone. Methods with the same number of
  methods significantly better share a rank, and two methods not significantly different may differ in
  rank (a beats b and c, d beats c, b - c not significant: b has rank 2, c rank 3). ``better_than`` lists
  the methods m is significantly better than.
- **No test.** When the pair's cells span fewer than 2 distinct FIDs (no AUC) or one seed ("the
  difference cannot be told from seed noise"; with 2+ seeds and 2+ splits there are 2+ cells),
  ``p_value``, ``p_holm`` and ``significant`` are null, the interval is NaN and ``note`` says why; the same
  for the test alone with ``unit="seed"`` when no seed has a cell on every split. ``n_units`` counts the
  cells or seeds the test flips (0: no test). When the smallest attainable p-value ``2 / 2^n`` is
  ``>= alpha`` (e.g. 4 cells: 0.125) the test runs but ``note`` says the pair can never be significant.
  Other undefined floats are NaN, as in ``aggregate.py``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import pyarrow as pa

from study.results.aggregate import auc_summary, normalized_auc, per_seed_rows, with_shift
from study.results.files import write_text_atomic
from study.results.layout import COMPARISON_FILE
from study.results.names import CELL, FID, UNITS
from study.results.storage import StudyPath, Where, locate
from study.results.store import read_results

ALPHA = 0.05  # the significance level of the Holm-adjusted tests, unless compare is given another
RESAMPLES = 2000  # bootstrap resamples of each interval
EXACT_UP_TO = 16  # cells up to which the sign-flip test enumerates all 2^n patterns
DRAWS = 20000  # random sign patterns beyond that
ONE_SEED = "1 seed: the difference cannot be told from seed noise; run 2+ seeds"
NO_AUC = "the common cells span fewer than 2 distinct shift values: no AUC"
NO_FULL_SEED = "no seed has a cell on every split of the pair: no test by seed; run --unit cell"

_STR, _F64, _I32, _I64, _BOOL = pa.string(), pa.float64(), pa.int32(), pa.int64(), pa.bool_()
_KEYS = [("dataset", _STR), ("backbone", _STR), ("metric", _STR), ("shots", _I32), ("shift", _STR)]
_PAIR = [("method_a", _STR), ("method_b", _STR)]
PAIRS_OUT = pa.schema(
    _KEYS
    + _PAIR
    + [("auc_a", _F64), ("auc_b", _F64), ("diff", _F64), ("ci_low", _F64), ("ci_high", _F64)]
    + [("n_seeds", _I64), ("n_splits", _I64), ("n_cells", _I64), ("n_units", _I64)]
    + [("p_value", _F64), ("p_holm", _F64)]
    + [("significant", _BOOL), ("note", _STR)]
)
SPLITS_OUT = pa.schema(
    _KEYS
    + _PAIR
    + [("split_id", _I32), ("split_key", _STR), ("fid", _F64), ("weight", _F64)]
    + [("mean_a", _F64), ("mean_b", _F64), ("diff", _F64), ("ci_low", _F64), ("ci_high", _F64)]
    + [("n_seeds", _I64)]
)
RANKS_OUT = pa.schema(
    _KEYS + [("method", _STR), ("auc", _F64), ("n_seeds", _I64), ("rank", _I64), ("better_than", _STR)]
)
_NULLABLE = {"p_value", "p_holm", "significant", "note"}  # null: no test was run


@dataclass(frozen=True)
class Comparison:
    """The three tables of ``compare``: one row per method pair, per pair and split, per method; and the
    test's ``unit`` and ``alpha``."""

    pairs: pa.Table
    splits: pa.Table
    ranking: pa.Table
    unit: str = CELL
    alpha: float = ALPHA

    def to_json(self) -> str:
        """``{"unit": ..., "alpha": ..., "pairs": [...], "splits": [...], "ranking": [...]}``; NaN becomes
        null."""
        tables = {"pairs": self.pairs, "splits": self.splits, "ranking": self.ranking}
        out = {"unit": self.unit, "alpha": self.alpha} | {name: json_records(t) for name, t in tables.items()}
        return json.dumps(out, indent=1, allow_nan=False)


def compare(
    table: pa.Table,
    metric: str = "recall@1",
    shots: int = 0,
    seed: int = 0,
    alpha: float = ALPHA,
    shift: str = FID,
    unit: str = CELL,
) -> Comparison:
    """Every pair of methods of each dataset and backbone, compared on their common (split, seed) cells
    (the module docstring defines each column); ``seed`` seeds the bootstraps and random sign patterns.
    ``shift``: the measure whose trapezoid weights define the AUC (``aggregate.auc_summary``'s).
    ``unit``: what the sign-flip test flips, ``cell`` or ``seed`` (module docstring, **Test**)."""
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r}: the sign-flip test flips one of {', '.join(UNITS)}")
    rows = per_seed_rows(table, metric, shots=[shots], kinds=["zeroshot" if shots == 0 else "fewshot"])
    rows = with_shift(rows, table, shift) if not rows.empty else rows.assign(shift_value=rows["fid"])
    aucs = auc_summary(table, metric, shots, shift).to_pandas().set_index(["dataset", "backbone", "method"])
    pairs, splits, ranks = [], [], []
    for (dataset, backbone), group in rows.groupby(["dataset", "backbone"], dropna=False):
        keys = {"dataset": dataset, "backbone": backbone, "metric": metric, "shots": shots, "shift": shift}
        auc = aucs.loc[(dataset, backbone)]
        methods = sorted(auc.index, key=lambda m: (-np.nan_to_num(auc.loc[m, "auc"], nan=-np.inf), m))
        wide = group.pivot(index=["split_id", "seed"], columns="method", values="value")
        info = group.drop_duplicates("split_id").set_index("split_id")[["split_key", "fid", "shift_value"]]
        for a, b in combinations(methods, 2):
            rng = np.random.default_rng([seed, zlib.crc32(f"{dataset}\0{backbone}\0{a}\0{b}".encode())])
            pair, per_split = _pair(wide[[a, b]].dropna(), info, rng, unit, alpha)
            pairs.append(keys | {"method_a": a, "method_b": b} | pair)
            splits += [keys | {"method_a": a, "method_b": b} | row for row in per_split]
        ranks += [
            keys | {"method": m, "auc": auc.loc[m, "auc"], "n_seeds": auc.loc[m, "n_seeds"]} for m in methods
        ]
    pairs_frame = pd.DataFrame(pairs, columns=PAIRS_OUT.names)
    if len(pairs_frame):
        pairs_frame["p_holm"] = pairs_frame.groupby("dataset")["p_value"].transform(holm)
        tested = pairs_frame["p_holm"].notna()
        pairs_frame["significant"] = pairs_frame["p_holm"].lt(alpha).where(tested, None)
    ranks_frame = _ranked(pd.DataFrame(ranks, columns=RANKS_OUT.names), pairs_frame)
    return Comparison(
        _table(pairs_frame, PAIRS_OUT),
        _table(pd.DataFrame(splits, columns=SPLITS_OUT.names), SPLITS_OUT),
        _table(ranks_frame, RANKS_OUT),
        unit,
        alpha,
    )


def write_comparison(study_dir: Where, metric: str = "recall@1") -> StudyPath:
    """``<study>/comparison.json``: ``compare`` of the study's results (the MLflow parent run's artifact)."""
    text = compare(read_results(study_dir), metric).to_json()
    return write_text_atomic(locate(study_dir) / COMPARISON_FILE, text)


def split_weights(fid: np.ndarray) -> np.ndarray:
    """``w_j`` with ``normalized_auc(fid, v) == sum_j w_j v_j`` for every ``v`` (NaN below 2 distinct FIDs)."""
    return np.array([normalized_auc(fid, unit) for unit in np.eye(len(fid))])


def sign_flip_p_value(
    x: np.ndarray, rng: np.random.Generator | None = None, exact_up_to: int = EXACT_UP_TO, draws: int = DRAWS
) -> np.ndarray:
    """Two-sided sign-flip p-value of ``T = sum_c x_c`` over the last axis (``x_c = w_j d[s, j]``).

    Exact over all ``2^n`` sign patterns for ``n <= exact_up_to``; else ``(1 + count) / (1 + draws)`` over
    ``draws`` random patterns from ``rng``. Vectorised over leading axes (one p-value per row).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n <= exact_up_to:
        signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        extra = 0
    else:
        if rng is None:
            raise ValueError(f"{n} cells need random sign patterns: pass rng")
        signs = rng.choice([-1.0, 1.0], size=(draws, n))
        extra = 1
    observed = np.abs(x.sum(axis=-1))
    tolerance = 1e-9 * np.abs(x).sum(axis=-1)  # patterns equal to T up to rounding count as extreme
    count = (np.abs(x @ signs.T) >= (observed - tolerance)[..., None]).sum(axis=-1)
    return (count + extra) / (len(signs) + extra)


def smallest_p_value(n: int, exact_up_to: int = EXACT_UP_TO, draws: int = DRAWS) -> float:
    """The smallest p-value ``sign_flip_p_value`` can give with ``n`` units: ``2 / 2^n`` exact (the
    observed pattern and its negation), ``1 / (1 + draws)`` with random patterns."""
    return 2.0 / 2.0**n if n <= exact_up_to else 1.0 / (1 + draws)


def never_significant(n: int, unit: str, alpha: float) -> str:
    """The note of a pair whose test cannot reach ``alpha`` with ``n`` units."""
    units = f"{n} {unit}{'s' * (n > 1)}"
    return (
        f"{units}: the smallest attainable p-value is {smallest_p_value(n):.3g} >= alpha {alpha:g}, so "
        "never significant; run more seeds"
    )


def flipped_values(d: np.ndarray, weights: np.ndarray, unit: str) -> np.ndarray:
    """The values whose signs the test flips, from ``d`` (seeds x splits, NaN where a cell is missing):
    ``w_j d[s, j]`` per cell, or per seed with a cell on every split ``sum_j w_j d[s, j]``."""
    if unit == CELL:
        return (d * weights)[~np.isnan(d)]
    return d[~np.isnan(d).any(axis=1)] @ weights


def two_way_bootstrap(
    d: np.ndarray, weights: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES
) -> np.ndarray:
    """``resamples`` draws of the bootstrap statistic (module docstring) of ``d``, seeds x splits with NaN
    where a cell is missing: each draws seeds and, independently, splits with replacement."""
    seeds, splits = d.shape
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=resamples)
    split_counts = rng.multinomial(splits, np.full(splits, 1 / splits), size=resamples)
    return bootstrap_statistic(d, weights, seed_counts, split_counts)


def bootstrap_statistic(
    d: np.ndarray, weights: np.ndarray, seed_counts: np.ndarray, split_counts: np.ndarray
) -> np.ndarray:
    """Per resample (rows of the counts: how often each seed and split was drawn), the weighted mean
    ``sum_j c_j w_j dbar_j / sum_j c_j w_j`` over the drawn splits (``c_j`` draws of split j, ``dbar_j`` the
    mean of ``d`` over the drawn seeds with a cell on split j); NaN where a drawn split has no drawn seed
    or the drawn weights sum to 0."""
    present = ~np.isnan(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (seed_counts @ np.where(present, d, 0.0)) / (seed_counts @ present)
    drawn = split_counts > 0
    drawn_weight = split_counts @ weights  # sum_j c_j w_j: the weights actually drawn
    terms = np.where(drawn, split_counts * weights * np.where(drawn, means, 0.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = terms.sum(axis=1) / drawn_weight
    return np.where((drawn & np.isnan(means)).any(axis=1) | (drawn_weight <= 0), np.nan, statistic)


def holm(p: pd.Series | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN (no test) stays NaN and does not count in ``m``."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def _pair(
    cells: pd.DataFrame, info: pd.DataFrame, rng: np.random.Generator, unit: str, alpha: float
) -> tuple[dict, list[dict]]:
    """One pair on its common cells (rows (split_id, seed), columns a, b): its row and its per-split rows;
    the test flips ``unit``s."""
    a, b = cells.columns
    grid = {m: cells[m].unstack("split_id") for m in (a, b)}  # seeds x splits, NaN where no common cell
    split_ids = list(grid[a].columns)
    fid = info.loc[split_ids, "fid"].to_numpy(np.float64)
    weights = (
        split_weights(info.loc[split_ids, "shift_value"].to_numpy(np.float64)) if split_ids else np.empty(0)
    )
    d = (grid[a] - grid[b]).to_numpy(np.float64)
    n_seeds, n_cells = len(grid[a].index), len(cells)
    row = {
        "auc_a": float(weights @ grid[a].mean().to_numpy()) if split_ids else np.nan,
        "auc_b": float(weights @ grid[b].mean().to_numpy()) if split_ids else np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "n_seeds": n_seeds,
        "n_splits": len(split_ids),
        "n_cells": n_cells,
        "n_units": 0,
        "p_value": np.nan,
        "note": None,
    }
    row["diff"] = row["auc_a"] - row["auc_b"]
    if np.isnan(row["diff"]):
        row["note"] = NO_AUC
    elif n_seeds < 2:
        row["note"] = ONE_SEED
    else:
        row["ci_low"], row["ci_high"] = np.nanpercentile(two_way_bootstrap(d, weights, rng), [2.5, 97.5])
        x = flipped_values(d, weights, unit)
        row["n_units"] = len(x)
        if len(x) == 0:
            row["note"] = NO_FULL_SEED
        else:
            row["p_value"] = float(sign_flip_p_value(x, rng))
            if smallest_p_value(len(x)) >= alpha:
                row["note"] = never_significant(len(x), unit, alpha)
    per_split = []
    for j, split_id in enumerate(split_ids):
        dj = d[~np.isnan(d[:, j]), j]
        low = high = np.nan
        if len(dj) >= 2:
            counts = rng.multinomial(len(dj), np.full(len(dj), 1 / len(dj)), size=RESAMPLES)
            low, high = np.percentile(counts @ dj / len(dj), [2.5, 97.5])
        per_split.append(
            {
                "split_id": split_id,
                "split_key": info.loc[split_id, "split_key"],
                "fid": fid[j],
                "weight": weights[j],
                "mean_a": grid[a][split_id].mean(),
                "mean_b": grid[b][split_id].mean(),
                "diff": dj.mean(),
                "ci_low": low,
                "ci_high": high,
                "n_seeds": len(dj),
            }
        )
    return row, per_split


def _ranked(ranks: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """``rank`` and ``better_than`` from the significant pairs of each dataset and backbone."""
    beaten: dict[tuple, list[str]] = {}
    for pair in pairs[pairs["significant"].eq(True)].itertuples():
        winner, loser = (pair.method_a, pair.method_b) if pair.diff > 0 else (pair.method_b, pair.method_a)
        beaten.setdefault((pair.dataset, pair.backbone, winner), []).append(loser)
    by_loser: dict[tuple, int] = {}
    for (dataset, backbone, _), losers in beaten.items():
        for loser in losers:
            key = (dataset, backbone, loser)
            by_loser[key] = by_loser.get(key, 0) + 1
    keys = list(zip(ranks["dataset"], ranks["backbone"], ranks["method"], strict=True))
    ranks["rank"] = [1 + by_loser.get(k, 0) for k in keys]
    ranks["better_than"] = [", ".join(beaten.get(k, [])) for k in keys]
    return ranks.sort_values(["dataset", "backbone", "rank"], kind="stable")


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Arrow table with ``schema``: undefined floats NaN, except the no-test columns, which are null."""
    columns = [
        pa.array(frame[f.name].to_numpy(np.float64), f.type)
        if pa.types.is_floating(f.type) and f.name not in _NULLABLE
        else pa.array(frame[f.name].astype(object).where(frame[f.name].notna(), None), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def json_records(table: pa.Table) -> list[dict]:
    """The rows of ``table`` as JSON-ready dicts, NaN as None (JSON null)."""
    return [
        {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        for row in table.to_pylist()
    ]
