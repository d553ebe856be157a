"""Degradation curves: test Recall@1 and mAP@R against split FID, one line per method (docs/protocol.md
section 8).

Where a study ran the oracle (docs/oracle.md), a second row of panels compares, on the held-out half of
the test classes, each method that has an oracle (solid) with its oracle (dashed, the method's colour):
the oracle's line is how hard the test classes are without shift, and the gap between the two is the gap
of ``study.results.oracle.shift_decomposition`` (both on the same images; the top row's test curves are on
all test images, so they are not compared with the oracle)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.charts import Spec, axes_of, band_trace, grid, line_trace, rows_of
from dashboards.page import Block, Image, Note
from dashboards.plotting import (
    METRICS,
    MethodStyle,
    figure,
    legend_below,
    line_with_band,
    method_style,
    series_styles,
    slug,
    with_ci,
    with_series,
)
from study.results import DEFAULT_SPLIT_KEY, degradation_curves
from study.results.oracle import heldout_curves
from study.results.schema import ORACLE

ORACLE_NOTE = (
    " Bottom row: on the held-out half of the test classes (the images the oracle did not train on), each "
    "method that has an oracle (solid) and its oracle (dashed; trained on the other half of each test "
    "class's images): the oracle's line is how hard the test classes are without shift, and the gap between "
    "the two is the gap of the shift-vs-difficulty table (docs/oracle.md)."
)


def degradation_blocks(table: pa.Table, out: Path) -> list[Block]:
    curves = pd.concat([with_series(degradation_curves(table, m).to_pandas()) for m in METRICS])
    if curves.empty:
        return [Note("No zero-shot test results of Recall@1 or mAP@R yet.")]
    heldout = pd.concat([with_series(heldout_curves(table, m).to_pandas()) for m in METRICS])
    blocks = []
    for dataset, rows in curves.groupby("dataset"):
        path = out / f"degradation_{slug(dataset)}.png"
        pairs = oracle_pairs(heldout[heldout["dataset"] == dataset])
        plot_degradation(rows, dataset, path, pairs)
        chart = chart_degradation(rows, dataset, pairs)
        seeds = rows["n_seeds"].max()
        blocks.append(
            Image(
                path,
                f"{dataset}: zero-shot test metrics against the FID between train and test classes; "
                f"mean over seeds (up to {seeds}) with the 95% CI band; dotted line: default split "
                f"(key {DEFAULT_SPLIT_KEY}); test classes per split on the PNG's top axis and in the chart's "
                "hover (fewer classes make retrieval easier, against the trend)."
                + (ORACLE_NOTE if not pairs.empty else ""),
                chart,
            )
        )
    return blocks


def oracle_pairs(heldout: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``heldout_curves`` (with ``series``) of the methods that have an oracle, both roles: a
    method's held-out line is drawn only beside its oracle's, and per metric."""
    oracles = heldout.loc[heldout["trial_role"] == ORACLE, ["series", "metric"]].drop_duplicates()
    return heldout.merge(oracles, on=["series", "metric"])


def plot_degradation(rows: pd.DataFrame, dataset: str, path: Path, pairs: pd.DataFrame | None = None) -> None:
    """One panel per metric (``rows``: ``degradation_curves`` of one dataset, several metrics); where
    ``pairs`` (``oracle_pairs`` of it) has rows, a second row of panels draws them: the method solid, its
    oracle dashed, in the method's colour."""
    metrics = [m for m in METRICS if (rows["metric"] == m).any()]
    pairs = pairs if pairs is not None else pd.DataFrame()
    nrows = 2 if not pairs.empty else 1
    styles = series_styles(rows["series"])
    size = (5.0 * len(metrics) + 0.4, 4.0 + 3.4 * (nrows - 1))
    with figure(path, size, nrows=nrows, ncols=len(metrics)) as (fig, axes):
        for col, metric in enumerate(metrics):
            ax = axes[0, col]
            part = rows[rows["metric"] == metric]
            for series, line in part.groupby("series"):
                line = line.sort_values("fid")
                line_with_band(
                    ax, line["fid"], line["mean"], line["ci95"], styles[series], ms=4.5, label=series
                )
            _mark_splits(ax, part.drop_duplicates("split_id").sort_values("fid"))
            ax.set_title(f"{dataset} · test {METRICS[metric]} (zero-shot)")
            ax.set_xlabel("FID between train and test classes")
            ax.set_ylabel(f"test {METRICS[metric]}")
            if nrows == 2:
                _plot_pairs(axes[1, col], pairs[pairs["metric"] == metric], styles, metric)
        handles = axes[0, 0].get_legend_handles_labels()[0]
        if nrows == 2:
            handles += axes[1, 0].get_legend_handles_labels()[0]
        legend_below(fig, handles)


def _plot_pairs(ax, pairs: pd.DataFrame, styles: dict[str, dict], metric: str) -> None:
    """Each method (solid, unlabelled: the top row names it) and its oracle (dashed) on the held-out half."""
    for (series, role), line in pairs.groupby(["series", "trial_role"]):
        style = styles.get(series, {"color": "#777777", "marker": "o"})
        line = line.sort_values("fid")
        oracle = role == ORACLE
        line_with_band(
            ax,
            line["fid"],
            line["mean"],
            line["ci95"],
            style,
            ms=3.5 if oracle else 4.5,
            ls="--" if oracle else "-",
            label=f"{series} oracle (held-out half)" if oracle else "_nolegend_",
        )
    ax.set_title(f"held-out half · {METRICS[metric]}: method vs its oracle")
    ax.set_xlabel("FID between train and test classes")
    ax.set_ylabel(f"held-out {METRICS[metric]}")


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


FID_TITLE = "FID between train and test classes"


def chart_degradation(rows: pd.DataFrame, dataset: str, pairs: pd.DataFrame) -> Spec:
    """The figure of ``plot_degradation`` as a Plotly spec, in the same styles: a method's line, band and
    oracle line share one legend group; hover gives split, FID, mean ± CI, seeds and test classes."""
    styles = method_style(rows["series"])
    metrics = [m for m in METRICS if (rows["metric"] == m).any()]
    titles = [f"{dataset} · test {METRICS[m]} (zero-shot)" for m in metrics]
    y_titles = [f"test {METRICS[m]}" for m in metrics]
    if not pairs.empty:
        titles += [f"held-out half · {METRICS[m]}: method vs its oracle" for m in metrics]
        y_titles += [f"held-out {METRICS[m]}" for m in metrics]
    nrows, ncols = (2 if not pairs.empty else 1), len(metrics)
    layout = grid(nrows, ncols, titles, [FID_TITLE] * len(titles), y_titles)
    layout["shapes"] = []
    data: list[dict] = []
    for col, metric in enumerate(metrics):
        panel = axes_of(0, col, ncols)
        part = rows[rows["metric"] == metric]
        for series, points in part.groupby("series"):
            data += _series_traces(points, series, styles[series], panel, METRICS[metric], legend=col == 0)
        for fid in part.loc[part["split_key"] == DEFAULT_SPLIT_KEY, "fid"].unique():
            layout["shapes"].append(_default_split_line(fid, panel))
        if nrows == 2:
            lower = axes_of(1, col, ncols)
            for (series, role), points in pairs[pairs["metric"] == metric].groupby(["series", "trial_role"]):
                style = styles.get(series, MethodStyle("#777777", "o"))
                oracle = role == ORACLE
                name = f"{series} oracle (held-out half)" if oracle else f"{series} (held-out half)"
                data += _series_traces(
                    points, series, style, lower, f"held-out {METRICS[metric]}", name=name, oracle=oracle
                )
    return {"data": data, "layout": layout}


def _series_traces(
    points: pd.DataFrame,
    series: str,
    style: MethodStyle,
    panel: dict[str, str],
    label: str,
    *,
    legend: bool = False,
    name: str | None = None,
    oracle: bool = False,
) -> list[dict]:
    """A series' CI band and its line of means, in legend group ``series``."""
    points = points.sort_values("fid")
    cis = [with_ci(m, c) for m, c in zip(points["mean"], points["ci95"], strict=True)]
    classes = ["?" if pd.isna(n) else int(n) for n in points["num_test_classes"]]
    hover = (
        "split %{customdata[0]} · FID %{x:.1f}<br>" + label + ": %{customdata[1]}"
        "<br>seeds: %{customdata[2]} · test classes: %{customdata[3]}"
    )
    return [
        band_trace(points["fid"], points["mean"], points["ci95"], style.colour, series, panel),
        line_trace(
            points["fid"],
            points["mean"],
            style,
            series,
            panel,
            name=name,
            legend=legend,
            dash="dash" if oracle else "solid",
            hover=hover,
            customdata=rows_of(points["split_key"], cis, points["n_seeds"], classes),
        ),
    ]


def _default_split_line(fid: float, panel: dict[str, str]) -> dict:
    return {
        "type": "line",
        "xref": panel["xaxis"],
        "yref": f"{panel['yaxis']} domain",
        "x0": float(fid),
        "x1": float(fid),
        "y0": 0,
        "y1": 1,
        "line": {"color": "#444444", "width": 1.2, "dash": "dot"},
        "label": {
            "text": "default split",
            "textposition": "start",
            "textangle": 0,
            "xanchor": "left",
            "font": {"size": 10, "color": "#444444"},
        },
    }
