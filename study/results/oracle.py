"""The shift-vs-difficulty decomposition and the cross-dataset table (docs/oracle.md).

Both read the completed evaluation rows of a results table and leave the other aggregations alone: an
oracle trial records measurements on the held-out half only (subset ``heldout``) and cross-dataset values
are their own subset (``cross``), so curves, AUC, rankings and few-shot gains, which read subset ``test``,
never see them.

The decomposition, per dataset x backbone x method and split j, with every value the mean over seeds of
the metric on the held-out half of split j's test classes (``method``: the benchmark trials' selected
models; ``oracle``: the oracle trials, trained on the other half of the same classes):

    gap(j)         = oracle(j) - method(j)
    drop(j)        = method(e) - method(j)         e: the split of lowest FID holding both values
    difficulty(j)  = oracle(e) - oracle(j)         how much harder the test classes of j are, without shift
    shift_part(j)  = gap(j) - gap(e)               what the train classes of j fail to teach about its test classes
    drop(j)        = difficulty(j) + shift_part(j) (exactly)
    shift_share(j) = shift_part(j) / drop(j)       NaN where drop(j) is 0

(``shift_part``, not ``shift``: the results' ``shift`` column is the split's map of shift measures.)
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from study.results.aggregate import CURVES_OUT, METHOD, SPLIT, arrow_table
from study.results.files import ci95
from study.results.schema import BENCHMARK, ORACLE

_STR, _F64, _I64 = pa.string(), pa.float64(), pa.int64()
_KEYS = [CURVES_OUT.field(name) for name in METHOD + SPLIT]  # typed as the degradation curves' columns
DECOMPOSITION_OUT = pa.schema(
    _KEYS
    + [("metric", _STR), ("method_value", _F64), ("oracle_value", _F64), ("gap", _F64)]
    + [("easiest_split_key", _STR), ("drop", _F64), ("difficulty", _F64), ("shift_part", _F64)]
    + [("shift_share", _F64), ("n_seeds", _I64), ("n_oracle_seeds", _I64), ("left_out_classes", _I64)]
)
CROSS_OUT = pa.schema(
    _KEYS
    + [("eval_dataset", _STR), ("metric", _STR), ("mean", _F64), ("ci95", _F64), ("n_seeds", _I64)]
    + [("own_test", _F64)]
)


def _rows(table: pa.Table, subset: str, metric: str) -> pd.DataFrame:
    """Completed zero-shot evaluation rows of ``metric`` on ``subset``; ``trial_role`` null (rows written
    before the oracle existed) reads as benchmark."""
    columns = METHOD + SPLIT + ["seed", "trial_id", "trial_role", "eval_dataset", "left_out_classes"]
    frame = table.select(
        columns + ["stage", "status", "subset", "shots", "metric", "value", "weighting"]
    ).to_pandas()
    keep = (
        (frame["stage"] == "eval")
        & (frame["status"] == "completed")
        & (frame["subset"] == subset)
        & frame["weighting"].isna()  # the reported embedding
        & (frame["shots"] == 0)
        & (frame["metric"] == metric)
    )
    frame = frame[keep].copy()
    frame["trial_role"] = frame["trial_role"].fillna(BENCHMARK)
    keys = METHOD + ["split_id", "seed", "trial_role", "eval_dataset"]
    repeated = frame[frame.duplicated(keys, keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        raise ValueError(
            f"{repeated['trial_id'].nunique()} {first['trial_role']} trials share dataset {first['dataset']}, "
            f"method {first['method']}, split {first['split_id']}, seed {first['seed']} (trial ids "
            f"{sorted(repeated['trial_id'].unique())[:4]}); expected one per role x method x split x seed"
        )
    return frame


HELDOUT_OUT = pa.schema(
    _KEYS + [("trial_role", _STR), ("metric", _STR), ("mean", _F64), ("ci95", _F64), ("n_seeds", _I64)]
)


def heldout_curves(table: pa.Table, metric: str = "recall@1") -> pa.Table:
    """Per dataset x backbone x method x split and role: mean and CI over seeds of ``metric`` on the
    held-out half of the test classes (the oracle's curve and its method's on the same images)."""
    rows = _rows(table, "heldout", metric)
    if rows.empty:
        return HELDOUT_OUT.empty_table()
    keys = METHOD + SPLIT + ["trial_role"]
    out = rows.groupby(keys, dropna=False)["value"].agg(mean="mean", ci95=ci95, n_seeds="count").reset_index()
    return arrow_table(
        out.assign(metric=metric).sort_values(METHOD + ["trial_role", "fid", "split_id"]), HELDOUT_OUT
    )


def shift_decomposition(table: pa.Table, metric: str = "recall@1") -> pa.Table:
    """Per dataset x backbone x method x split: the method's and its oracle's held-out ``metric`` and the
    drop from the easiest split divided into difficulty and shift_part (the module docstring's definition).
    Splits without both a method and an oracle value are left out."""
    rows = _rows(table, "heldout", metric)
    if rows.empty or not (rows["trial_role"] == ORACLE).any():
        return DECOMPOSITION_OUT.empty_table()
    means = (
        rows.groupby(METHOD + SPLIT + ["trial_role"], dropna=False)
        .agg(value=("value", "mean"), n=("seed", "count"), left_out=("left_out_classes", "max"))
        .reset_index()
    )
    method, oracle = (
        means[means["trial_role"] == role].drop(columns="trial_role") for role in (BENCHMARK, ORACLE)
    )
    wide = method.merge(oracle, on=METHOD + SPLIT, suffixes=("", "_oracle"))
    out = []
    for _, part in wide.groupby(METHOD, dropna=False):
        part = part.sort_values(["fid", "split_id"])
        easiest = part.iloc[0]
        gap = part["value_oracle"] - part["value"]
        drop = easiest["value"] - part["value"]
        shift_part = gap - (easiest["value_oracle"] - easiest["value"])
        out.append(
            part.assign(
                method_value=part["value"],
                oracle_value=part["value_oracle"],
                gap=gap,
                easiest_split_key=easiest["split_key"],
                drop=drop,
                difficulty=easiest["value_oracle"] - part["value_oracle"],
                shift_part=shift_part,
                shift_share=shift_part / drop.where(drop != 0),  # NaN where there is no drop
                n_seeds=part["n"],
                n_oracle_seeds=part["n_oracle"],
                left_out_classes=part[["left_out", "left_out_oracle"]].max(axis=1),
            )
        )
    frame = pd.concat(out).assign(metric=metric)
    return arrow_table(frame.sort_values(METHOD + ["fid", "split_id"]), DECOMPOSITION_OUT)


def cross_dataset(table: pa.Table, metric: str = "recall@1") -> pa.Table:
    """Per dataset trained on x backbone x method x split x dataset evaluated on: mean and CI over seeds
    of ``metric`` on the other dataset's test classes, beside the same trials' own test value."""
    rows = _rows(table, "cross", metric)
    if rows.empty:
        return CROSS_OUT.empty_table()
    keys = METHOD + SPLIT + ["eval_dataset"]
    out = rows.groupby(keys, dropna=False)["value"].agg(mean="mean", ci95=ci95, n_seeds="count").reset_index()
    # each row's own test value: of the trials cross-evaluated on that row's dataset, no others
    evaluated = rows[["trial_id", "eval_dataset"]].drop_duplicates()
    own = _rows(table, "test", metric).drop(columns="eval_dataset").merge(evaluated, on="trial_id")
    own = own.groupby(keys, dropna=False)["value"].mean()
    out = out.merge(own.rename("own_test").reset_index(), on=keys, how="left").assign(metric=metric)
    return arrow_table(out.sort_values(METHOD + ["fid", "split_id", "eval_dataset"]), CROSS_OUT)


def oracle_lines(table: pa.Table, metric: str = "recall@1") -> list[str]:
    """``oodml results``' sections for the decomposition and the cross-dataset table, where the study has
    their rows (none otherwise)."""
    lines = []
    parts = shift_decomposition(table, metric)
    if parts.num_rows:
        lines += [
            "",
            f"Shift vs difficulty, held-out {metric} (mean over seeds, on the held-out half of the test classes): "
            "drop from the easiest split = difficulty (the oracle's drop) + shift_part (gap growth); docs/oracle.md:",
        ]
        columns = ["dataset", "method", "split_key", "fid", "method_value", "oracle_value", "gap", "drop"]
        lines.append(_text(parts.select([*columns, "difficulty", "shift_part", "shift_share", "n_seeds"])))
    cross = cross_dataset(table, metric)
    if cross.num_rows:
        lines += [
            "",
            f"Cross-dataset {metric} (trained on dataset, evaluated on eval_dataset's test classes):",
        ]
        columns = [
            "dataset",
            "method",
            "split_key",
            "fid",
            "eval_dataset",
            "mean",
            "ci95",
            "n_seeds",
            "own_test",
        ]
        lines.append(_text(cross.select(columns)))
    return lines


def _text(table: pa.Table) -> str:
    return table.to_pandas().to_string(index=False, float_format="{:.4f}".format)
