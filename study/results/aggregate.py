"""Aggregations of the results table: degradation curves, normalized AUC, rankings, few-shot gain.

Each takes the table ``read_results`` returns, uses the completed rows of the evaluation stage only,
and returns an Arrow table. Confidence intervals are the half-width of the 95% Student-t interval over
seeds (NaN with one seed), as the paper reports them. Curves and AUC are drawn against a split's FID, or
against another shift measure stored with its splits (``shift="mmd"``, ``"fid@<extractor>"``; the
``shift`` column); ``shift_agreement`` says how far each measure orders the splits as FID does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from study.results.files import ci95
from study.results.layout import DEFAULT_SPLIT_KEY
from study.results.names import FID

METHOD = ["dataset", "backbone", "method"]
SPLIT = ["split_id", "split_key", "split_progression", "fid", "num_test_classes"]

_STR, _F64, _I32, _I64 = pa.string(), pa.float64(), pa.int32(), pa.int64()
_SPLIT_TYPES = [_I32, _STR, _STR, _F64, _I32]
CURVES_OUT = pa.schema(
    list(zip(METHOD, [_STR] * 3, strict=True))
    + list(zip(SPLIT, _SPLIT_TYPES, strict=True))
    + [("metric", _STR), ("shots", _I32), ("kind", _STR), ("mean", _F64), ("ci95", _F64), ("n_seeds", _I64)]
    + [("shift", _STR), ("shift_value", _F64)]  # the x-axis: its measure and the split's value of it
)
AUC_OUT = pa.schema(
    list(zip(METHOD, [_STR] * 3, strict=True))
    + [("metric", _STR), ("shots", _I32), ("auc", _F64), ("ci95", _F64), ("n_seeds", _I64)]
    + [("n_splits", _I64), ("fid_min", _F64), ("fid_max", _F64), ("complete", pa.bool_()), ("rank", _F64)]
    + [("shift", _STR), ("shift_min", _F64), ("shift_max", _F64)]  # the x-axis and its range
)
RANKING_OUT = pa.schema(
    list(zip(METHOD, [_STR] * 3, strict=True))
    + [("metric", _STR), ("auc", _F64), ("auc_rank", _F64), ("default_split", _F64)]
    + [("default_rank", _F64), ("spearman", _F64)]
)
GAIN_OUT = pa.schema(
    list(zip(METHOD, [_STR] * 3, strict=True))
    + list(zip(SPLIT, _SPLIT_TYPES, strict=True))
    + [("metric", _STR), ("shots", _I32), ("fewshot", _F64), ("fewshot_ci95", _F64)]
    + [("zeroshot", _F64), ("zeroshot_ci95", _F64), ("gain", _F64), ("gain_ci95", _F64)]
    + [("n_seeds", _I64), ("episodes", _I64)]
)


SHIFT_AGREEMENT_OUT = pa.schema(
    [("dataset", _STR), ("shift", _STR), ("kendall_tau", _F64), ("p_value", _F64), ("n_splits", _I64)]
)
_SPLIT_OF = ["dataset", "split_id", "split_key", FID]  # the columns of ``split_shift`` before its measures


def normalized_auc(fid: np.ndarray, value: np.ndarray) -> float:
    """Trapezoid area under value-vs-FID divided by the FID range (docs/protocol.md section 8); NaN below 2 FIDs."""
    order = np.argsort(fid, kind="stable")
    fid, value = np.asarray(fid, dtype=np.float64)[order], np.asarray(value, dtype=np.float64)[order]
    width = fid[-1] - fid[0] if len(fid) else 0.0
    if width <= 0:
        return float("nan")
    return float(np.sum((fid[1:] - fid[:-1]) * (value[1:] + value[:-1]) / 2) / width)


def degradation_curves(
    table: pa.Table, metric: str = "recall@1", shots: int = 0, kind: str | None = None, shift: str = FID
) -> pa.Table:
    """Per dataset x method x split: mean and CI over seeds of ``metric`` (test classes).

    ``shots=0`` is the zero-shot evaluation on all test images; for ``shots>0`` the per-seed value is
    the mean over episodes of the adapted model (``kind="fewshot"``, default) or of the unadapted one.
    ``shift_value`` is the split's value of the ``shift`` measure, the curve's x-axis (sorted by it).
    """
    kind = kind or ("zeroshot" if shots == 0 else "fewshot")
    rows = per_seed_rows(table, metric, shots=[shots], kinds=[kind])
    if rows.empty:
        return CURVES_OUT.empty_table()
    rows = with_shift(rows, table, shift)
    out = (
        rows.groupby(METHOD + SPLIT + ["shift_value"], dropna=False)["value"]
        .agg(mean="mean", ci95=ci95, n_seeds="count")
        .reset_index()
        .assign(metric=metric, shots=shots, kind=kind, shift=shift)
        .sort_values(METHOD + ["shift_value", "split_id"])
    )
    return arrow_table(out, CURVES_OUT)


def auc_summary(table: pa.Table, metric: str = "recall@1", shots: int = 0, shift: str = FID) -> pa.Table:
    """Per dataset x method: normalized AUC of ``metric`` vs FID (or the ``shift`` measure), mean and CI
    over per-seed AUCs.

    ``complete`` says every seed covers every split the dataset has results for; otherwise seeds are
    averaged over the splits they have (``n_splits`` is the fewest any seed has). ``rank`` 1 is the
    highest AUC within the dataset (ties share the average rank). ``shift_min``/``shift_max``: the range
    of the x-axis the AUC is normalized by (the FID range when ``shift`` is FID).
    """
    rows = per_seed_rows(table, metric, shots=[shots], kinds=["zeroshot" if shots == 0 else "fewshot"])
    if rows.empty:
        return AUC_OUT.empty_table()
    rows = with_shift(rows, table, shift)
    splits_of = rows.groupby("dataset")["split_id"].nunique()
    per_seed = pd.DataFrame(
        [
            dict(zip(METHOD + ["seed"], key, strict=True))
            | {
                "auc": normalized_auc(g["shift_value"].to_numpy(), g["value"].to_numpy()),
                "n_splits": g["split_id"].nunique(),
                "fid_min": g["fid"].min(),
                "fid_max": g["fid"].max(),
                "shift_min": g["shift_value"].min(),
                "shift_max": g["shift_value"].max(),
            }
            for key, g in rows.groupby(METHOD + ["seed"], dropna=False)
        ]
    )
    out = (
        per_seed.groupby(METHOD, dropna=False)
        .agg(
            auc=("auc", "mean"),
            ci95=("auc", ci95),
            n_seeds=("auc", "count"),
            n_splits=("n_splits", "min"),
            fid_min=("fid_min", "min"),
            fid_max=("fid_max", "max"),
            shift_min=("shift_min", "min"),
            shift_max=("shift_max", "max"),
        )
        .reset_index()
        .assign(metric=metric, shots=shots, shift=shift)
    )
    out["complete"] = out["n_splits"] == out["dataset"].map(splits_of)
    out["rank"] = out.groupby("dataset")["auc"].rank(ascending=False, method="average")
    return arrow_table(out.sort_values(["dataset", "rank"]), AUC_OUT)


def ranking(table: pa.Table, metric: str = "recall@1", default_key: str = DEFAULT_SPLIT_KEY) -> pa.Table:
    """Method ranks per dataset by AUC and by ``metric`` on the default split, and their Spearman rho.

    ``spearman`` is a per-dataset value repeated on each of its rows: does the usual single-split
    benchmark rank methods as the whole degradation curve does? NaN with fewer than 2 ranked methods.
    """
    auc = auc_summary(table, metric).to_pandas()[METHOD + ["auc"]]
    if auc.empty:  # no rows for the metric (and pandas cannot merge two empty Arrow-backed frames)
        return RANKING_OUT.empty_table()
    curves = degradation_curves(table, metric).to_pandas()
    default = curves[curves["split_key"] == default_key][METHOD + ["mean"]]
    out = auc.merge(default.rename(columns={"mean": "default_split"}), on=METHOD, how="outer")
    by_dataset = out.groupby("dataset")
    out["auc_rank"] = by_dataset["auc"].rank(ascending=False, method="average")
    out["default_rank"] = by_dataset["default_split"].rank(ascending=False, method="average")
    rho = {dataset: _spearman(g["auc"], g["default_split"]) for dataset, g in by_dataset}
    out["spearman"] = out["dataset"].map(rho)
    return arrow_table(out.assign(metric=metric).sort_values(["dataset", "auc_rank"]), RANKING_OUT)


def fewshot_gain(table: pa.Table, metric: str = "recall@1") -> pa.Table:
    """Per dataset x method x split x shots: few-shot minus zero-shot ``metric`` on the same queries.

    ``fewshot``/``zeroshot`` are means over seeds of the per-seed episode means, and their ``_ci95``
    the mean over seeds of the episode CI (the spread over episodes); ``gain_ci95`` is the CI of the
    per-seed gain over seeds (NaN with one seed).
    """
    rows = per_seed_rows(table, metric, shots=None, kinds=["fewshot", "zeroshot"])
    if rows.empty:
        return GAIN_OUT.empty_table()
    keys = METHOD + SPLIT + ["shots", "seed"]
    few, zero = (
        rows[rows["kind"] == kind].rename(columns=_renamed(kind)) for kind in ("fewshot", "zeroshot")
    )
    wide = few[keys + ["fewshot", "fewshot_ci95", "episodes"]].merge(
        zero[keys + ["zeroshot", "zeroshot_ci95"]], on=keys, how="outer"
    )
    wide["gain"] = wide["fewshot"] - wide["zeroshot"]
    out = (
        wide.groupby(METHOD + SPLIT + ["shots"], dropna=False)
        .agg(
            fewshot=("fewshot", "mean"),
            fewshot_ci95=("fewshot_ci95", "mean"),
            zeroshot=("zeroshot", "mean"),
            zeroshot_ci95=("zeroshot_ci95", "mean"),
            gain=("gain", "mean"),
            gain_ci95=("gain", ci95),
            n_seeds=("seed", "count"),
            episodes=("episodes", "min"),
        )
        .reset_index()
        .assign(metric=metric)
        .sort_values(METHOD + ["fid", "split_id", "shots"])
    )
    return arrow_table(out, GAIN_OUT)


def per_seed_rows(table: pa.Table, metric: str, shots: list[int] | None, kinds: list[str]) -> pd.DataFrame:
    """Completed evaluation rows of ``metric`` on the test classes, of the embedding each trial reports (a
    DiVA trial's other weightings are left out); one row per trial and kind."""
    columns = METHOD + SPLIT + ["seed", "trial_id", "stage", "status", "subset", "shots", "kind", "weighting"]
    frame = table.select(columns + ["metric", "value", "ci95", "episodes"]).to_pandas()
    keep = (
        (frame["stage"] == "eval")
        & (frame["status"] == "completed")
        & (frame["subset"] == "test")
        & frame["weighting"].isna()  # the reported embedding (other weightings are recorded apart)
        & (frame["metric"] == metric)
        & frame["kind"].isin(kinds)
        & (frame["shots"].isin(shots) if shots is not None else frame["shots"] > 0)
    )
    frame = frame[keep]
    repeated = frame[frame.duplicated(METHOD + ["split_id", "seed", "shots", "kind"], keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        raise ValueError(
            f"{repeated['trial_id'].nunique()} trials share dataset {first['dataset']}, method "
            f"{first['method']}, backbone {first['backbone']}, split {first['split_id']}, seed {first['seed']} "
            f"(trial ids {sorted(repeated['trial_id'].unique())[:4]}); aggregations expect one trial per "
            "method x split x seed: filter the table first"
        )
    return frame


def split_shift(table: pa.Table) -> pd.DataFrame:
    """Per dataset and split of the completed evaluation rows: its FID and one column per stored shift
    measure (NaN for a split that lacks it, e.g. from a split file written before the measure)."""
    frame = table.select(_SPLIT_OF + ["shift", "stage", "status"]).to_pandas()
    frame = frame[(frame["stage"] == "eval") & (frame["status"] == "completed")]
    frame = frame.drop_duplicates(["dataset", "split_id"])
    measures = pd.DataFrame(
        [dict(stored) if stored is not None else {} for stored in frame["shift"]], index=frame.index
    )
    return pd.concat([frame[_SPLIT_OF], measures], axis=1)


def _measures(splits: pd.DataFrame) -> list[str]:
    """The shift measures of ``split_shift``'s table besides FID."""
    return sorted(c for c in splits.columns if c not in _SPLIT_OF)


def shift_agreement(table: pa.Table) -> pa.Table:
    """Per dataset and stored shift measure: Kendall's tau-b between the order it gives the splits and
    FID's (``scipy.stats.kendalltau``, its two-sided p-value), over the ``n_splits`` splits that have
    both; NaN below 2 such splits."""
    splits = split_shift(table)
    rows = []
    for dataset, part in splits.groupby("dataset"):
        for measure in (c for c in _measures(part) if part[c].notna().any()):
            both = part[[FID, measure]].dropna()
            tau, p_value = (float("nan"),) * 2
            if len(both) >= 2:
                tau, p_value = stats.kendalltau(both[FID], both[measure])
            rows.append([dataset, measure, tau, p_value, len(both)])
    frame = pd.DataFrame(rows, columns=SHIFT_AGREEMENT_OUT.names)
    return arrow_table(frame, SHIFT_AGREEMENT_OUT)


def with_shift(rows: pd.DataFrame, table: pa.Table, shift: str) -> pd.DataFrame:
    """``rows`` with ``shift_value``: each split's value of the ``shift`` measure; refuses a measure
    that some of the rows' splits lack, naming the measures they have."""
    if shift == FID:
        return rows.assign(shift_value=rows[FID])
    splits = split_shift(table)
    values = splits[["dataset", "split_id"]].assign(
        shift_value=splits[shift] if shift in splits.columns else np.nan
    )
    out = rows.merge(values, on=["dataset", "split_id"], how="left")
    lacking = out[out["shift_value"].isna()]
    if not lacking.empty:
        held = splits[splits["dataset"].isin(lacking["dataset"])]
        present = [FID] + [c for c in _measures(held) if held[c].notna().all()]
        raise ValueError(
            f"shift measure {shift!r} is not stored for splits {sorted(lacking['split_key'].unique())} of "
            f"dataset(s) {sorted(lacking['dataset'].unique())}; their splits have: {', '.join(present)}. "
            "Split files built by this oodml store mmd (rebuild with `oodml splits build`), and "
            "fid@<extractor> for each of their shift_extractors"
        )
    return out


def _renamed(kind: str) -> dict[str, str]:
    return {"value": kind, "ci95": f"{kind}_ci95"}


def _spearman(a: pd.Series, b: pd.Series) -> float:
    both = a.notna() & b.notna()
    if both.sum() < 2 or a[both].nunique() < 2 or b[both].nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(a[both], b[both]).statistic)


def arrow_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Arrow table with ``schema``; float columns keep NaN (undefined, e.g. a CI from one seed) as NaN."""
    columns = [
        pa.array(frame[f.name].to_numpy(np.float64), f.type)
        if pa.types.is_floating(f.type)
        else pa.array(frame[f.name], f.type, from_pandas=True)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
