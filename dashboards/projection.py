"""A 2-D projection of the train and test class means of a few splits: what the FID compares.

Drawn from the study's projection tables (``projections/<dataset>.parquet``,
``study/results/projections.py``), which the study driver writes from the class means saved with each
split file (``study/projection.py``: UMAP or PCA). Without a table the section says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from dashboards.charts import Spec, axes_of, grid, numbers
from dashboards.page import Block, Image, Note
from dashboards.plotting import TEST_COLOUR, TRAIN_COLOUR, figure, slug
from study.results.layout import DEFAULT_SPLIT_KEY, PROJECTIONS_DIR
from study.results.projections import ProjectionTable, projected_datasets, read_projection


def projection_blocks(study_dir: Path, datasets: list[str], out: Path) -> list[Block]:
    return [block for dataset in datasets for block in _dataset_blocks(study_dir, dataset, out)]


def study_datasets(study_dir: Path) -> list[str]:
    """Datasets with a projection table in the study."""
    return projected_datasets(study_dir)


def _dataset_blocks(study_dir: Path, dataset: str, out: Path) -> list:
    projection = read_projection(study_dir, dataset)
    if projection is None or not projection.rows.num_rows:
        return [
            Note(
                f"{dataset}: no projection table in {study_dir / PROJECTIONS_DIR} (the study driver writes "
                "it from the class-mean features saved with the split file; this one has none)."
            )
        ]
    path = out / f"projection_{slug(dataset)}.png"
    plot_projection(projection, path)
    source = f" ({projection.source})" if projection.source else ""
    return [
        Image(
            path,
            f"{dataset}: class means{source} projected to 2-D by {projection.method} (fitted on the classes "
            "of the splits shown); the easiest, default, median and hardest splits.",
            chart_projection(projection),
        )
    ]


SIDES = (("train", TRAIN_COLOUR, "o", "train classes"), ("test", TEST_COLOUR, "^", "test classes"))


def _splits(rows) -> list[tuple[float, str]]:
    """The (FID, key) of each split in the table, in FID order."""
    return sorted(
        {(f, k) for f, k in zip(rows["fid"].to_pylist(), rows["split_key"].to_pylist(), strict=True)}
    )


def _title(fid: float, key: str, sep: str) -> str:
    default = " (default)" if key == DEFAULT_SPLIT_KEY else ""
    return f"split {key}{default}{sep}FID {fid:.3g}"


def plot_projection(projection: ProjectionTable, path: Path) -> None:
    """Draw the projected class means, one panel per split in FID order."""
    rows = projection.rows
    splits = _splits(rows)
    size = (3.3 * len(splits) + 0.4, 3.7)
    with figure(path, size, ncols=len(splits), sharex=True, sharey=True) as (fig, axes):
        for ax, (fid, key) in zip(axes[0], splits, strict=True):
            split = rows.filter(pc.equal(rows["split_key"], key))
            for side, colour, marker, label in SIDES:
                points = split.filter(pc.equal(split["side"], side))
                xy = np.column_stack([points["x"].to_numpy(), points["y"].to_numpy()]).reshape(-1, 2)
                ax.scatter(
                    xy[:, 0], xy[:, 1], s=12, color=colour, marker=marker, alpha=0.75, lw=0, label=label
                )
            ax.set_title(projection.dataset + " · " + _title(fid, key, "\n"))
            ax.set_xlabel(projection.x_label)
        axes[0, 0].set_ylabel(projection.y_label)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2)


def chart_projection(projection: ProjectionTable) -> Spec:
    """The figure of ``plot_projection`` as a Plotly spec: hover names each class; the legend hides a side."""
    rows = projection.rows
    splits = _splits(rows)
    n = len(splits)
    titles = [_title(fid, key, " · ") for fid, key in splits]
    y_titles = [projection.y_label] + [""] * (n - 1)
    layout = grid(1, n, titles, [projection.x_label] * n, y_titles, height=400)
    data = []
    for i, (_, key) in enumerate(splits):
        split = rows.filter(pc.equal(rows["split_key"], key))
        for side, colour, marker, label in SIDES:
            points = split.filter(pc.equal(split["side"], side))
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "x": numbers(points["x"].to_pylist()),
                    "y": numbers(points["y"].to_pylist()),
                    "text": points["class_name"].to_pylist(),
                    "name": label,
                    "legendgroup": side,
                    "showlegend": i == 0,
                    "marker": {
                        "color": colour,
                        "symbol": "circle" if marker == "o" else "triangle-up",
                        "size": 7,
                        "opacity": 0.8,
                    },
                    "hovertemplate": "%{text}<extra>" + label + "</extra>",
                    **axes_of(0, i, n),
                }
            )
    return {"data": data, "layout": layout}
