import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

import dashboards.report as report
from dashboards import build_report
from dashboards.charts import plotly_js_name
from dashboards.serve import RELOAD_SCRIPT, LiveReport, make_server
from study.cli import main
from study.results import write_trial_result
from study.status import trial_started
from tasks.record import TrialIdentity, TrialRecord
from tests.dashboards.synthetic import DATASET, FIGURES, RUNNING_TRIAL, SECTIONS, driver_running, trial_record

PNG = b"\x89PNG\r\n\x1a\n"


def failed_trial(study_dir: Path, trial_id: str = "failed-trial") -> None:
    identity = TrialIdentity(trial_id, dataset=DATASET, split_key="0", method="margin", seed=0)
    write_trial_result(
        study_dir, TrialRecord.failed(identity, "Traceback...\nOOM"), stage="eval", study="demo"
    )


def test_report_of_a_running_study(study_report):
    folder = study_report.parent
    assert study_report == folder.parent / "dashboard" / "index.html"
    figures = {p.name for p in folder.glob("*.png")}
    assert figures == FIGURES
    for name in figures:
        assert (folder / name).read_bytes().startswith(PNG) and (folder / name).stat().st_size > 5000
    page = study_report.read_text()
    assert [s for s in SECTIONS if f'<section id="{s}">' in page] == SECTIONS
    assert page.count('<img src="data:image/png;base64,') == len(figures)
    assert {p.name for p in folder.iterdir()} == figures | {"index.html", plotly_js_name()}
    assert (folder / plotly_js_name()).read_text() == get_plotlyjs()  # the installed Plotly.js, beside it
    assert re.findall(r"<script src=\"([^\"]*)\"", page) == [plotly_js_name()]  # once, relative
    assert "://" not in page  # no URL: nothing fetched from a network
    specs = re.findall(r'<script type="application/json" class="chart-spec">(.*?)</script>', page)
    assert len(specs) == len(figures)  # every figure also as an interactive chart
    for spec in specs:
        go.Figure(json.loads(spec.replace("<\\/", "</")))  # valid Plotly: raises on an unknown property
    assert "FloatingPointError: loss is nan at epoch 1" in page  # the failed trial, with its error
    assert RUNNING_TRIAL in page and "16 completed" in page and "1 running" in page
    assert "Protocol: paper (trained on all train classes, epoch selected on test Recall@1" in page
    assert "Spearman ρ between the two rankings" in page
    assert "adapting on the support set (s images of each test class; the rest of the class are the" in page


def test_plotly_js_is_written_once_and_replaces_other_versions(tmp_path):
    folder = tmp_path / "dashboard"
    folder.mkdir()
    (folder / "plotly-0.1.0.min.js").write_text("an older Plotly.js")
    build_report(tmp_path)
    script = folder / plotly_js_name()
    written = script.stat().st_mtime_ns
    build_report(tmp_path)
    assert script.stat().st_mtime_ns == written and not (folder / "plotly-0.1.0.min.js").exists()


def test_empty_study_says_no_results(tmp_path):
    page = build_report(tmp_path).read_text()
    assert "No results yet" in page and '<section id="status">' in page
    assert not list((tmp_path / "dashboard").glob("*.png"))
    trial_started(tmp_path, "first", "eval", "glyphs/margin/split 0/seed 0")  # then the driver stopped
    page = build_report(tmp_path).read_text()
    assert "So far: 1 interrupted" in page and (tmp_path / "dashboard" / "status.png").is_file()


def test_failed_and_interrupted_trials_only(tmp_path):
    failed_trial(tmp_path)
    (tmp_path / "results" / "eval-damaged.parquet").write_bytes(b"PAR1 not really")
    trial_started(tmp_path, "abc", "eval", "glyphs/margin/split 0/seed 1")  # started, no row yet
    driver_running(tmp_path, host="another-host")  # heard from recently: running, wherever it runs
    (tmp_path / "dashboard").mkdir()
    (tmp_path / "dashboard" / "degradation_old.png").write_bytes(PNG)  # an earlier build's figure
    page = build_report(tmp_path).read_text()
    assert "No results yet" in page and "1 failed" in page and "OOM" in page
    assert "Unreadable result file skipped: eval-damaged.parquet" in page
    assert "1 running" in page and "on another-host" in page
    driver_running(tmp_path, state="stopped")  # ended without finishing the trial
    page = build_report(tmp_path).read_text()
    assert "1 interrupted" in page and "abc" in page
    assert [p.name for p in (tmp_path / "dashboard").glob("*.png")] == ["status.png"]


def test_a_failing_section_is_reported_on_the_page(tmp_path, monkeypatch):
    write_trial_result(
        tmp_path, trial_record("margin", (0, "0", "harder", 5.0, 8, 8), 0, ()), stage="eval", study="s"
    )

    def broken(table, out):
        raise RuntimeError("no ink")

    monkeypatch.setattr(report, "RESULT_SECTIONS", [("degradation", "Degradation curves", broken)])
    page = build_report(tmp_path).read_text()
    assert "This section could not be drawn: RuntimeError: no ink" in page
    assert f"{DATASET}: no projection table" in page and '<section id="status">' in page


def test_cli(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'dashboard' / 'index.html'}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, "", b""


def test_serve_rebuilds_when_results_change(tmp_path):
    server = make_server(LiveReport(tmp_path), 0)
    assert server.server_address[0] == "127.0.0.1"
    url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, kind, body = get(url + "/")
        assert status == 200 and kind.startswith("text/html")
        assert RELOAD_SCRIPT.encode() in body and b"No results yet" in body
        assert b"location.reload()" not in (tmp_path / "dashboard" / "index.html").read_bytes()
        failed_trial(tmp_path, "late-failure")
        body = get(url + "/index.html")[2]
        assert b"late-failure" in body and b"1 failed" in body
        assert get(url + "/status.png")[:2] == (200, "image/png")
        assert get(url + "/../results")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_cli_serve_builds_then_serves(tmp_path, monkeypatch, capsys):
    served = []
    monkeypatch.setattr("dashboards.serve.serve", lambda live, port: served.append((live.study_dir, port)))
    assert main(["report", str(tmp_path), "--serve", "--port", "0"]) == 0
    assert served == [(tmp_path, 0)] and "wrote" in capsys.readouterr().out
