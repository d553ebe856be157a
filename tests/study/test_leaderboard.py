"""``oodml leaderboard``: many study folders read by one DuckDB query, every number the one ``oodml results``
of its study gives; effective robustness fitted across studies (planted values recovered); studies with
different split files kept apart. Two small real studies (a ``glyph_cnn`` and a ``timm:test_resnet``
backbone, random init) and studies of synthetic records written through the result store, on a local disk
and on a real S3 server."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.cli import main
from study.migration import split_hash_v1
from study.results import read_results, write_trial_result
from study.results.leaderboard import read_leaderboard
from study.results.report import summary_json
from study.results.robustness import EPS
from study.results.storage import locate
from tasks.identity import split_hash
from tasks.splits.files import Split
from tests.dashboards.test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    FLAGS,
    HOVER_JS,
    check_console,
    check_legend_hides_a_method,
    check_offline,
)
from tests.records import SPLITS
from tests.study.test_robustness import PLANTED, planted_records, write_planted

HARDER_ID = SPLITS[1][0]  # a harder split of the synthetic records (key R22)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _er(board_rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["study"], r["method"]): r["effective_robustness"] for r in board_rows}


def test_effective_robustness_planted_across_two_studies_is_recovered(tmp_path: Path) -> None:
    first, second = {m: PLANTED[m] for m in "abc"}, {m: PLANTED[m] for m in "de"}
    write_planted(tmp_path / "one", first, study="one")
    write_planted(tmp_path / "two", second, study="two")
    board = read_leaderboard([tmp_path / "one", tmp_path / "two"])
    assert board.kept_apart == [] and set(board.robustness["group"]) == {"glyphs"}
    rows = board.robustness.to_dict("records")
    planted = {("one", m): v for m, v in first.items()} | {("two", m): v for m, v in second.items()}
    assert set(_er(rows)) == set(planted)
    for row in rows:
        assert row["effective_robustness"] == pytest.approx(planted[(row["study"], row["method"])], abs=0.005)
        assert row["ci_low"] <= row["effective_robustness"] <= row["ci_high"]
        assert (row["n_models"], row["n_splits"]) == (6, 2)
    assert len(board.points) == 5 * 6 * 2  # every model on both harder splits, in one trend per split
    assert sorted(board.trends["n_models"]) == [30, 30]


def test_one_study_gives_the_effective_robustness_of_oodml_results(tmp_path: Path) -> None:
    write_planted(tmp_path, PLANTED)
    expected = json.loads(summary_json(tmp_path))["effective_robustness"]
    found = json.loads(read_leaderboard([tmp_path]).to_json())["effective_robustness"]
    columns = ["dataset", "backbone", "method", "effective_robustness", "ci_low", "ci_high", "n_models"]
    key = ["backbone", "method"]
    assert sorted(({c: r[c] for c in columns} for r in found), key=lambda r: [r[k] for k in key]) == sorted(
        ({c: r[c] for c in columns} for r in expected), key=lambda r: [r[k] for k in key]
    )


def test_studies_with_different_split_files_are_kept_apart(tmp_path: Path, capsys) -> None:
    write_planted(tmp_path / "a", {m: PLANTED[m] for m in "abc"}, study="a")
    write_planted(tmp_path / "b", {m: PLANTED[m] for m in "de"}, study="b")
    for record in planted_records(PLANTED):  # c: the same splits but one, whose split file differs
        if record.identity.split_id == HARDER_ID:
            record = dataclasses.replace(
                record, identity=dataclasses.replace(record.identity, split_hash="rebuilt")
            )
        write_trial_result(tmp_path / "c", record, stage="eval", study="c")
    board = read_leaderboard([tmp_path / name for name in "abc"])
    groups = board.rows.groupby("study")["group"].unique().map(list).to_dict()
    assert groups == {"a": ["glyphs"], "b": ["glyphs"], "c": ["glyphs #2"]}
    assert len(board.kept_apart) == 1
    assert all(s in board.kept_apart[0] for s in ("c kept apart from a, b", "R22", "rebuilt", "abc123"))
    for group, studies in (("glyphs", {"a", "b"}), ("glyphs #2", {"c"})):
        assert set(board.points.loc[board.points["group"] == group, "study"]) == studies
        assert set(board.robustness.loc[board.robustness["group"] == group, "study"]) == studies
    assert set(board.trends["group"]) == {"glyphs", "glyphs #2"}  # a trend per split file

    assert main(["leaderboard", *(str(tmp_path / name) for name in "abc")]) == 0
    printed = capsys.readouterr().out
    assert "kept apart: glyphs: c kept apart from a, b" in printed and "glyphs #2:" in printed


def _split(split_id: int, key: str, fid: float) -> Split:
    """One of the synthetic records' splits as its split file holds it."""
    train, test = [f"c{i}" for i in range(split_id, split_id + 4)], [f"c{i}" for i in range(10, 13)]
    return Split(
        id=split_id, key=key, fid=fid, train=train, test=test, split_train=train[:3], split_val=train[3:]
    )


def test_a_split_file_rebuilt_with_fids_moved_in_the_last_digits_joins_the_original(tmp_path: Path) -> None:
    """Split files built again by a route whose FIDs differ by 1e-13 hold the same splits: their studies are
    one group (a split hash leaves the shift measures, tasks/identity.py), where identity version 1's
    split hashes kept them apart."""
    original = {i: _split(i, key, fid) for i, key, fid, _ in SPLITS}
    rebuilt = {i: split.model_copy(update={"fid": split.fid * (1 + 1e-13)}) for i, split in original.items()}
    assert all(split_hash_v1(rebuilt[i]) != split_hash_v1(original[i]) for i in original)
    for study, splits in (("original", original), ("rebuilt", rebuilt)):
        for record in planted_records({m: PLANTED[m] for m in "ab"}):
            digest = split_hash(splits[record.identity.split_id])
            identity = dataclasses.replace(record.identity, split_hash=digest)
            write_trial_result(
                tmp_path / study, dataclasses.replace(record, identity=identity), stage="eval", study=study
            )
    board = read_leaderboard([tmp_path / "original", tmp_path / "rebuilt"])
    assert board.kept_apart == []
    assert board.rows.groupby("study")["group"].unique().map(list).to_dict() == {
        "original": ["glyphs"],
        "rebuilt": ["glyphs"],
    }
    assert set(board.robustness["study"]) == {"original", "rebuilt"} and set(board.robustness["group"]) == {
        "glyphs"
    }


@pytest.mark.skipif(
    CHROMIUM is None or not CHROMEDRIVER.is_file(), reason="no headless browser: chromium, chromium-driver"
)
def test_the_page_in_headless_chromium(tmp_path: Path) -> None:
    """Nothing fetched from a network, no console error, a legend click hides a method's points, a hover
    shows a model's values."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboards.leaderboard import write_leaderboard_page

    write_planted(tmp_path / "one", {m: PLANTED[m] for m in "abc"}, study="one")
    write_planted(tmp_path / "two", {m: PLANTED[m] for m in "de"}, study="two")
    page = write_leaderboard_page(
        read_leaderboard([tmp_path / "one", tmp_path / "two"]), tmp_path / "b" / "i.html"
    )
    options = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_window_size(1280, 1000)
        driver.get(page.as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "div.chart .main-svg"))
        check_offline(driver, page)
        chart = driver.find_element(By.CSS_SELECTOR, "div.chart")
        check_legend_hides_a_method(driver, chart, "a · glyphnet (one)")
        label = driver.execute_script(HOVER_JS, chart, 0)
        assert label is not None and "seed 0" in label and "default 0.350" in label, label
        check_console(driver)
    finally:
        driver.quit()


def test_a_study_on_s3_gives_the_leaderboard_of_its_local_copy(s3_root: str, tmp_path: Path) -> None:
    """The same records written to an ``s3://`` study folder (SeaweedFS, tests/s3server.py) and to a local
    copy of the same name: [s3 study, local study] and [local copy, local study] give the same leaderboard
    (the same labels, every number equal), read by one query over two filesystems; so does the s3 study
    alone."""
    remote = locate(s3_root)
    copy = tmp_path / "copy" / remote.name
    for where in (s3_root, copy):
        write_planted(where, {m: PLANTED[m] for m in "abc"}, study="one")
    write_planted(tmp_path / "two", {m: PLANTED[m] for m in "de"}, study="two")

    found = json.loads(read_leaderboard([s3_root, tmp_path / "two"]).to_json())
    expected = json.loads(read_leaderboard([copy, tmp_path / "two"]).to_json())
    assert found.pop("studies") == {remote.name: s3_root, "two": str(tmp_path / "two")}
    assert expected.pop("studies") == {remote.name: str(copy), "two": str(tmp_path / "two")}
    assert found == expected and {r["study"] for r in found["rows"]} == {remote.name, "two"}
    alone, its_copy = (json.loads(read_leaderboard([where]).to_json()) for where in (s3_root, copy))
    assert alone.pop("studies") != its_copy.pop("studies") and alone == its_copy  # the dataset alone


def test_an_s3_folder_without_results_is_named(s3_root: str, tmp_path: Path) -> None:
    write_planted(tmp_path / "two", {m: PLANTED[m] for m in "de"}, study="two")
    for missing in (s3_root, "s3://oodml-no-such-bucket/study"):  # a prefix without objects, no bucket
        with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} has no results/ folder")):
            read_leaderboard([missing, tmp_path / "two"])
    (locate(s3_root) / "results" / "notes.txt").write_text("no trial has finished")
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"study {locate(s3_root).name} ({s3_root}) has no result files")
    ):
        read_leaderboard([tmp_path / "two", s3_root])


# Two real studies: 2 methods x 2 splits x budgets {0, 2}, 1 seed, 1 step of training and of few-shot
# adaptation, no tuning; one MLflow store for both (MLflow makes a new store's tables in seconds).
@pytest.fixture(scope="module")
def two_studies(ray_local, glyph_cache, tmp_path_factory) -> list[Path]:
    from study.api import run

    root = tmp_path_factory.mktemp("leaderboard")
    folders = []
    for backbone in ("glyph_cnn", "timm:test_resnet"):
        name = backbone.replace(":", "-")
        spec = {
            "name": name,
            "datasets": [
                {
                    "name": "glyphs",
                    "root": str(glyph_cache),
                    "options": {"num_classes": 16, "max_chars": 60},
                    "splits": {"select": 2, "steps": 3, "easier_steps": 2, "removal_steps": 2, "episodes": 2},
                }
            ],
            "methods": [{"name": "frozen"}, {"name": "triplet"}],
            "model": {"backbone": backbone, "embedding_dim": 16, "pretrained": False},
            "training": {
                "epochs": 1,
                "batch_size": 16,
                "samples_per_class": 4,
                "iterations_per_epoch": 1,
                "with_nmi": False,
                "record_test_curve": False,
            },
            "fewshot": {"budgets": [0, 2], "iterations": {2: 1}, "batch_size": 16},
            "storage": {"root": str(root / name), "tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
        }
        lines: list[str] = []
        result = run(spec, echo=lines.append)
        assert result.outcome.ok, lines
        folders.append(Path(result.study_dir))
    return folders


@pytest.mark.slow
def test_leaderboard_of_two_real_studies_gives_each_study_s_own_numbers(
    two_studies, tmp_path, capsys
) -> None:
    page = tmp_path / "board" / "index.html"
    assert main(["leaderboard", *map(str, two_studies), "--json", "--html", str(page)]) == 0
    board = json.loads(capsys.readouterr().out)
    rows = pd.DataFrame(board["rows"])
    assert set(rows["backbone"]) == {"glyph_cnn", "timm:test_resnet"} and board["kept_apart"] == []
    for folder in two_studies:
        assert main(["results", str(folder), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert main(["results", str(folder), "--compare", "--json"]) == 0
        ranks = {r["method"]: r["rank"] for r in json.loads(capsys.readouterr().out)["ranking"]}
        mine = rows[rows["study"] == folder.name].set_index("method")
        assert sorted(mine.index) == sorted(r["method"] for r in summary["auc"]) == ["frozen", "triplet"]
        for auc in summary["auc"]:
            assert (mine.loc[auc["method"], "auc"], mine.loc[auc["method"], "n_seeds"]) == (
                auc["auc"],
                auc["n_seeds"],
            )
        for ranked in summary["ranking"]:
            assert mine.loc[ranked["method"], "default_split"] == ranked["default_split"]
        assert mine["rank"].to_dict() == ranks
        reference = _from_definitions(folder)
        for method, (hardest, gain) in reference.items():
            assert mine.loc[method, "hardest_split"] == pytest.approx(hardest, abs=1e-12)
            assert mine.loc[method, "fewshot_gain"] == {"2": pytest.approx(gain, abs=1e-12)}

    expected = _robustness_by_polyfit(two_studies)
    found = {(r["study"], r["method"]): r["effective_robustness"] for r in board["effective_robustness"]}
    assert found == pytest.approx(expected, abs=1e-9) and len(found) == 4

    html = page.read_text()
    assert (page.parent / "plotly.min.js").stat().st_size > 1_000_000
    assert (
        '<script src="plotly.min.js"></script>' in html and "https://" not in html and "http://" not in html
    )
    assert html.count("Plotly.newPlot(") == 1 and "glyph_cnn" in html and "timm:test_resnet" in html


def _eval_rows(folder: Path) -> pd.DataFrame:
    """The completed test-class rows of the reported embedding (read by pyarrow, not DuckDB)."""
    frame = read_results(folder).to_pandas()
    keep = (frame["stage"] == "eval") & (frame["status"] == "completed") & (frame["subset"] == "test")
    return frame[keep & frame["weighting"].isna() & (frame["metric"] == "recall@1")]


def _from_definitions(folder: Path) -> dict[str, tuple[float, float]]:
    """Per method of a one-seed study: Recall@1 on its highest-FID split, and the mean over splits of the
    2-shot few-shot minus zero-shot Recall@1."""
    rows = _eval_rows(folder)
    out = {}
    for method, part in rows.groupby("method"):
        zero = part[part["shots"] == 0]
        hardest = zero.loc[zero["fid"].idxmax(), "value"]
        few = part[part["shots"] == 2].pivot(index="split_id", columns="kind", values="value")
        out[method] = (hardest, float((few["fewshot"] - few["zeroshot"]).mean()))
    return out


def _robustness_by_polyfit(folders: list[Path]) -> dict[tuple[str, str], float]:
    """Effective robustness from its definition: per harder split, ``np.polyfit`` of logit Recall@1 there on
    logit Recall@1 on the default split over every model of both studies; a method's mean residual."""
    models = []
    for folder in folders:
        zero = _eval_rows(folder).query("shots == 0").assign(study=folder.name)
        default = zero[zero["split_key"] == "0"].set_index(["study", "method", "seed"])["value"]
        harder = zero[zero["fid"] > zero.loc[zero["split_key"] == "0", "fid"].max()]
        models.append(harder.join(default.rename("x"), on=["study", "method", "seed"]))
    points = pd.concat(models)
    residuals: dict[tuple[str, str], list[float]] = {}
    for _, split in points.groupby("split_id"):
        slope, intercept = np.polyfit(_logit(split["x"]), _logit(split["value"]), 1)
        trend = 1 / (1 + np.exp(-(intercept + slope * _logit(split["x"]))))
        for study, method, r in zip(split["study"], split["method"], split["value"] - trend, strict=True):
            residuals.setdefault((study, method), []).append(r)
    return {key: float(np.mean(values)) for key, values in residuals.items()}
