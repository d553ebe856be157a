"""The dashboard in headless Chromium (Debian's chromium and chromium-driver, via selenium): every chart
drawn, no console errors, a screenshot."""

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.dashboards.synthetic import FIGURES, SECTIONS

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
# Per image: loaded size, and the number of distinct colours in a 64 x 64 thumbnail (1 = blank).
IMAGES_JS = """
return Array.from(document.images).map(img => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0, 64, 64);
  const pixels = context.getImageData(0, 0, 64, 64).data;
  const colours = new Set();
  for (let i = 0; i < pixels.length; i += 4) colours.add(pixels.slice(i, i + 4).join());
  const box = img.getBoundingClientRect();
  return {file: img.dataset.file, complete: img.complete, width: img.naturalWidth,
          height: img.naturalHeight, shownWidth: box.width, colours: colours.size};
});
"""


@pytest.mark.skipif(
    CHROMIUM is None or not CHROMEDRIVER.is_file(),
    reason="no headless browser: needs the Debian packages chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver, as .ci/run does)",
)
def test_dashboard_in_headless_chromium(study_report, tmp_path):
    options = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_window_size(1280, 1000)
        driver.get(study_report.as_uri())
        assert [s.get_attribute("id") for s in driver.find_elements(By.TAG_NAME, "section")] == SECTIONS
        images = driver.execute_script(IMAGES_JS)
        assert sorted(i["file"] for i in images) == sorted(FIGURES)
        for image in images:
            assert image["complete"] and image["width"] > 300 and image["height"] > 150, image
            assert image["shownWidth"] > 300 and image["colours"] > 20, image
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not severe, severe
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, height)
        screenshot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 50_000
        print(f"screenshot: {screenshot}")
    finally:
        driver.quit()
