"""Degradation curves: test Recall@1 and mAP@R against split FID, one line per method (DESIGN.md 7).

Where a study ran the oracle (docs/oracle.md), each method's oracle is drawn under it: a dashed line of
the method's colour, its metric on the held-out half of the test classes, i.e. how hard the test classes
are without shift."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.page import Block, Image, Note
from dashboards.plotting import (
    METRICS,
    figure,
    legend_below,
    line_with_band,
    series_styles,
    slug,
    with_series,
)
from study.results import DEFAULT_SPLIT_KEY, degradation_curves
from study.results.oracle import ORACLE, heldout_curves

ORACLE_NOTE = (
    " Dashed: each method's oracle (trained on half of each test class's images), on the other half: how "
    "hard the test classes are without shift (docs/oracle.md)."
)


def degradation_blocks(table: pa.Table, out: Path) -> list[Block]:
    curves = pd.concat([with_series(degradation_curves(table, m).to_pandas()) for m in METRICS])
    if curves.empty:
        return [Note("No zero-shot test results of Recall@1 or mAP@R yet.")]
    heldout = pd.concat([with_series(heldout_curves(table, m).to_pandas()) for m in METRICS])
    oracles = heldout[heldout["trial_role"] == ORACLE]
    blocks = []
    for dataset, rows in curves.groupby("dataset"):
        path = out / f"degradation_{slug(dataset)}.png"
        oracle = oracles[oracles["dataset"] == dataset]
        plot_degradation(rows, dataset, path, oracle)
        seeds = rows["n_seeds"].max()
        blocks.append(
            Image(
                path,
                f"{dataset}: zero-shot test metrics against the FID between train and test classes; "
                f"mean over seeds (up to {seeds}) with the 95% CI band; dotted line: default split "
                f"(key {DEFAULT_SPLIT_KEY}); top axis: test classes per split (fewer classes make "
                "retrieval easier, against the trend)." + (ORACLE_NOTE if not oracle.empty else ""),
            )
        )
    return blocks


def plot_degradation(
    rows: pd.DataFrame, dataset: str, path: Path, oracle: pd.DataFrame | None = None
) -> None:
    """One panel per metric (``rows``: ``degradation_curves`` of one dataset, several metrics; ``oracle``:
    the oracle rows of ``heldout_curves`` for it, drawn dashed in their method's colour)."""
    metrics = [m for m in METRICS if (rows["metric"] == m).any()]
    oracle = oracle if oracle is not None else rows.iloc[:0]
    styles = series_styles(rows["series"])
    with figure(path, (5.0 * len(metrics) + 0.4, 4.0), ncols=len(metrics)) as (fig, axes):
        for ax, metric in zip(axes[0], metrics, strict=True):
            part = rows[rows["metric"] == metric]
            for series, line in oracle[oracle["metric"] == metric].groupby("series"):
                style = styles.get(series, {"color": "#777777", "marker": "o"})
                line = line.sort_values("fid")
                line_with_band(
                    ax,
                    line["fid"],
                    line["mean"],
                    line["ci95"],
                    style,
                    ms=3.5,
                    ls="--",
                    alpha=0.7,
                    label=f"{series} oracle (held-out half)",
                )
            for series, line in part.groupby("series"):
                line = line.sort_values("fid")
                line_with_band(
                    ax, line["fid"], line["mean"], line["ci95"], styles[series], ms=4.5, label=series
                )
            _mark_splits(ax, part.drop_duplicates("split_id").sort_values("fid"))
            ax.set_title(f"{dataset} · test {METRICS[metric]} (zero-shot)")
            ax.set_xlabel("FID between train and test classes")
            ax.set_ylabel(f"test {METRICS[metric]}")
        legend_below(fig, axes[0, 0].get_legend_handles_labels()[0])


def _mark_splits(ax, splits: pd.DataFrame) -> None:
    """Default split as a dotted line; the test-class count of each split on a top axis."""
    default = splits[splits["split_key"] == DEFAULT_SPLIT_KEY]
    for fid in default["fid"]:
        ax.axvline(fid, color="#444444", ls=":", lw=1.2, zorder=0)
        ax.annotate(
            "default split",
            (fid, 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7.5,
            color="#444444",
        )
    top = ax.secondary_xaxis("top")
    top.set_xticks(
        splits["fid"].to_list(),
        labels=["?" if pd.isna(n) else str(int(n)) for n in splits["num_test_classes"]],
        fontsize=7,
    )
    top.tick_params(length=2, pad=1)
    top.set_xlabel("test classes", fontsize=7.5, color="#555555")
