"""``oodml leaderboard DIR [DIR ...] [--html OUT] [--json]``: many studies' results side by side
(``study.results.leaderboard``), printed, as JSON, or as a page: one table per group (a dataset and its
split file) and a scatter of each model's harder-split against its default-split value on logit axes with
each harder split's fitted trend (effective robustness, docs/statistics.md). The page draws its charts with
the Plotly.js file written beside it; nothing is fetched from a network.

Pandas, NumPy, DuckDB and Plotly are imported when the command runs, so ``--help`` stays light.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from study.results.cli import add_leaderboard_arguments

if TYPE_CHECKING:
    import pandas as pd

    from study.results.leaderboard import Leaderboard

__all__ = ["add_leaderboard_arguments", "leaderboard", "write_leaderboard_page"]

PLOTLY_JS = "plotly.min.js"  # written beside the page
TICKS = [
    0.01,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
]  # probabilities marked on logit axes
TREND_COLOUR = "#555555"
CSS = """
body { margin:0; font:14px/1.45 system-ui,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:#1d2330;
       background:#f6f7f9; }
header { background:#fff; border-bottom:1px solid #e3e6ec; padding:18px 28px 12px; }
header h1 { margin:0 0 4px; font-size:22px; } header p { margin:2px 0; color:#5b6475; }
main { max-width:1280px; margin:0 auto; padding:12px 28px 40px; }
section { background:#fff; border:1px solid #e3e6ec; border-radius:8px; margin:18px 0; padding:14px 20px; }
section h2 { margin:0 0 8px; font-size:17px; }
.note { color:#5b6475; margin:8px 0; }
.warning { color:#8a3a00; background:#fff3e8; border-left:3px solid #D55E00; padding:6px 10px; margin:6px 0; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; font-size:12.5px; font-variant-numeric:tabular-nums; }
th, td { padding:4px 10px; border-bottom:1px solid #e3e6ec; text-align:left; }
th { background:#f0f2f5; } td.num { text-align:right; }
.chart { width:100%; height:520px; }
"""


def leaderboard(args: argparse.Namespace) -> int:
    from study.results.leaderboard import format_leaderboard, read_leaderboard

    board = read_leaderboard(args.study_dirs, args.metric)
    print(board.to_json() if args.json else format_leaderboard(board))
    if args.html:
        print(
            f"wrote {write_leaderboard_page(board, args.html)}", file=sys.stderr if args.json else sys.stdout
        )
    return 0


def write_leaderboard_page(board: Leaderboard, page: Path) -> Path:
    """Write ``page`` (HTML) and ``plotly.min.js`` beside it; returns the page."""
    from plotly.offline import get_plotlyjs

    from study.results.files import write_text_atomic

    page = Path(page)
    write_text_atomic(page.parent / PLOTLY_JS, get_plotlyjs())
    write_text_atomic(page, render_leaderboard(board))
    return page


def render_leaderboard(board: Leaderboard) -> str:
    """The page as one HTML string (module docstring)."""
    studies = "".join(f"<p>{_text(label)}: {_text(folder)}</p>" for label, folder in board.studies.items())
    apart = "".join(f'<p class="warning">Kept apart: {_text(note)}</p>' for note in board.kept_apart)
    if not board.kept_apart:
        apart = '<p class="note">Every study of a dataset uses the same split file: none kept apart.</p>'
    sections = [_group_section(board, group, part) for group, part in board.rows.groupby("group", sort=True)]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Leaderboard: {len(board.studies)} studies</title>\n<style>{CSS}</style>\n"
        f'<script src="{PLOTLY_JS}"></script>\n</head>\n<body>\n'
        f"<header><h1>Leaderboard of test {_text(board.metric)} over {len(board.studies)} studies</h1>"
        f"{studies}</header>\n<main>\n<section><h2>Split files</h2>{apart}</section>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


def _group_section(board: Leaderboard, group: str, rows: pd.DataFrame) -> str:
    from dashboards.charts import CONFIG  # the dashboard's: no logo, no "Share chart" upload button

    anchor = "".join(c if c.isalnum() else "-" for c in group)
    caption = (
        f"Normalized AUC of {board.metric} over FID ± 95% CI over seeds; {board.metric} on the default "
        "split and on the study's hardest split; few-shot gain per budget (mean over splits); paired-test "
        "rank within the study (1 + methods significantly better, Holm); effective robustness across this "
        "group's studies with its 95% bootstrap interval."
    )
    chart = _robustness_chart(board, group)
    figure = (
        '<p class="note">Each model (study, backbone, method, seed) on each harder split: its '
        f"{board.metric} there against its default-split value, on logit axes, with each split's "
        "least-squares trend (Taori et al. 2020). Click a legend entry to hide it.</p>"
        f'<div class="chart" id="er-{anchor}"></div><script>{{const spec = {chart}; Plotly.newPlot('
        f'"er-{anchor}", spec.data, spec.layout, {json.dumps(CONFIG)});}}</script>'
        if chart
        else '<p class="note">Effective robustness needs 3 models with 2 distinct default-split values '
        "per harder split: not enough here.</p>"
    )
    return (
        f'<section id="{anchor}"><h2>{_text(group)}</h2><p class="note">{_text(caption)}</p>'
        f'<div class="table-wrap">{_table(board, rows)}</div>{figure}</section>'
    )


def _table(board: Leaderboard, rows: pd.DataFrame) -> str:
    from study.results.leaderboard import format_interval, format_value

    heads = ["backbone", "method", "study", "AUC", "default", "hardest"]
    heads += [f"gain@{k}" for k in board.budgets] + ["rank", "effective robustness"]
    body = []
    for row in rows.itertuples():
        cells = [row.backbone, row.method, row.study]
        numbers = [
            format_value(row.auc, row.auc_ci95),
            format_value(row.default_split, row.default_ci95),
            f"{format_value(row.hardest_split, row.hardest_ci95)} @ {row.hardest_key}",
            *(format_interval(row.fewshot_gain.get(k)) for k in board.budgets),
            str(row.rank),
            format_interval(row.effective_robustness, row.er_ci_low, row.er_ci_high),
        ]
        body.append(
            "<tr>"
            + "".join(f"<td>{_text(c)}</td>" for c in cells)
            + "".join(f'<td class="num">{_text(n)}</td>' for n in numbers)
            + "</tr>"
        )
    head = "".join(f"<th>{_text(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _robustness_chart(board: Leaderboard, group: str) -> str | None:
    """The group's scatter and trend lines as a Plotly figure's JSON; None without a trend."""
    import numpy as np
    import plotly.graph_objects as go

    from dashboards.plotting import method_style
    from study.results.robustness import logit

    found = board.points[board.points["group"] == group]
    lines = board.trends[board.trends["group"] == group]
    if lines.empty:
        return None
    found = found.assign(series=found["method"] + " · " + found["backbone"] + " (" + found["study"] + ")")
    styles = method_style(found["series"])
    fig = go.Figure()
    for series, part in found.groupby("series", sort=True):
        fig.add_trace(
            go.Scatter(
                x=logit(part["x"]),
                y=logit(part["y"]),
                mode="markers",
                name=series,
                legendgroup=series,
                marker={"color": styles[series].colour, "symbol": styles[series].symbol, "size": 9},
                customdata=np.stack([part["x"], part["y"], part["seed"], part["split_key"]], axis=1),
                hovertemplate=f"{_text(series)}<br>seed %{{customdata[2]}}, split %{{customdata[3]}}<br>"
                "default %{customdata[0]:.3f}, harder %{customdata[1]:.3f}<extra></extra>",
            )
        )
    span = logit(found["x"])
    xs = np.linspace(span.min(), span.max(), 2)
    for line in lines.itertuples():
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=line.intercept + line.slope * xs,
                mode="lines",
                name=f"trend, split {line.split_key}",
                line={"color": TREND_COLOUR, "dash": "dash", "width": 1.5},
                hovertemplate=f"trend of split {_text(line.split_key)} ({line.n_models} models): "
                f"logit y = {line.intercept:.3f} + {line.slope:.3f} logit x<extra></extra>",
            )
        )
    axis = {"tickvals": list(logit(np.array(TICKS))), "ticktext": [f"{t:g}" for t in TICKS]}
    fig.update_layout(
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis={"title": {"text": f"{board.metric} on the default split (logit axis)"}, **axis},
        yaxis={"title": {"text": f"{board.metric} on a harder split (logit axis)"}, **axis},
        legend={"title": {"text": "method · backbone (study)"}},
    )
    return fig.to_json().replace("</", "<\\/")  # safe inside <script>


def _text(value: object) -> str:
    return html.escape(str(value))
