"""The HTML page: sections of figures, tables and notes; nothing fetched from a network.

A figure is its PNG (embedded as a data URI, so the page shows it on its own and prints it) and, where a
section gives one, its interactive chart: a Plotly spec drawn by the Plotly.js file beside the page
(``dashboards/charts.py``). Where that script runs, the chart replaces the PNG on screen; without it the
PNG stays.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dashboards.charts import CONFIG, Spec, spec_json


@dataclass(frozen=True)
class Image:
    """A PNG written next to the page, embedded in it so the page works on its own; with ``chart``, the
    same figure as a Plotly spec, drawn in its place on screen."""

    path: Path
    caption: str
    chart: Spec | None = None


@dataclass(frozen=True)
class Table:
    """A table; cells are escaped text, except ``Details`` cells."""

    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Details:
    """A table cell with a one-line summary that expands to preformatted text (e.g. a traceback)."""

    summary: str
    body: str


@dataclass(frozen=True)
class Note:
    text: str
    warning: bool = False


Block = Image | Table | Note


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Header:
    title: str
    lines: list[str]
    badges: list[tuple[str, str]]  # (text, status colour class: completed, failed, running, interrupted)


FOLDED_ROWS = 12  # longer tables start folded: the figures come first

CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --bg:#f6f7f9; --accent:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 28px 12px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:2px 0; color:var(--muted); }
.badges { margin-top:10px; display:flex; gap:8px; flex-wrap:wrap; }
.badge { border-radius:12px; padding:2px 10px; font-size:12px; font-weight:600; color:#fff; }
.completed { background:#009E73; } .failed { background:#D55E00; }
.running { background:#0072B2; } .interrupted { background:#999; } .neutral { background:#5b6475; }
nav { position:sticky; top:0; z-index:1; background:#fff; border-bottom:1px solid var(--line);
      padding:6px 28px; display:flex; gap:18px; flex-wrap:wrap; }
nav a { color:var(--accent); text-decoration:none; font-weight:600; font-size:13px; }
main { max-width:1280px; margin:0 auto; padding:12px 28px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; margin:18px 0;
          padding:14px 20px; }
section h2 { margin:0 0 8px; font-size:17px; }
figure { margin:12px 0; }
figure.live img, figure .chart { display:none; }
figure.live .chart { display:block; }
.chart { width:100%; border:1px solid var(--line); border-radius:4px; }
figure img { max-width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:4px; }
.note { color:var(--muted); margin:8px 0; }
.warning { color:#8a3a00; background:#fff3e8; border-left:3px solid #D55E00; padding:6px 10px; }
.table-wrap { overflow-x:auto; margin:0 0 10px; }
table { border-collapse:collapse; font-size:12.5px; font-variant-numeric:tabular-nums; }
.caption { color:var(--muted); margin:14px 0 4px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f2f5; font-weight:600; }
tbody tr:nth-child(even) { background:#fafbfc; }
td.num { text-align:right; }
details summary { cursor:pointer; }
details pre { white-space:pre-wrap; font-size:11.5px; max-width:900px; background:#f6f7f9; padding:6px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding-bottom:20px; }
@media print { figure.live .chart { display:none; } figure.live img { display:block; } }
"""
# Draws every figure's chart (and marks it live, which hides its PNG on screen) once Plotly.js has loaded.
DRAW_CHARTS = """
if (window.Plotly) {
  for (const figure of document.querySelectorAll("figure[data-chart]")) {
    const spec = JSON.parse(figure.querySelector("script.chart-spec").textContent);
    figure.classList.add("live");
    Plotly.newPlot(figure.querySelector("div.chart"), spec.data, spec.layout, CONFIG);
  }
}
"""


def render_page(header: Header, sections: list[Section], footer: str, plotly_js: str | None = None) -> str:
    """The whole page as one HTML string; ``plotly_js``: the file name of Plotly.js beside the page, which
    draws the charts (without it, the page shows the PNGs only and has no script)."""
    nav = "".join(f'<a href="#{s.anchor}">{_text(s.title)}</a>' for s in sections)
    badges = "".join(f'<span class="badge {cls}">{_text(text)}</span>' for text, cls in header.badges)
    lines = "".join(f"<p>{_text(line)}</p>" for line in header.lines)
    body = "\n".join(_section(s) for s in sections)
    charts = any(isinstance(b, Image) and b.chart for s in sections for b in s.blocks)
    scripts = (
        f'<script src="{_text(plotly_js)}"></script>\n'
        f"<script>const CONFIG = {spec_json(CONFIG)};{DRAW_CHARTS}</script>\n"
        if plotly_js and charts
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'  # no icon: no request for /favicon.ico
        f"<title>{_text(header.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{_text(header.title)}</h1>{lines}<div class="badges">{badges}</div></header>\n'
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n<footer>{_text(footer)}</footer>\n{scripts}</body>\n</html>\n"
    )


def _section(section: Section) -> str:
    blocks = "\n".join(_block(b) for b in section.blocks)
    return f'<section id="{section.anchor}">\n<h2>{_text(section.title)}</h2>\n{blocks}\n</section>'


def _block(block: Block) -> str:
    if isinstance(block, Image):
        data = base64.b64encode(block.path.read_bytes()).decode()
        name = _text(block.path.name)
        image = f'<img src="data:image/png;base64,{data}" alt="{_text(block.caption)}" data-file="{name}">'
        caption = _text(block.caption)
        if block.chart is None:
            return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"
        return (
            f'<figure data-chart="{name}"><div class="chart"></div>'
            f'<script type="application/json" class="chart-spec">{spec_json(block.chart)}</script>{image}'
            f'<figcaption>{caption} <a href="{name}">PNG</a></figcaption></figure>'
        )
    if isinstance(block, Table):
        return _table(block)
    return f'<p class="note{" warning" if block.warning else ""}">{_text(block.text)}</p>'


def _table(table: Table) -> str:
    frame = table.frame
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    head = "".join(f"<th>{_text(c)}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = "".join(_cell(v, is_num) for v, is_num in zip(values, numeric, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    body = (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    caption = _text(table.caption)
    if len(frame) > FOLDED_ROWS:
        return f'<details class="caption"><summary>{caption} ({len(frame)} rows)</summary>{body}</details>'
    return f'<p class="caption">{caption}</p>{body}' if caption else body


def _cell(value: object, numeric: bool) -> str:
    if isinstance(value, Details):
        return (
            f"<td><details><summary>{_text(value.summary)}</summary>"
            f"<pre>{_text(value.body)}</pre></details></td>"
        )
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<td>–</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    return f'<td class="num">{value}</td>' if numeric else f"<td>{_text(str(value))}</td>"


def _text(value: str) -> str:
    return html.escape(value, quote=True)
