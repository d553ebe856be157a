"""AUC ranking: normalized AUC per method with its CI, and the default-split ranking beside it.

Does the usual single-split benchmark order methods the way the whole degradation curve does? The
slope chart joins each method's rank on the default split to its AUC rank; Spearman's rho sums it up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dashboards.charts import PANEL_HEIGHT, Spec, axes_of, axis_key, grid, numbers, rows_of
from dashboards.page import Block, Image, Note, Table
from dashboards.plotting import (
    METRICS,
    PRIMARY_METRIC,
    MethodStyle,
    figure,
    method_style,
    series_styles,
    slug,
    with_ci,
    with_series,
)
from study.results import DEFAULT_SPLIT_KEY, auc_summary, ranking


def ranking_blocks(table: pa.Table, out: Path) -> list[Block]:
    aucs = {m: with_series(auc_summary(table, m).to_pandas()) for m in METRICS}
    ranks = with_series(ranking(table, PRIMARY_METRIC).to_pandas())
    if ranks.empty:
        return [Note("No zero-shot test results of Recall@1 yet.")]
    blocks: list = []
    for dataset, rows in ranks.groupby("dataset"):
        auc = {m: a[a["dataset"] == dataset] for m, a in aucs.items() if (a["dataset"] == dataset).any()}
        path = out / f"ranking_{slug(dataset)}.png"
        plot_ranking(auc, rows, dataset, path)
        blocks.append(Note(headline(dataset, rows)))
        blocks.append(
            Image(
                path,
                f"{dataset}: normalized AUC (area under metric vs FID over the FID range, docs/protocol.md "
                "section 8) with the 95% CI over seeds; hatched bars: seeds cover different splits. Right: "
                f"rank on the default split vs rank by AUC of {METRICS[PRIMARY_METRIC]}.",
                chart_ranking(auc, rows, dataset),
            )
        )
    blocks.append(Table(summary_table(aucs, ranks), "Normalized AUC and ranks per dataset and method"))
    return blocks


def headline(dataset: str, rows: pd.DataFrame) -> str:
    label = METRICS[PRIMARY_METRIC]
    best = rows.loc[rows["auc"].idxmax()] if rows["auc"].notna().any() else None
    text = f"{dataset}: "
    text += (
        f"best normalized AUC of {label}: {best['series']} ({best['auc']:.3f})" if best is not None else ""
    )
    if rows["default_split"].notna().any():
        top = rows.loc[rows["default_split"].idxmax()]
        text += f"; best on the default split: {top['series']} ({top['default_split']:.3f})"
    else:
        text += f"; no results on the default split (key {DEFAULT_SPLIT_KEY}) yet"
    rho = rows["spearman"].iloc[0]
    text += "; Spearman ρ between the two rankings: " + ("n/a" if pd.isna(rho) else f"{rho:.2f}") + "."
    return text


def plot_ranking(auc: dict[str, pd.DataFrame], ranks: pd.DataFrame, dataset: str, path: Path) -> None:
    """AUC bars per metric (methods in order of ``PRIMARY_METRIC`` AUC), then the rank slope chart."""
    order = list(ranks.sort_values(["auc_rank", "series"])["series"])
    styles = series_styles(ranks["series"])
    height = 1.6 + 0.42 * len(order)
    with figure(path, (4.3 * len(auc) + 3.8, height), ncols=len(auc) + 1) as (_, axes):
        for ax, (metric, rows) in zip(axes[0], auc.items(), strict=False):
            rows = rows.set_index("series").reindex(order)
            y = np.arange(len(order))
            values, cis = rows["auc"].to_numpy(float), rows["ci95"].to_numpy(float)
            bars = ax.barh(
                y, values, xerr=cis, color=[styles[s]["color"] for s in order], height=0.6, capsize=3
            )
            for bar, complete in zip(bars, rows["complete"], strict=True):
                if pd.notna(complete) and not complete:
                    bar.set_hatch("///")
            for i, (value, ci) in enumerate(zip(values, cis, strict=True)):
                if not np.isnan(value):
                    ax.text(
                        value + (0 if np.isnan(ci) else ci),
                        i,
                        "  " + with_ci(value, ci),
                        va="center",
                        fontsize=7.5,
                    )
            ax.set_yticks(y, labels=order)
            ax.invert_yaxis()
            ax.set_xlim(0, np.nanmax(values + np.nan_to_num(cis)) * 1.45 if np.isfinite(values).any() else 1)
            ax.set_xlabel(f"normalized AUC of test {METRICS[metric]}")
            ax.set_title(f"{dataset} · AUC {METRICS[metric]}")
            ax.grid(axis="y", visible=False)
        _slope(axes[0, -1], ranks, styles)


def _slope(ax, ranks: pd.DataFrame, styles: dict[str, dict]) -> None:
    both = ranks.dropna(subset=["default_rank", "auc_rank"])
    for row in both.itertuples():
        style = styles[row.series]
        ax.plot([0, 1], [row.default_rank, row.auc_rank], color=style["color"], marker=style["marker"], lw=2)
        ax.text(-0.06, row.default_rank, row.series, ha="right", va="center", fontsize=7.5)
        ax.text(1.06, row.auc_rank, row.series, ha="left", va="center", fontsize=7.5)
    n = max(len(ranks), 1)
    ax.set_xlim(-0.9, 1.9)
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_xticks([0, 1], labels=["default split", "AUC"])
    ax.set_yticks(range(1, n + 1))
    ax.set_ylabel("rank (1 = best)")
    ax.set_title(_rho_title(ranks))
    ax.grid(axis="x", visible=False)


def chart_ranking(auc: dict[str, pd.DataFrame], ranks: pd.DataFrame, dataset: str) -> Spec:
    """The figure of ``plot_ranking`` as a Plotly spec: one bar per method and metric with its CI (hatched
    where the seeds cover different splits), and the rank slope chart; a method's marks share one legend
    group."""
    order = list(ranks.sort_values(["auc_rank", "series"])["series"])
    styles = method_style(ranks["series"])
    ncols = len(auc) + 1
    titles = [f"{dataset} · AUC {METRICS[m]}" for m in auc] + [_rho_title(ranks)]
    x_titles = [f"normalized AUC of test {METRICS[m]}" for m in auc] + [""]
    y_titles = [""] * len(auc) + ["rank (1 = best)"]
    layout = grid(1, ncols, titles, x_titles, y_titles, height=110 + max(PANEL_HEIGHT, 34 * len(order)))
    layout["margin"]["l"] = 150
    data: list[dict] = []
    for col, (metric, rows) in enumerate(auc.items()):
        panel = axes_of(0, col, ncols)
        rows = rows.set_index("series")
        for series in order:
            if series in rows.index:
                data.append(_bar(rows.loc[series], series, styles[series], panel, METRICS[metric], col == 0))
        layout[axis_key(panel["yaxis"])].update(
            {"type": "category", "categoryorder": "array", "categoryarray": order, "autorange": "reversed"}
        )
        if col:
            layout[axis_key(panel["yaxis"])]["showticklabels"] = False
    panel = axes_of(0, ncols - 1, ncols)
    for row in ranks.dropna(subset=["default_rank", "auc_rank"]).itertuples():
        data.append(_slope_trace(row, styles[row.series], panel))
    layout[axis_key(panel["xaxis"])].update({"type": "category", "range": [-1.6, 2.6]})
    layout[axis_key(panel["yaxis"])].update({"autorange": "reversed", "dtick": 1})
    return {"data": data, "layout": layout}


def _bar(row: pd.Series, series: str, style: MethodStyle, panel: dict, label: str, legend: bool) -> dict:
    incomplete = pd.notna(row["complete"]) and not row["complete"]
    cover = "no (hatched)" if incomplete else "yes"
    return {
        "type": "bar",
        "orientation": "h",
        "x": numbers([row["auc"]]),
        "y": [series],
        "name": series,
        "legendgroup": series,
        "showlegend": legend,
        "marker": {"color": style.colour, "pattern": {"shape": "/" if incomplete else ""}},
        "error_x": {"type": "data", "array": numbers([row["ci95"]]), "color": "#333333", "width": 4},
        "customdata": rows_of(
            [with_ci(row["auc"], row["ci95"])], [row["n_seeds"]], [row["n_splits"]], [cover]
        ),
        "hovertemplate": f"normalized AUC of {label}: "
        + "%{customdata[0]}<br>seeds: %{customdata[1]} · splits: %{customdata[2]}"
        "<br>seeds cover all splits: %{customdata[3]}<extra>%{fullData.name}</extra>",
        **panel,
    }


def _slope_trace(row, style: MethodStyle, panel: dict) -> dict:
    label = METRICS[PRIMARY_METRIC]
    return {
        "type": "scatter",
        "mode": "lines+markers+text",
        "x": ["default split", "AUC"],
        "y": [row.default_rank, row.auc_rank],
        "text": [row.series, row.series],
        "textposition": ["middle left", "middle right"],
        "textfont": {"size": 10},
        "name": row.series,
        "legendgroup": row.series,
        "showlegend": False,
        "line": {"color": style.colour, "width": 2},
        "marker": {"color": style.colour, "symbol": style.symbol, "size": 9},
        "customdata": [
            f"{label} on the default split: {_value(row.default_split)}",
            f"normalized AUC of {label}: {_value(row.auc)}",
        ],
        "hovertemplate": "rank %{y} by %{x}<br>%{customdata}<extra>%{fullData.name}</extra>",
        **panel,
    }


def _value(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


def _rho_title(ranks: pd.DataFrame) -> str:
    rho = ranks["spearman"].iloc[0]
    return "Rank · Spearman ρ = " + ("n/a" if pd.isna(rho) else f"{rho:.2f}")


def summary_table(aucs: dict[str, pd.DataFrame], ranks: pd.DataFrame) -> pd.DataFrame:
    keys = ["dataset", "series"]
    primary = aucs[PRIMARY_METRIC][keys + ["ci95", "n_seeds", "n_splits", "complete"]]
    frame = ranks.merge(primary, on=keys, how="left")
    label = METRICS[PRIMARY_METRIC]
    out = pd.DataFrame(
        {
            "dataset": frame["dataset"],
            "method": frame["series"],
            f"AUC {label}": [with_ci(a, c) for a, c in zip(frame["auc"], frame["ci95"], strict=True)],
            "AUC rank": frame["auc_rank"],
            f"{label} default split": frame["default_split"].round(3),
            "default rank": frame["default_rank"],
        }
    )
    for metric, auc in aucs.items():
        if metric != PRIMARY_METRIC and not auc.empty:
            other = frame[keys].merge(auc[keys + ["auc", "ci95"]], on=keys, how="left")
            out[f"AUC {METRICS[metric]}"] = [
                with_ci(a, c) for a, c in zip(other["auc"], other["ci95"], strict=True)
            ]
    out["seeds"] = frame["n_seeds"].astype("Int64")
    out["splits"] = frame["n_splits"].astype("Int64")
    out["seeds cover all splits"] = frame["complete"].map({True: "yes", False: "no"})
    out["Spearman ρ"] = frame["spearman"]
    return out
