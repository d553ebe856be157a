"""Few-shot gains: how much Recall@1 a few labelled test examples buy back on each split
(docs/protocol.md section 5)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from matplotlib.lines import Line2D

from dashboards.charts import Spec, axes_of, band_trace, grid, line_trace, rows_of
from dashboards.page import Block, Image, Note, Table
from dashboards.plotting import (
    METRICS,
    PRIMARY_METRIC,
    figure,
    legend_below,
    line_with_band,
    method_style,
    series_styles,
    slug,
    with_ci,
    with_series,
)
from study.results import fewshot_gain


def fewshot_blocks(table: pa.Table, out: Path) -> list[Block]:
    gain = with_series(fewshot_gain(table, PRIMARY_METRIC).to_pandas())
    if gain.empty:
        return [Note("No few-shot results (shots > 0) yet.")]
    blocks: list = []
    supports = support_by_dataset(table)
    for dataset, rows in gain.groupby("dataset"):
        path = out / f"fewshot_{slug(dataset)}.png"
        plot_fewshot(rows, dataset, path)
        blocks.append(
            Image(
                path,
                f"{dataset}: top, test {METRICS[PRIMARY_METRIC]} on the episode queries before (dashed) and after "
                f"(solid) adapting on the support set ({SUPPORTS.get(supports.get(dataset), 'support')}), "
                "with the 95% CI over episodes (in the PNG, the shaded gap is the gain). Bottom: the gain, mean over "
                "seeds with its 95% CI band over seeds.",
                chart_fewshot(rows, dataset),
            )
        )
    blocks.append(
        Table(gain_table(gain), f"Few-shot gain in test {METRICS[PRIMARY_METRIC]} per split and shot budget")
    )
    left_out = left_out_table(table)
    if not left_out.empty:
        blocks.append(
            Table(
                left_out,
                "Test classes too small for a budget (a class needs the support plus 2 query images): "
                "left out of that budget's episodes, and budgets no episode could score, with why",
            )
        )
    return blocks


def left_out_table(table: pa.Table) -> pd.DataFrame:
    """Per dataset, split and budget: the test classes left out of the episodes (most over the trials)
    and why a metric is missing (``nan_reason``), where either applies; empty when none does."""
    wanted = ["dataset", "split_key", "fid", "shots", "left_out_classes", "nan_reason"]
    rows = table.select([c for c in wanted if c in table.column_names]).to_pandas()
    if "nan_reason" not in rows:
        rows["nan_reason"] = None
    rows = rows[(rows["shots"] > 0) & ((rows["left_out_classes"].fillna(0) > 0) | rows["nan_reason"].notna())]
    if rows.empty:
        return pd.DataFrame()
    grouped = rows.groupby(["dataset", "split_key", "fid", "shots"], dropna=False)
    summary = grouped.agg(
        left_out=("left_out_classes", "max"),
        reason=("nan_reason", lambda r: "; ".join(sorted(set(r.dropna()))) or "–"),
    ).reset_index()
    summary = summary.sort_values(["dataset", "shots", "fid"])
    return pd.DataFrame(
        {
            "dataset": summary["dataset"],
            "split": summary["split_key"],
            "FID": summary["fid"],
            "shots": summary["shots"],
            "classes left out": summary["left_out"].astype("Int64"),
            "missing metrics": summary["reason"],
        }
    )


SUPPORTS = {
    "images": "s images of each test class; the rest of the class are the queries",
    "classes": "whole test classes holding s images per test class; the other classes are the queries",
}


def support_by_dataset(table: pa.Table) -> dict[str, str]:
    """The few-shot support of each dataset's episodes (``support`` column; absent in older files)."""
    rows = table.select(["dataset", "shots", "support"]).to_pandas()
    rows = rows[(rows["shots"] > 0) & rows["support"].notna()]
    return {dataset: "/".join(sorted(set(group["support"]))) for dataset, group in rows.groupby("dataset")}


def plot_fewshot(rows: pd.DataFrame, dataset: str, path: Path) -> None:
    """One column per shot budget; top row zero- vs few-shot values, bottom row their difference."""
    shots = sorted(rows["shots"].unique())
    styles = series_styles(rows["series"])
    label = METRICS[PRIMARY_METRIC]
    size = (4.3 * len(shots) + 0.4, 6.4)
    with figure(path, size, nrows=2, ncols=len(shots), sharex="col", sharey="row") as (fig, axes):
        for column, budget in enumerate(shots):
            top, bottom = axes[0, column], axes[1, column]
            for series, line in rows[rows["shots"] == budget].groupby("series"):
                line = line.sort_values("fid")
                colour, marker = styles[series]["color"], styles[series]["marker"]
                fid = line["fid"]
                top.errorbar(
                    fid,
                    line["zeroshot"],
                    yerr=line["zeroshot_ci95"],
                    color=colour,
                    marker=marker,
                    mfc="white",
                    ms=4,
                    ls="--",
                    lw=1.1,
                    capsize=2,
                )
                top.errorbar(
                    fid,
                    line["fewshot"],
                    yerr=line["fewshot_ci95"],
                    color=colour,
                    marker=marker,
                    ms=4,
                    lw=1.7,
                    capsize=2,
                )
                top.fill_between(fid, line["zeroshot"], line["fewshot"], color=colour, alpha=0.12, lw=0)
                line_with_band(bottom, fid, line["gain"], line["gain_ci95"], styles[series], ms=4)
            bottom.axhline(0, color="#444444", lw=0.9)
            top.set_title(f"{dataset} · {budget} shots")
            bottom.set_xlabel("FID between train and test classes")
        axes[0, 0].set_ylabel(f"test {label} (episode queries)")
        axes[1, 0].set_ylabel(f"gain in {label} (few − zero-shot)")
        handles = [
            Line2D([], [], color=s["color"], marker=s["marker"], lw=1.7, label=n) for n, s in styles.items()
        ]
        handles += [
            Line2D([], [], color="#444444", lw=1.7, label="few-shot (adapted)"),
            Line2D([], [], color="#444444", lw=1.1, ls="--", marker="o", mfc="white", label="zero-shot"),
        ]
        legend_below(fig, handles)


def chart_fewshot(rows: pd.DataFrame, dataset: str) -> Spec:
    """The figure of ``plot_fewshot`` as a Plotly spec: per budget, zero-shot (dashed, open markers) and
    few-shot (solid) values with their episode CIs, and the gain with its band over seeds; a method's
    marks share one legend group."""
    shots = sorted(rows["shots"].unique())
    styles = method_style(rows["series"])
    label = METRICS[PRIMARY_METRIC]
    ncols = len(shots)
    titles = [f"{dataset} · {budget} shots" for budget in shots] + [
        f"gain · {budget} shots" for budget in shots
    ]
    x_titles = [""] * ncols + ["FID between train and test classes"] * ncols
    y_titles = [f"test {label} (episode queries)"] + [""] * (ncols - 1)
    y_titles += [f"gain in {label} (few − zero-shot)"] + [""] * (ncols - 1)
    layout = grid(2, ncols, titles, x_titles, y_titles, share_y_by_row=True)
    data: list[dict] = []
    for column, budget in enumerate(shots):
        top, bottom = axes_of(0, column, ncols), axes_of(1, column, ncols)
        for series, points in rows[rows["shots"] == budget].groupby("series"):
            points = points.sort_values("fid")
            style = styles[series]
            where = "split %{customdata[0]} · FID %{x:.1f}<br>"
            for kind, name in (("zeroshot", "zero-shot"), ("fewshot", "few-shot (adapted)")):
                values = [with_ci(v, c) for v, c in zip(points[kind], points[f"{kind}_ci95"], strict=True)]
                data.append(
                    line_trace(
                        points["fid"],
                        points[kind],
                        style,
                        series,
                        top,
                        name=f"{series} {name}" if kind == "zeroshot" else series,
                        legend=column == 0 and kind == "fewshot",
                        dash="dash" if kind == "zeroshot" else "solid",
                        open_markers=kind == "zeroshot",
                        error=points[f"{kind}_ci95"],
                        hover=where + f"{name} {label}: " + "%{customdata[1]}<br>episodes: %{customdata[2]}",
                        customdata=rows_of(points["split_key"], values, points["episodes"]),
                    )
                )
            gains = [with_ci(v, c) for v, c in zip(points["gain"], points["gain_ci95"], strict=True)]
            data.append(
                band_trace(points["fid"], points["gain"], points["gain_ci95"], style.colour, series, bottom)
            )
            data.append(
                line_trace(
                    points["fid"],
                    points["gain"],
                    style,
                    series,
                    bottom,
                    name=f"{series} gain",
                    hover=where + f"gain in {label}: " + "%{customdata[1]}<br>seeds: %{customdata[2]}",
                    customdata=rows_of(points["split_key"], gains, points["n_seeds"]),
                )
            )
    return {"data": data, "layout": layout}


def gain_table(gain: pd.DataFrame) -> pd.DataFrame:
    gain = gain.sort_values(["dataset", "shots", "fid", "series"])
    return pd.DataFrame(
        {
            "dataset": gain["dataset"],
            "method": gain["series"],
            "split": gain["split_key"],
            "FID": gain["fid"],
            "shots": gain["shots"],
            "zero-shot ± episode CI": [
                with_ci(v, c) for v, c in zip(gain["zeroshot"], gain["zeroshot_ci95"], strict=True)
            ],
            "few-shot ± episode CI": [
                with_ci(v, c) for v, c in zip(gain["fewshot"], gain["fewshot_ci95"], strict=True)
            ],
            "gain ± seed CI": [with_ci(v, c) for v, c in zip(gain["gain"], gain["gain_ci95"], strict=True)],
            "episodes": gain["episodes"].astype("Int64"),
            "seeds": gain["n_seeds"].astype("Int64"),
        }
    )
