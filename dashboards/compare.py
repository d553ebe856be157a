"""Paired comparisons: is a method's AUC really above another's, or within seed noise?

Per dataset: the ranking by the number of methods significantly better, a forest plot of each pair's
difference in normalized AUC with its paired 95% interval, and the pairs' table with the sign-flip
p-values before and after Holm's correction (``study/results/compare.py`` and docs/statistics.md define
them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dashboards.charts import Spec, grid, numbers, rows_of
from dashboards.page import Block, Image, Note, Table
from dashboards.plotting import METRICS, PRIMARY_METRIC, figure, slug
from study.results.compare import RESAMPLES, compare

SIGNIFICANT, NOT_SIGNIFICANT, UNTESTED = "#D55E00", "#0072B2", "#999999"


def compare_blocks(table: pa.Table, out: Path) -> list[Block]:
    comparison = compare(table, PRIMARY_METRIC)
    pairs, ranks = comparison.pairs.to_pandas(), comparison.ranking.to_pandas()
    if pairs.empty:
        return [Note("No two methods of one dataset have zero-shot test results of Recall@1 yet.")]
    blocks: list[Block] = []
    for dataset, rows in pairs.groupby("dataset"):
        blocks.append(Note(headline(dataset, ranks[ranks["dataset"] == dataset])))
        notes = rows["note"].dropna().unique()  # no test, or a test that can never be significant
        if len(notes):
            blocks.append(Note(f"{dataset}: " + "; ".join(notes) + ".", warning=True))
        path = out / f"compare_{slug(dataset)}.png"
        plot_pairs(rows, dataset, path)
        blocks.append(
            Image(
                path,
                f"{dataset}: difference in normalized AUC of test {METRICS[PRIMARY_METRIC]} (method a minus method "
                f"b, on the (split, seed) cells both completed) with its 95% two-way bootstrap interval "
                f"over seeds x splits ({RESAMPLES} resamples). Orange: significant after Holm's correction "
                f"over the dataset's pairs (sign-flip test over {comparison.unit}s, alpha "
                f"{comparison.alpha:g}); grey: no test possible.",
                chart_pairs(rows, dataset),
            )
        )
    blocks.append(Table(pairs_table(pairs), "Paired differences in normalized AUC of test Recall@1"))
    return blocks


def headline(dataset: str, ranks: pd.DataFrame) -> str:
    """``glyphs: rank 1: a, b; rank 3: c`` (with the backbone where a dataset has several)."""
    parts = []
    for backbone, rows in ranks.groupby("backbone", dropna=False):
        ranked = "; ".join(
            f"rank {rank}: " + ", ".join(group["method"]) for rank, group in rows.groupby("rank", sort=True)
        )
        several = ranks["backbone"].nunique() > 1
        parts.append(f"{backbone}: {ranked}" if several else ranked)
    return (
        f"{dataset}, ranking by paired tests (rank = 1 + the number of methods significantly better; "
        "methods with the same number share a rank): " + " · ".join(parts) + "."
    )


def pair_labels(rows: pd.DataFrame) -> list[str]:
    """``a − b`` per pair, with the backbone where a dataset has several."""
    several = rows["backbone"].nunique() > 1
    return [
        f"{r.method_a} − {r.method_b}" + (f" · {r.backbone}" if several else "") for r in rows.itertuples()
    ]


def plot_pairs(rows: pd.DataFrame, dataset: str, path: Path) -> None:
    """One horizontal interval per pair, around zero (no difference)."""
    labels = pair_labels(rows)
    colours = [UNTESTED if pd.isna(s) else SIGNIFICANT if s else NOT_SIGNIFICANT for s in rows["significant"]]
    y = np.arange(len(rows))
    diff, low, high = (rows[c].to_numpy(np.float64) for c in ("diff", "ci_low", "ci_high"))
    with figure(path, (7.5, 1.3 + 0.38 * len(rows))) as (_, axes):
        ax = axes[0, 0]
        ax.axvline(0, color="#555555", lw=1)
        for i, r in enumerate(rows.itertuples()):
            if np.isnan(diff[i]):  # no AUC on the pair's cells
                ax.annotate("no AUC", (0, i), va="center", fontsize=7.5)
                continue
            error = np.nan_to_num([[diff[i] - low[i]], [high[i] - diff[i]]])
            ax.errorbar(diff[i], i, xerr=error, fmt="o", color=colours[i], elinewidth=2, capsize=3)
            p = "no test" if pd.isna(r.p_holm) else f"Holm p = {r.p_holm:.3g}"
            ax.annotate(f"  {p}", (diff[i] if np.isnan(high[i]) else high[i], i), va="center", fontsize=7.5)
        ax.margins(x=0.2)  # room for the p-values right of the intervals
        ax.set_yticks(y, labels=labels)
        ax.invert_yaxis()
        ax.set_xlabel(f"difference in normalized AUC of test {METRICS[PRIMARY_METRIC]}")
        ax.set_title(f"{dataset} · paired differences")
        ax.grid(axis="y", visible=False)


OUTCOMES = {"significant (Holm)": SIGNIFICANT, "not significant": NOT_SIGNIFICANT, "no test": UNTESTED}


def chart_pairs(rows: pd.DataFrame, dataset: str) -> Spec:
    """The figure of ``plot_pairs`` as a Plotly spec: one trace per outcome of the test (the legend hides
    one), hover giving the difference, its interval and the p-values."""
    rows = rows.assign(label=pair_labels(rows))
    outcome = rows["significant"].map({True: "significant (Holm)", False: "not significant"})
    title = f"difference in normalized AUC of test {METRICS[PRIMARY_METRIC]}"
    layout = grid(1, 1, [f"{dataset} · paired differences"], [title], [""], height=130 + 26 * len(rows))
    layout["margin"]["l"] = 230
    layout["yaxis"].update(
        {
            "type": "category",
            "categoryorder": "array",
            "categoryarray": list(rows["label"]),
            "autorange": "reversed",
        }
    )
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "x",
            "yref": "y domain",
            "x0": 0,
            "x1": 0,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#555555", "width": 1},
        }
    ]
    data = []
    for name, colour in OUTCOMES.items():
        part = rows[outcome.fillna("no test") == name]
        if part.empty:
            continue
        interval = [
            "–" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
            for lo, hi in zip(part["ci_low"], part["ci_high"], strict=True)
        ]
        p_values = [
            "no test" if pd.isna(p) else f"Holm p = {h:.3g} (p = {p:.3g})"
            for p, h in zip(part["p_value"], part["p_holm"], strict=True)
        ]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": numbers(part["diff"]),
                "y": list(part["label"]),
                "name": name,
                "marker": {"color": colour, "size": 9},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": numbers(part["ci_high"] - part["diff"]),
                    "arrayminus": numbers(part["diff"] - part["ci_low"]),
                    "color": colour,
                    "thickness": 2,
                    "width": 4,
                },
                "customdata": rows_of(interval, p_values, part["n_seeds"], part["n_splits"]),
                "hovertemplate": "a − b: %{x:.3f}, 95% interval %{customdata[0]}<br>%{customdata[1]}"
                "<br>seeds: %{customdata[2]} · splits: %{customdata[3]}<extra>%{y}</extra>",
            }
        )
    return {"data": data, "layout": layout}


def pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    def interval(low: float, high: float) -> str:
        return "–" if pd.isna(low) else f"[{low:.3f}, {high:.3f}]"

    return pd.DataFrame(
        {
            "dataset": pairs["dataset"],
            "backbone": pairs["backbone"],
            "method a": pairs["method_a"],
            "method b": pairs["method_b"],
            "AUC a": pairs["auc_a"].round(3),
            "AUC b": pairs["auc_b"].round(3),
            "a − b": pairs["diff"].round(3),
            "95% interval": [
                interval(lo, hi) for lo, hi in zip(pairs["ci_low"], pairs["ci_high"], strict=True)
            ],
            "seeds": pairs["n_seeds"],
            "splits": pairs["n_splits"],
            "p": pairs["p_value"].round(4),
            "Holm p": pairs["p_holm"].round(4),
            "significant": pairs["significant"].map({True: "yes", False: "no"}).fillna("no test"),
            "note": pairs["note"].fillna(""),
        }
    )
