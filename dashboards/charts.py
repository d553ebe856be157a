"""What every interactive chart shares: Plotly figure specs (plain ``{"data", "layout"}`` dicts, as
Plotly.js takes them), a grid of panels, hover text with intervals, and the Plotly.js bundle beside the page.

Each figure of the page is drawn twice: as a PNG by matplotlib (for MLflow and printing) and as a chart
drawn in the browser by Plotly.js (hover values, a legend that hides and shows a method, zoom). The
script is the one shipped in the installed ``plotly`` package, written once next to the page and loaded
by a relative ``<script src>``: the page fetches nothing from a network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from dashboards.plotting import MethodStyle
from study.results.files import atomic_path
from study.results.storage import StudyPath

Spec = dict[str, Any]  # {"data": [trace, ...], "layout": {...}}: Plotly.newPlot's arguments
# Plotly.js's config for every chart of the page: no logo linking to plotly.com, and no "Share chart"
# button (Plotly.js 4 shows one by default: it uploads the chart to Plotly Cloud).
CONFIG = {"displaylogo": False, "showSendToCloud": False, "responsive": True}
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif'
PANEL_HEIGHT = 330  # pixels per row of panels
LEGEND_WIDTH = 190  # pixels right of the panels


def plotly_js_name() -> str:
    """The file name of the installed Plotly.js bundle beside the page (versioned: a new plotly package
    writes a new file, and browsers never run a cached older one)."""
    from plotly.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


def write_plotly_js(out: StudyPath) -> str:
    """Write the installed Plotly.js bundle into the dashboard folder ``out`` unless it is there already;
    bundles of other versions are removed. Returns its file name."""
    from plotly.offline import get_plotlyjs

    name = plotly_js_name()
    for old in out.glob("plotly-*.min.js"):
        if old.name != name:
            old.unlink(missing_ok=True)
    if not (out / name).is_file():
        with atomic_path(out / name) as tmp:
            tmp.write_text(get_plotlyjs(), encoding="utf-8")
    return name


def spec_json(spec: Spec) -> str:
    """The spec as JSON to embed in a ``<script type="application/json">`` (``</`` escaped, no NaN)."""
    return json.dumps(spec, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def numbers(values: Iterable[Any]) -> list[float | None]:
    """Plain floats for JSON; missing values (NaN, None, pd.NA) become null, which Plotly leaves a gap for."""
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        out.append(number if np.isfinite(number) else None)
    return out


def texts(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


def rgba(colour: str, alpha: float) -> str:
    """``#rrggbb`` with an opacity, as CSS ``rgba()``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def axes_of(row: int, col: int, ncols: int) -> dict[str, str]:
    """The ``xaxis``/``yaxis`` trace references of panel (``row``, ``col``) of a ``grid``."""
    n = row * ncols + col + 1
    return {"xaxis": "x" if n == 1 else f"x{n}", "yaxis": "y" if n == 1 else f"y{n}"}


def axis_key(ref: str) -> str:
    """The layout key of a trace's axis reference: ``x`` -> ``xaxis``, ``y3`` -> ``yaxis3``."""
    return ref[0] + "axis" + ref[1:]


def grid(
    nrows: int,
    ncols: int,
    titles: list[str],
    x_titles: list[str],
    y_titles: list[str],
    *,
    height: int | None = None,
    legend: bool = True,
    share_y_by_row: bool = False,
) -> dict[str, Any]:
    """A layout of ``nrows`` x ``ncols`` panels (row-major ``titles`` and axis titles: one per panel), with
    the legend right of the panels: a click on an entry hides its whole legend group."""
    gap_x, gap_y = 0.07, 0.22 / max(nrows, 1)
    width = (1 - gap_x * (ncols - 1)) / ncols
    tall = (1 - gap_y * (nrows - 1)) / nrows
    layout: dict[str, Any] = {
        "height": height or 90 + PANEL_HEIGHT * nrows,
        "margin": {"l": 64, "r": 16, "t": 46, "b": 56},
        "font": {"family": FONT, "size": 12, "color": "#1d2330"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "showlegend": legend,
        "legend": {"font": {"size": 11}, "groupclick": "togglegroup", "tracegroupgap": 2},
        "annotations": [],
    }
    for row in range(nrows):
        for col in range(ncols):
            n = row * ncols + col + 1
            x0 = col * (width + gap_x)
            y1 = 1 - row * (tall + gap_y)
            refs = axes_of(row, col, ncols)
            x_name, y_name = refs["xaxis"], refs["yaxis"]
            axis = {"showline": True, "linecolor": "#555555", "gridcolor": "#e5e5e5", "zeroline": False}
            layout[axis_key(x_name)] = {
                **axis,
                "domain": [round(x0, 6), round(min(x0 + width, 1), 6)],
                "anchor": y_name,
                "title": {"text": x_titles[n - 1], "font": {"size": 12}},
            }
            layout[axis_key(y_name)] = {
                **axis,
                "domain": [round(max(y1 - tall, 0), 6), round(y1, 6)],
                "anchor": x_name,
                "title": {"text": y_titles[n - 1], "font": {"size": 12}},
                **({"matches": "y" if row == 0 else f"y{row * ncols + 1}"} if share_y_by_row and col else {}),
            }
            layout["annotations"].append(
                {
                    "text": f"<b>{titles[n - 1]}</b>",
                    "xref": "paper",
                    "yref": "paper",
                    "x": x0,
                    "y": y1,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "yshift": 6,
                    "showarrow": False,
                    "font": {"size": 13},
                }
            )
    return layout


def band_trace(
    x: Iterable[Any], mean: Iterable[Any], ci: Iterable[Any], colour: str, group: str, panel: dict[str, str]
) -> dict[str, Any]:
    """The shaded ``mean ± ci`` band under a line, in the line's legend group (hidden with it; no hover)."""
    x, mean, ci = (
        np.asarray(numbers(x), float),
        np.asarray(numbers(mean), float),
        np.asarray(numbers(ci), float),
    )
    keep = ~np.isnan(mean) & ~np.isnan(ci) & ~np.isnan(x)
    x, low, high = x[keep], (mean - ci)[keep], (mean + ci)[keep]
    return {
        "type": "scatter",
        "x": numbers(np.concatenate([x, x[::-1]])),
        "y": numbers(np.concatenate([high, low[::-1]])),
        "fill": "toself",
        "fillcolor": rgba(colour, 0.16),
        "line": {"width": 0},
        "mode": "lines",
        "hoverinfo": "skip",
        "legendgroup": group,
        "showlegend": False,
        "name": f"{group} 95% CI",
        **panel,
    }


def line_trace(
    x: Iterable[Any],
    y: Iterable[Any],
    style: MethodStyle,
    group: str,
    panel: dict[str, str],
    *,
    name: str | None = None,
    legend: bool = False,
    dash: str = "solid",
    hover: str,
    customdata: list[list[Any]] | None = None,
    error: Iterable[Any] | None = None,
    open_markers: bool = False,
) -> dict[str, Any]:
    """A series' line with its markers (its method's colour and symbol), in legend group ``group``."""
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": numbers(x),
        "y": numbers(y),
        "name": name or group,
        "legendgroup": group,
        "showlegend": legend,
        "line": {"color": style.colour, "width": 2, "dash": dash},
        "marker": {
            "color": "white" if open_markers else style.colour,
            "symbol": style.symbol,
            "size": 8,
            "line": {"color": style.colour, "width": 1.5},
        },
        "hovertemplate": hover + "<extra>%{fullData.name}</extra>",
        **panel,
    }
    if customdata is not None:
        trace["customdata"] = customdata
    if error is not None:
        trace["error_y"] = {"type": "data", "array": numbers(error), "color": style.colour, "width": 3}
    return trace


def rows_of(*columns: Iterable[Any]) -> list[list[str]]:
    """Per point, its text in each of ``columns`` (``customdata``: hover text reads ``%{customdata[i]}``)."""
    return [[str(v) for v in row] for row in zip(*columns, strict=True)]
