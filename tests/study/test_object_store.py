"""Study folders on an object store (study/results/storage.py), against a real S3 server (SeaweedFS on
127.0.0.1, tests/s3server.py): the path semantics, the results written and read there equal to a local
folder's, ``oodml results`` and ``oodml report`` on an ``s3://`` folder, and the store going away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from study.results import (
    SupersededResults,
    completed_trial_ids,
    read_curves,
    read_results,
    result_path,
    write_trial_result,
)
from study.results.layout import DASHBOARD_DIR, DASHBOARD_PAGE, SUPERSEDED_DIR
from study.results.storage import ObjectPath, is_remote, locate
from tests.records import SPLITS, make_record, write_grid

REPO = Path(__file__).resolve().parents[2]


def test_locate_gives_paths_for_local_folders_and_object_paths_for_s3():
    assert locate("runs/x") == Path("runs/x") and isinstance(locate(Path("/tmp/x")), Path)
    where = locate("s3://bucket/some//prefix/")
    assert isinstance(where, ObjectPath) and str(where) == "s3://bucket/some/prefix"
    assert str(where / "results" / "a.parquet") == "s3://bucket/some/prefix/results/a.parquet"
    assert (where / "a.parquet").name == "a.parquet" and (where / "a.parquet").stem == "a"
    assert (where / "results").parent == where and locate("s3://bucket").parent == locate("s3://bucket")
    assert is_remote("s3://b/p") and not is_remote("/tmp/s3:/x") and locate(where) is where
    with pytest.raises(ValueError, match="not on gs://"):
        locate("gs://bucket/prefix")
    with pytest.raises(ValueError, match="needs a bucket"):
        locate("s3://")


def test_objects_behave_as_the_files_a_study_folder_uses(s3_root):
    root = locate(s3_root)
    assert not root.exists() and list(root.glob("*.parquet")) == []
    (root / "results" / "b.parquet").write_bytes(b"bee")
    (root / "results" / "a.parquet").write_text("ay")
    (root / "results" / ".hidden.tmp").write_bytes(b"")
    (root / "ray" / "eval-1" / "trial_x" / "error.txt").write_text("boom")
    assert root.is_dir() and (root / "results").is_dir() and (root / "results" / "a.parquet").is_file()
    assert [p.name for p in (root / "results").glob("*.parquet")] == ["a.parquet", "b.parquet"]
    assert [p.name for p in root.glob("eval-*/trial_*/error.txt")] == []
    assert [p.read_text() for p in (root / "ray").glob("eval-*/trial_*/error.txt")] == ["boom"]
    moved = (root / "results" / "a.parquet").replace(root / "superseded" / "a.parquet")
    assert moved.read_bytes() == b"ay" and not (root / "results" / "a.parquet").exists()
    (root / "results" / "b.parquet").unlink()
    (root / "results" / "b.parquet").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        (root / "results" / "b.parquet").unlink()
    with pytest.raises(FileNotFoundError):
        (root / "nothing").read_bytes()


def _timeless(table: pa.Table) -> pa.Table:
    """Result rows without ``finished_at``, the one column that differs between two writes of a record."""
    return table.drop_columns(["finished_at"])


def test_results_on_s3_read_as_the_same_results_on_disk(s3_root, tmp_path):
    for where in (tmp_path, s3_root):
        write_grid(where, seeds=(0, 1))
    local, remote = _timeless(read_results(tmp_path)), _timeless(read_results(s3_root))
    assert remote.num_rows == local.num_rows > 0 and remote.equals(local)
    assert read_curves(s3_root).equals(read_curves(tmp_path))
    assert completed_trial_ids(s3_root, "eval") == completed_trial_ids(tmp_path, "eval")
    assert str(result_path(s3_root, "margin-0-0", "eval")).startswith(f"{s3_root}/results/")


def test_a_cell_measured_again_moves_the_earlier_row_set_aside_on_s3(s3_root):
    write_grid(s3_root, methods=("margin",))
    superseded = SupersededResults(s3_root, "eval")
    old_id = "margin-0-0"
    again = make_record("margin", SPLITS[0], 0, 0.9, trial_id="margin-0-0-again")  # old_id's cell
    write_trial_result(s3_root, again, stage="eval", study="demo")
    assert superseded.completed("margin-0-0-again") == [old_id]
    assert (locate(s3_root) / SUPERSEDED_DIR / "results" / result_path(s3_root, old_id, "eval").name).exists()
    assert old_id not in set(read_results(s3_root)["trial_id"].to_pylist())


def _oodml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "study.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


@pytest.mark.slow
def test_oodml_results_and_report_read_a_study_folder_on_s3(s3_root, tmp_path):
    write_grid(tmp_path, seeds=(0, 1))
    write_grid(s3_root, seeds=(0, 1))
    local, remote = _oodml("results", str(tmp_path)), _oodml("results", s3_root)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.replace(f"{s3_root}/results", "RESULTS") == local.stdout.replace(
        f"{tmp_path}/results", "RESULTS"
    )
    compare = _oodml("results", s3_root, "--compare", "--json")
    assert (
        compare.returncode == 0
        and compare.stdout == _oodml("results", str(tmp_path), "--compare", "--json").stdout
    )
    report = _oodml("report", s3_root)
    assert report.returncode == 0, report.stderr
    page = locate(s3_root) / DASHBOARD_DIR / DASHBOARD_PAGE
    assert f"wrote {page}" in report.stdout and "data:image/png;base64" in page.read_text()
    assert list((locate(s3_root) / DASHBOARD_DIR).glob("*.png"))


def test_a_missing_study_folder_on_s3_is_named(s3_root):
    run = _oodml("results", s3_root)
    assert run.returncode != 0 and f"{s3_root} has no results/ folder" in run.stderr


def test_writes_wait_for_a_store_that_went_away_and_came_back(s3_server, s3_root, tmp_path):
    """The store is down for a few seconds while a trial's results are written: the write is retried
    with backoff and lands once; nothing is lost or written twice."""
    write_grid(s3_root, methods=("margin",))
    write_grid(tmp_path, methods=("margin", "multisim"))  # what the folder must hold afterwards
    late = [make_record("multisim", split, 0) for split in SPLITS]
    s3_server.stop()
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for record in late:
                write_trial_result(s3_root, record, stage="eval", study="demo")
        except BaseException as err:  # reported by the test
            errors.append(err)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(4)
    assert not done.is_set()  # waiting for the store, not failed
    s3_server.start()
    writer.join(120)
    assert done.is_set() and not errors, errors
    assert _timeless(read_results(s3_root)).equals(_timeless(read_results(tmp_path)))  # once each, none lost


def test_refused_credentials_are_not_retried(s3_root):
    """Wrong keys in the standard variables: the error is the store's, at once, not a wait for an outage."""
    script = (
        "import sys; from study.results.storage import locate\n"
        "try:\n    (locate(sys.argv[1]) / 'x').write_bytes(b'x')\n"
        "except OSError as err:\n    print(type(err).__name__, err)"
    )
    env = dict(os.environ, AWS_ACCESS_KEY_ID="nobody", AWS_SECRET_ACCESS_KEY="wrong")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script, s3_root], capture_output=True, text=True, env=env)
    assert time.monotonic() - started < 30 and run.stdout.startswith("OSError"), run.stdout + run.stderr
    assert "INVALID_ACCESS_KEY_ID" in run.stdout or "ACCESS_DENIED" in run.stdout, run.stdout


def test_parquet_written_through_the_layer_is_one_object(s3_root):
    """No temporary or partial object is ever listed: the results folder holds final names only."""
    write_grid(s3_root, methods=("margin",))
    names = [p.name for p in (locate(s3_root) / "results").iterdir()]
    assert names and all(n.endswith(".parquet") and not n.startswith(".") for n in names)
    assert isinstance(read_results(s3_root), pa.Table)


def test_one_driver_holds_a_study_lease_on_s3_and_a_stale_one_expires(s3_root, monkeypatch):
    import study.lock as lock

    monkeypatch.setattr(lock, "SETTLE_S", 0.1)
    lease = locate(s3_root) / ".lock"
    with lock.study_lock(locate(s3_root)):
        assert "oodml run pid" in lease.read_text()
        with pytest.raises(lock.StudyLockedError, match=r"is in use by oodml run pid .* renewed \d+ s ago"):
            with lock.study_lock(locate(s3_root)):
                pass
    assert not lease.exists()  # released
    # A driver killed without a word leaves its lease: refused until it expires, then taken over.
    stale = {"owner": "gone", "holder": "oodml run pid 1 on elsewhere", "renewed": time.time()}
    lease.write_text(json.dumps(stale))
    with pytest.raises(lock.StudyLockedError, match="pid 1 on elsewhere.*expire 90 s after"):
        with lock.study_lock(locate(s3_root)):
            pass
    monkeypatch.setattr(lock, "LEASE_EXPIRY_S", 0.5)
    time.sleep(0.6)
    with lock.study_lock(locate(s3_root)):
        assert "gone" not in lease.read_text()


def test_a_lease_lost_to_a_racing_driver_is_refused(s3_root, monkeypatch):
    """Two drivers that both found no lease: the one whose token is not read back stops."""
    import study.lock as lock

    lease = locate(s3_root) / ".lock"
    monkeypatch.setattr(lock, "SETTLE_S", 1.0)
    rival = threading.Timer(
        0.3, lambda: lease.write_text('{"owner": "rival", "holder": "the rival", "renewed": 0}')
    )
    rival.start()
    with pytest.raises(lock.StudyLockedError, match="another driver took its lease at the same moment"):
        with lock.study_lock(locate(s3_root)):
            pass
    rival.join()


def test_oodml_ui_on_s3_opens_the_store_the_saved_spec_names(s3_root, tmp_path):
    from study.tracking import ui_command

    saved = locate(s3_root) / "study.yaml"
    saved.write_text(
        yaml.safe_dump({"name": "x", "storage": {"root": s3_root, "tracking_uri": "http://mlflow:5000"}})
    )
    told = _oodml("ui", s3_root)
    assert (
        told.returncode == 0
        and "logs to the MLflow server http://mlflow:5000: browse it there" in told.stdout
    )
    database = f"sqlite:///{tmp_path / 'x.db'}"
    command = ui_command(s3_root, backend=database)
    assert command[command.index("--backend-store-uri") + 1] == database
    assert command[command.index("--artifacts-destination") + 1] == f"{s3_root}/mlartifacts"


def test_a_run_whose_store_is_away_past_the_limit_says_so(s3_server, s3_root, tmp_path, tiny_spec):
    spec = tiny_spec(s3_root)
    spec["storage"] |= {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    s3_server.stop()
    try:
        env = dict(os.environ, OODML_STORE_OUTAGE_LIMIT_S="2")
        run = subprocess.run(
            [sys.executable, "-m", "study.cli", "run", str(config)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
    finally:
        s3_server.start()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "oodml: error: " in run.stderr and "the object store did not answer for 2 s" in run.stderr
    assert "Traceback" not in run.stderr
