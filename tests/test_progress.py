"""Progress of long commands (tasks/progress.py): a bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from study.cli import main
from tasks.progress import BYTES, Progress, tracked


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_with_time_left_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(4, "work", unit="step", stream=stream, every_s=0) as progress:
        for _ in range(4):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("work: 1/4 steps (25%), ") and "s left" in lines[0]
    assert lines[-1].startswith("work: 4/4 steps (100%), ") and lines[-1].endswith(", done")
    assert len(lines) == 5  # one per update (every_s 0), and the final one
    batches = io.StringIO()
    with Progress(2, "features", unit="batch", stream=batches) as progress:
        progress.update(2)
    assert batches.getvalue().startswith("features: 2/2 batches (100%)")


def test_plain_lines_wait_their_interval_and_quiet_says_nothing() -> None:
    stream = io.StringIO()
    with Progress(100, "work", stream=stream) as progress:  # every 10 s: only the final line
        for _ in range(100):
            progress.update()
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[-1]]
    quiet = io.StringIO()
    with Progress(3, "work", stream=quiet, quiet=True) as progress:
        progress.update(3)
    assert quiet.getvalue() == "" and progress.done == 3


def test_a_terminal_gets_a_bar_and_bytes_read_as_megabytes() -> None:
    terminal = Terminal()
    assert list(tracked(range(3), 3, "work")) == [0, 1, 2]  # (to stderr: not captured here)
    with Progress(2_000_000, "download", unit=BYTES, stream=terminal, initial=500_000) as progress:
        progress.update(1_500_000)
    shown = terminal.getvalue()
    assert "|" in shown and "download" in shown  # tqdm's bar
    assert shown.rstrip().splitlines()[-1].startswith("download: 2.0/2.0 MB (100%)")


def test_oodml_evaluate_shows_its_ranking(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "e.npz"
    np.savez(path, embeddings=rng.normal(size=(60, 8)).astype(np.float32), labels=np.repeat(np.arange(20), 3))
    assert main(["evaluate", str(path), "--no-nmi"]) == 0
    assert "ranking: 1/1 blocks (100%)" in capsys.readouterr().err
