"""A result file is the completion marker of a trial, so a crash while writing one must never leave
anything that reads as a result: crash debris and truncated files are skipped (and reported), a crash
before the rename keeps the previous file, and a writer SIGKILLed mid-write leaves whole row sets only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

import study.results.files as files
from study.results import (
    UnreadableResultWarning,
    completed_trial_ids,
    format_summary,
    read_curves,
    read_results,
    result_path,
    write_trial_result,
)
from tests.records import make_record, write_grid

REPO = Path(__file__).resolve().parents[2]


def test_unreadable_and_partial_files_are_skipped_and_reported(tmp_path):
    write_grid(tmp_path, methods=("margin",))
    good = read_results(tmp_path).num_rows
    (tmp_path / "results" / ".eval-margin-9-0.parquet.1234.tmp").write_bytes(b"crash debris")
    broken = tmp_path / "results" / "eval-broken.parquet"
    broken.write_bytes(result_path(tmp_path, "margin-0-0", "eval").read_bytes()[:300])
    with pytest.warns(UnreadableResultWarning, match="eval-broken.parquet"):
        assert read_results(tmp_path).num_rows == good
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableResultWarning)
        assert completed_trial_ids(tmp_path) == {"margin-0-0", "margin-1-0", "margin-2-0"}
    summary = format_summary(tmp_path)
    assert "unreadable, skipped: eval-broken.parquet" in summary and "1 leftover .tmp" in summary


def test_a_crash_before_the_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    rec = make_record(r1=0.8)
    path = write_trial_result(tmp_path, rec, stage="eval", study="demo")

    def crash(*args):
        raise KeyboardInterrupt  # killed between writing the temporary file and renaming it

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_trial_result(tmp_path, make_record(r1=0.1), stage="eval", study="demo")
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    values = read_results(tmp_path).filter(pa.compute.equal(read_results(tmp_path)["metric"], "recall@1"))
    assert 0.8 in values["value"].to_pylist() and 0.1 not in values["value"].to_pylist()


def test_a_writer_killed_mid_write_never_leaves_a_readable_partial_file(tmp_path):
    writer = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.records import make_record, SPLITS
from study.results import write_trial_result
print("ready", flush=True)
i = 0
while True:  # rewrite the same three trials with growing curves until killed
    i += 1
    record = make_record(split=SPLITS[i % 3], epochs=1 + i % 400, r1=i / 1e6)
    write_trial_result({str(tmp_path)!r}, record, stage="eval", study="demo")
"""
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # ~20 writes, most of the loop's time is spent writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        table = read_results(tmp_path)
        curves = read_curves(tmp_path)
    assert set(table["trial_id"].to_pylist()) <= {"margin-0-0", "margin-1-0", "margin-2-0"}
    assert table.num_rows == 21 * len(completed_trial_ids(tmp_path))  # whole row sets of 21 rows
    assert set(curves["trial_id"].to_pylist()) >= set(table["trial_id"].to_pylist())
