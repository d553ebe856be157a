"""What every dashboard figure shares: its look, one colour and marker per method, atomic PNG output.

Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg canvas, never pyplot: no global
backend or figure registry, so building a report is safe inside a server thread or a study driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from study.results.files import atomic_path

DPI = 110
METRICS = {"recall@1": "Recall@1", "map@r": "mAP@R"}  # the metrics the dashboard plots, in order
PRIMARY_METRIC = "recall@1"  # the one the dashboard ranks, compares and decomposes by (a key of METRICS)
# Paul Tol's "muted" qualitative scheme (https://personal.sron.nl/~pault/#sec:qualitative): nine colours
# told apart with the common colour blindnesses. Ten markers, so that the 10th method repeats the first
# colour with another marker: the (colour, marker) pairs of the first 90 names are all distinct.
PALETTE = ["#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "p"]
# The Plotly symbol drawing each matplotlib marker above, so that a method looks the same in both.
SYMBOLS = {
    "o": "circle",
    "s": "square",
    "^": "triangle-up",
    "D": "diamond",
    "v": "triangle-down",
    "P": "cross",
    "X": "x",
    "*": "star",
    "h": "hexagon",
    "p": "pentagon",
}
TRAIN_COLOUR, TEST_COLOUR = "#56B4E9", "#D55E00"
STATUS_COLOURS = {"completed": "#009E73", "failed": "#D55E00", "running": "#0072B2", "interrupted": "#999999"}
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.titlelocation": "left",
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.8,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "savefig.facecolor": "white",
}


@contextmanager
def figure(path: Path, size: tuple[float, float], **subplots) -> Iterator[tuple[Figure, np.ndarray]]:
    """A styled figure with a 2-D array of axes; saved as a PNG at ``path`` (atomically) on exit."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(squeeze=False, **subplots)
        yield fig, axes
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")


def line_with_band(ax: Axes, x: pd.Series, mean: pd.Series, ci: pd.Series, style: dict, **line: Any) -> None:
    """``mean`` against ``x`` in a series ``style``, over a shaded band of ``mean`` ± ``ci``."""
    ax.plot(x, mean, **style, lw=1.7, **line)
    ax.fill_between(x, mean - ci, mean + ci, color=style["color"], alpha=0.16, lw=0)


def legend_below(fig: Figure, handles: list[Artist]) -> None:
    """The figure's legend under its panels, up to six entries a row."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))


class MethodStyle(NamedTuple):
    """How one method (or series) is drawn: in matplotlib ``colour`` and ``marker``; in Plotly ``colour``
    and ``symbol``."""

    colour: str
    marker: str

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.marker]


def method_style(names: Iterable[str]) -> dict[str, MethodStyle]:
    """Colour and marker per method name: the i-th name in sorted order gets colour ``i mod 9`` and marker
    ``i mod 10``, so the same names get the same styles whatever order a table lists them in."""
    return {
        name: MethodStyle(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
        for i, name in enumerate(sorted(set(names)))
    }


def series_styles(labels: Iterable[str]) -> dict[str, dict]:
    """``method_style`` as matplotlib keyword arguments (``color``, ``marker``) per series label."""
    return {label: {"color": s.colour, "marker": s.marker} for label, s in method_style(labels).items()}


def with_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``series``: the method, or ``method · backbone`` where a dataset has several backbones."""
    several = frame.groupby("dataset")["backbone"].transform("nunique") > 1
    method, backbone = frame["method"].astype(str), frame["backbone"].astype(str)
    return frame.assign(series=method.where(~several, method + " · " + backbone))


def with_ci(value: float, ci: float, digits: int = 3) -> str:
    """``0.612 ± 0.010``, or the value alone where the CI is undefined (one seed)."""
    if pd.isna(value):
        return "–"
    return f"{value:.{digits}f}" if pd.isna(ci) else f"{value:.{digits}f} ± {ci:.{digits}f}"


def slug(text: str) -> str:
    """A file-name-safe form of a dataset name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "_"
