"""The splits a study measured: FID per split and the class counts on each side (from the results)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from matplotlib.patches import Patch

from dashboards.charts import Spec, grid, numbers, rows_of
from dashboards.page import Block, Image, Note, Table
from dashboards.plotting import figure, slug
from study.results import DEFAULT_SPLIT_KEY

PROGRESSION_COLOURS = {"harder": "#D55E00", "easier": "#009E73", "removal": "#CC79A7"}
OTHER_COLOUR = "#0072B2"


def split_rows(table: pa.Table) -> pd.DataFrame:
    """One row per dataset and split with a completed evaluation trial of a method, in FID order; oracle
    trials (trained on the test classes, docs/oracle.md) are counted apart (``oracle_trials``) and give no
    class counts."""
    columns = ["dataset", "split_id", "split_key", "split_progression", "fid", "num_train_classes"]
    columns += ["num_test_classes", "trial_id", "trial_role", "stage", "status"]
    frame = table.select(columns).to_pandas()
    frame = frame[(frame["stage"] == "eval") & (frame["status"] == "completed") & frame["fid"].notna()]
    is_oracle = frame["trial_role"] == "oracle"
    oracles = frame[is_oracle].groupby(["dataset", "split_id"])["trial_id"].nunique().rename("oracle_trials")
    frame = frame[~is_oracle]
    grouped = frame.groupby(["dataset", "split_id"], as_index=False).agg(
        key=("split_key", "first"),
        progression=("split_progression", "first"),
        fid=("fid", "first"),
        train=("num_train_classes", "first"),
        test=("num_test_classes", "first"),
        trials=("trial_id", "nunique"),
    )
    if not oracles.empty:
        grouped = grouped.merge(oracles.reset_index(), on=["dataset", "split_id"], how="left")
    return grouped.sort_values(["dataset", "fid"]).reset_index(drop=True)


def splits_blocks(table: pa.Table, out: Path) -> list[Block]:
    splits = split_rows(table)
    if splits.empty:
        return [Note("No completed evaluation trials with a split FID yet.")]
    blocks: list = []
    for dataset, rows in splits.groupby("dataset"):
        path = out / f"splits_{slug(dataset)}.png"
        plot_splits(rows, dataset, path)
        blocks.append(
            Image(
                path,
                f"{dataset}: FID between train and test classes per split, coloured by the progression it "
                "comes from; labels: train / test classes.",
                chart_splits(rows, dataset),
            )
        )
    table_frame = splits.rename(
        columns={
            "split_id": "split id",
            "fid": "FID",
            "train": "train classes",
            "test": "test classes",
            "trials": "eval trials",
            "oracle_trials": "oracle trials",
        }
    )
    for column in ("split id", "train classes", "test classes", "oracle trials"):
        if column in table_frame:
            table_frame[column] = table_frame[column].astype("Int64")
    caption = "Splits with results (FID order)"
    if "oracle trials" in table_frame:
        caption += "; eval trials: the methods', oracle trials (trained on the test classes) apart"
    blocks.append(Table(table_frame, caption))
    return blocks


def plot_splits(rows: pd.DataFrame, dataset: str, path: Path) -> None:
    x = range(len(rows))
    colours = [PROGRESSION_COLOURS.get(p, OTHER_COLOUR) for p in rows["progression"]]
    with figure(path, (1.6 + 0.75 * len(rows), 3.4)) as (fig, axes):
        ax = axes[0, 0]
        bars = ax.bar(x, rows["fid"], color=colours, width=0.65)
        for bar, train, test in zip(bars, rows["train"], rows["test"], strict=True):
            ax.annotate(
                f"{_count(train)}/{_count(test)}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
        labels = [f"{key}\n(default)" if key == DEFAULT_SPLIT_KEY else str(key) for key in rows["key"]]
        ax.set_xticks(list(x), labels=labels)
        ax.set_xlabel("split key")
        ax.set_ylabel("FID")
        ax.set_ylim(0, rows["fid"].max() * 1.15)
        ax.set_title(f"{dataset} · FID per split")
        ax.grid(axis="x", visible=False)
        present = dict.fromkeys(p if p in PROGRESSION_COLOURS else "other" for p in rows["progression"])
        handles = [Patch(color=PROGRESSION_COLOURS.get(p, OTHER_COLOUR), label=p) for p in present]
        fig.legend(handles=handles, loc="outside right upper", title="progression")


def chart_splits(rows: pd.DataFrame, dataset: str) -> Spec:
    """The figure of ``plot_splits`` as a Plotly spec: one bar trace per progression (the legend hides
    one), splits in FID order, hover giving the split's FID, class counts and trials."""
    labels = [f"{key} (default)" if key == DEFAULT_SPLIT_KEY else str(key) for key in rows["key"]]
    rows = rows.assign(
        label=labels, group=[p if p in PROGRESSION_COLOURS else "other" for p in rows["progression"]]
    )
    layout = grid(1, 1, [f"{dataset} · FID per split"], ["split key"], ["FID"], height=380)
    layout["xaxis"].update({"type": "category", "categoryorder": "array", "categoryarray": labels})
    data = []
    for group, part in rows.groupby("group", sort=False):
        counts = [f"{_count(a)}/{_count(b)}" for a, b in zip(part["train"], part["test"], strict=True)]
        data.append(
            {
                "type": "bar",
                "x": list(part["label"]),
                "y": numbers(part["fid"]),
                "name": group,
                "marker": {"color": PROGRESSION_COLOURS.get(group, OTHER_COLOUR)},
                "text": counts,
                "textposition": "outside",
                "customdata": rows_of(counts, part["trials"]),
                "hovertemplate": "split %{x}<br>FID %{y:.1f}<br>train / test classes: %{customdata[0]}"
                "<br>eval trials: %{customdata[1]}<extra>%{fullData.name}</extra>",
            }
        )
    layout["legend"]["title"] = {"text": "progression"}
    return {"data": data, "layout": layout}


def _count(n: object) -> str:
    return "?" if pd.isna(n) else str(int(n))
