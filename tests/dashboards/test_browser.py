"""The dashboard in headless Chromium (Debian's chromium and chromium-driver, via selenium), on the demo
study's page and on a 1,080-trial paper-shaped page: every chart drawn, its PNG kept, no console error,
nothing fetched from a network, a legend click hides a method's marks, a hover shows a value."""

import json
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dashboards import build_report
from tests.dashboards.synthetic import FIGURES, PAPER_DATASETS, SECTIONS, make_paper_study

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or not CHROMEDRIVER.is_file(),
    reason="no headless browser: needs the Debian packages chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver, as .ci/run does)",
)
# Per figure: its PNG (loaded size, distinct colours in a 64 x 64 thumbnail: 1 = blank), whether its chart
# was drawn (an SVG with marks) and whether the PNG is linked beside it.
FIGURES_JS = """
return Array.from(document.querySelectorAll("figure")).map(figure => {
  const img = figure.querySelector("img");
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0, 64, 64);
  const pixels = context.getImageData(0, 0, 64, 64).data;
  const colours = new Set();
  for (let i = 0; i < pixels.length; i += 4) colours.add(pixels.slice(i, i + 4).join());
  const chart = figure.querySelector("div.chart");
  const link = figure.querySelector("figcaption a");
  return {file: img.dataset.file, complete: img.complete, width: img.naturalWidth,
          height: img.naturalHeight, colours: colours.size, live: figure.classList.contains("live"),
          chartWidth: chart ? chart.getBoundingClientRect().width : 0,
          marks: chart ? chart.querySelectorAll(".point, .js-line, .bars path, .errorbar").length : 0,
          link: link ? link.getAttribute("href") : null};
});
"""
# Every URL the page names (src, href).
URLS_JS = """
return Array.from(document.querySelectorAll("[src], [href]")).map(e => e.getAttribute("src") || e.getAttribute("href"));
"""
MODEBAR_JS = """
return Array.from(document.querySelectorAll(".modebar-btn")).map(b => b.getAttribute("data-title"));
"""
MARKERS_JS = "return arguments[0].querySelectorAll('.scatterlayer .point').length;"
# The drawn markers of one legend group: the points of its visible traces drawn with markers.
GROUP_POINTS_JS = """
const [chart, group] = arguments;
return chart._fullData.filter(t => t.legendgroup === group && t.visible === true && (t.mode || "").includes("markers"))
  .reduce((n, t) => n + t.x.filter((x, i) => x !== null && t.y[i] !== null).length, 0);
"""
HOVER_JS = """
const [chart, curve] = arguments;
Plotly.Fx.hover(chart, [{curveNumber: curve, pointNumber: 0}], "xy");
const label = chart.querySelector(".hoverlayer .hovertext");
return label ? label.textContent : null;
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    options = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('profile')}"]:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 1000)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard of a finished paper-shaped study: 3 datasets x 8 methods x 9 splits x 5 seeds."""
    return build_report(make_paper_study(tmp_path_factory.mktemp("paper")))


def open_page(browser, page: Path) -> list[dict]:
    """Load ``page``, wait until every chart is drawn; its figures (``FIGURES_JS``)."""
    browser.get_log("performance")  # from here on, the network log is this page's
    browser.get(page.as_uri())
    charts = len(browser.find_elements(By.CSS_SELECTOR, "figure[data-chart]"))
    WebDriverWait(browser, 60).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "figure.live .main-svg")) >= charts
    )
    return browser.execute_script(FIGURES_JS)


def check_figures(figures: list[dict]) -> None:
    for figure in figures:
        assert figure["complete"] and figure["width"] > 300 and figure["height"] > 150, figure
        assert figure["colours"] > 20, figure  # the PNG is drawn, kept for printing
        assert figure["live"] and figure["chartWidth"] > 600 and figure["marks"] > 0, figure
        assert figure["link"] == figure["file"], figure  # the PNG beside the page, linked


def check_offline(browser, page: Path) -> None:
    """Every URL the page names is relative (or data:), every request it made (the browser's network
    log: requests of its document, not the browser's own pages) is for a file of the dashboard folder, and
    no chart offers to upload itself (Plotly.js's "Share chart" button) or links to plotly.com (its logo)."""
    buttons = browser.execute_script(MODEBAR_JS)
    assert "Download plot as a PNG" in buttons
    assert not [b for b in buttons if b.startswith(("Share chart", "Produced with Plotly"))], buttons
    for url in browser.execute_script(URLS_JS):
        assert url.startswith(("#", "data:")) or ":" not in url.split("/")[0], url
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    requested = {
        e["params"]["request"]["url"]
        for e in events
        if e["method"] == "Network.requestWillBeSent" and e["params"].get("documentURL") == page.as_uri()
    }
    local = {
        url for url in requested if url.startswith(page.parent.as_uri() + "/") or url.startswith("data:")
    }
    assert requested == local, requested - local
    assert any(url.endswith(".min.js") for url in requested)  # Plotly.js, from beside the page


def check_legend_hides_a_method(browser, chart, group: str) -> None:
    """A click on ``group``'s legend entry removes exactly its markers from the plot; a second brings
    them back."""
    before = browser.execute_script(MARKERS_JS, chart)
    own = browser.execute_script(GROUP_POINTS_JS, chart, group)
    assert own > 0 and before > own
    entry = next(
        e for e in chart.find_elements(By.CSS_SELECTOR, ".legend .traces") if e.text.strip() == group
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
    ActionChains(browser).move_to_element(entry).click().perform()
    WebDriverWait(browser, 10).until(lambda b: b.execute_script(MARKERS_JS, chart) != before)
    assert browser.execute_script(MARKERS_JS, chart) == before - own
    ActionChains(browser).move_to_element(entry).click().perform()
    WebDriverWait(browser, 10).until(lambda b: b.execute_script(MARKERS_JS, chart) == before)


def check_hover_shows_a_value(browser, chart) -> None:
    """Hovering a method's first point shows its mean ± CI (the text of its ``customdata``)."""
    data = browser.execute_script("return arguments[0].data.map(t => [t.mode, t.customdata]);", chart)
    curve = next(i for i, (mode, custom) in enumerate(data) if mode == "lines+markers" and custom)
    label = browser.execute_script(HOVER_JS, chart, curve)
    value = data[curve][1][0][1]  # the first point's "0.612 ± 0.010"
    assert label is not None and " ± " in value and value in label, (label, value)


def check_console(browser) -> None:
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe


def test_demo_dashboard(browser, study_report, tmp_path):
    figures = open_page(browser, study_report)
    assert [s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")] == SECTIONS
    assert sorted(f["file"] for f in figures) == sorted(FIGURES)
    check_figures(figures)
    check_offline(browser, study_report)
    chart = browser.find_element(By.CSS_SELECTOR, "#degradation div.chart")
    check_legend_hides_a_method(browser, chart, "margin")
    check_hover_shows_a_value(browser, chart)
    check_console(browser)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    screenshot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000
    browser.set_window_size(1280, 1000)


def test_paper_shaped_dashboard(browser, paper_report):
    figures = open_page(browser, paper_report)
    kinds = ("degradation", "ranking", "compare", "fewshot", "splits", "shift")
    assert sorted(f["file"] for f in figures) == sorted(
        [f"{kind}_{dataset}.png" for kind in kinds for dataset in PAPER_DATASETS] + ["status.png"]
    )
    check_figures(figures)
    check_offline(browser, paper_report)
    for section, group in (("degradation", "arcface"), ("fewshot", "uniformity")):
        chart = browser.find_element(By.CSS_SELECTOR, f"#{section} div.chart")
        check_legend_hides_a_method(browser, chart, group)
    check_hover_shows_a_value(browser, browser.find_element(By.CSS_SELECTOR, "#degradation div.chart"))
    check_console(browser)
