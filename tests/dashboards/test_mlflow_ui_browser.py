"""The MLflow UI on a study's store, in headless Chromium: the page `oodml ui` prints (the study's runs)
lists the study's parent run, where a fresh browser would land on MLflow 3's empty GenAI overview."""

from __future__ import annotations

import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from study.tracking import StudyTracker
from study.tracking.ui import runs_page
from tests.dashboards.test_browser import CHROMEDRIVER, CHROMIUM, FLAGS
from tests.pgserver import MlflowServer


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or not CHROMEDRIVER.is_file(), reason="no headless browser")
def test_the_printed_page_lists_the_studys_parent_run(tmp_path) -> None:
    study_dir = tmp_path / "study"
    tracker = StudyTracker(None, study_dir, "uistudy")
    tracker.start_study("uistudy-parent", {"name": "uistudy"})
    (study_dir / "study.yaml").write_text("name: uistudy\n")
    server = MlflowServer(
        tmp_path, f"sqlite:///{study_dir / 'mlflow.db'}", str(tmp_path / "artifacts"), workers=1
    )
    server.start(120)
    options = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        page = runs_page(study_dir, "127.0.0.1", server.port)
        assert page is not None and page.endswith(f"/#/experiments/{tracker.experiment_id}/runs")
        driver.set_window_size(1400, 1000)
        driver.get(page)
        deadline = time.monotonic() + 90  # the UI renders its run table after its own requests
        while "uistudy-parent" not in driver.page_source and time.monotonic() < deadline:
            time.sleep(1)
        assert "uistudy-parent" in driver.page_source
    finally:
        driver.quit()
        server.stop()
