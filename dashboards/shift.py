"""Shift measures beyond FID: does each one order the splits as FID does?

Split files store, with every split, its kernel MMD between train and test class means and its FID under
any further feature extractor (``tasks/splits/shift.py``). Per dataset, one panel per measure plots it
against FID, split by split; Kendall's tau-b between the two split orders sums it up (1: the same order).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.charts import Spec, axes_of, grid, numbers
from dashboards.page import Block, Image, Note, Table
from dashboards.plotting import PALETTE, figure, slug
from study.results.aggregate import shift_agreement, split_shift
from study.results.names import FID


def shift_blocks(table: pa.Table, out: Path) -> list[Block]:
    agreement = shift_agreement(table).to_pandas()
    if agreement.empty:
        return [
            Note(
                "The splits of this study store no shift measure besides FID: their split files are ooDML "
                "pickles (which have no place for one) or were written before MMD was stored with each "
                "split; rebuild them with `oodml splits build` (a .json split file) to measure it."
            )
        ]
    splits = split_shift(table)
    blocks: list = []
    for dataset, rows in agreement.groupby("dataset"):
        path = out / f"shift_{slug(dataset)}.png"
        dataset_splits = splits[splits["dataset"] == dataset]
        plot_agreement(dataset_splits, rows, dataset, path)
        blocks.append(
            Image(
                path,
                f"{dataset}: each stored shift measure against FID, one point per split (labels: split "
                "keys); mmd is the unbiased MMD² between train and test class means (RBF kernel, one "
                "median-heuristic bandwidth per split file), which can be slightly negative when the two "
                "sides are alike; fid@<extractor> is FID under another feature extractor.",
                chart_agreement(dataset_splits, rows, dataset),
            )
        )
    frame = agreement.rename(
        columns={"shift": "measure", "kendall_tau": "Kendall τ-b with FID", "n_splits": "splits"}
    )
    blocks.append(Table(frame.round(4), "Agreement of each shift measure's split order with FID's"))
    return blocks


def plot_agreement(splits: pd.DataFrame, agreement: pd.DataFrame, dataset: str, path: Path) -> None:
    measures = list(agreement["shift"])
    with figure(path, (3.8 * len(measures) + 0.4, 3.4), ncols=len(measures)) as (_, axes):
        for i, (ax, row) in enumerate(zip(axes[0], agreement.itertuples(), strict=True)):
            both = splits[[FID, row.shift, "split_key"]].dropna(subset=[FID, row.shift]).sort_values(FID)
            ax.plot(both[FID], both[row.shift], marker="o", color=PALETTE[i % len(PALETTE)], lw=1)
            for key, x, y in zip(both["split_key"], both[FID], both[row.shift], strict=True):
                ax.annotate(str(key), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
            ax.set_title(_title(dataset, row))
            ax.set_xlabel("FID")
            ax.set_ylabel(row.shift)


def _title(dataset: str, row) -> str:
    tau = "n/a" if pd.isna(row.kendall_tau) else f"{row.kendall_tau:.2f}"
    return f"{dataset} · {row.shift} · Kendall τ = {tau} ({row.n_splits} splits)"


def chart_agreement(splits: pd.DataFrame, agreement: pd.DataFrame, dataset: str) -> Spec:
    """The figure of ``plot_agreement`` as a Plotly spec: one panel per measure, points labelled by split."""
    measures = list(agreement["shift"])
    titles = [_title(dataset, row) for row in agreement.itertuples()]
    layout = grid(1, len(measures), titles, ["FID"] * len(measures), measures, legend=False)
    data = []
    for i, row in enumerate(agreement.itertuples()):
        both = splits[[FID, row.shift, "split_key"]].dropna(subset=[FID, row.shift]).sort_values(FID)
        colour = PALETTE[i % len(PALETTE)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers+text",
                "x": numbers(both[FID]),
                "y": numbers(both[row.shift]),
                "text": [str(k) for k in both["split_key"]],
                "textposition": "top right",
                "textfont": {"size": 10},
                "name": row.shift,
                "line": {"color": colour, "width": 1},
                "marker": {"color": colour, "size": 7},
                "hovertemplate": "split %{text}<br>FID %{x:.1f}<br>"
                + row.shift
                + ": %{y:.4g}<extra></extra>",
                **axes_of(0, i, len(measures)),
            }
        )
    return {"data": data, "layout": layout}
