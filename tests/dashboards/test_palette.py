"""One colour and marker per method, told apart for at least 12 methods, the same in the PNGs and the charts."""

import json
import random
import re

from dashboards.plotting import MARKERS, SYMBOLS, method_style, series_styles
from tests.dashboards.synthetic import PAPER_METHODS

TWELVE = [*PAPER_METHODS, "triplet", "contrastive", "softtriple", "npair"]


def test_twelve_methods_get_twelve_distinct_styles():
    styles = method_style(TWELVE)
    assert len(styles) == 12
    assert len({(s.colour, s.marker) for s in styles.values()}) == 12
    assert (
        len({s.colour for s in method_style(PAPER_METHODS).values()}) == 8
    )  # the paper's 8: all colours apart


def test_styles_follow_name_order_not_table_order():
    shuffled = TWELVE * 2  # as a table lists them: repeated, in any order
    random.Random(0).shuffle(shuffled)
    assert method_style(shuffled) == method_style(TWELVE)
    first = sorted(TWELVE)[0]
    assert method_style(TWELVE)[first] == method_style([first, "zzz"])[first]  # the i-th name in sorted order


def test_every_marker_has_a_plotly_symbol():
    assert set(SYMBOLS) == set(MARKERS)
    assert {s.symbol for s in method_style(TWELVE).values()} <= set(SYMBOLS.values())
    assert series_styles(TWELVE) == {
        n: {"color": s.colour, "marker": s.marker} for n, s in method_style(TWELVE).items()
    }


def test_the_chart_draws_each_method_as_its_png_does(study_report):
    page = study_report.read_text()
    spec = re.search(
        r'<figure data-chart="degradation_glyphs.png">.*?class="chart-spec">(.*?)</script>', page
    )
    lines = [t for t in json.loads(spec.group(1))["data"] if t["mode"] == "lines+markers"]
    styles = series_styles(t["legendgroup"] for t in lines)  # what the PNG draws with
    assert {t["legendgroup"] for t in lines} == {"margin", "multisimilarity"}
    for trace in lines:
        style = styles[trace["legendgroup"]]
        assert trace["line"]["color"] == style["color"] == trace["marker"]["color"]
        assert trace["marker"]["symbol"] == SYMBOLS[style["marker"]]
