"""Driver-side recording of finished trials (Tune callbacks), and progress output.

Only the driver writes: the MLflow store (one SQLite writer) and the results dataset. A finished
trial's MLflow child run is logged first and its result rows last, since the rows are the completion
marker resume relies on: a crash in between re-runs the trial, never loses or double-counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs
from ray import tune

from study.expand import EVAL, PlannedTrial
from study.results import SupersededResults, write_trial_result
from study.results.layout import SUPERSEDED_DIR
from study.results.storage import S3
from study.trainable import ERROR, RECORD, WHERE, trial_workdir
from tasks.identity import config_split, describe
from tasks.record import TrialRecord
from tasks.train import LAST_CHECKPOINT


def failed_record(trial: PlannedTrial, error: str) -> TrialRecord:
    """The record of a trial that produced none: its identity as known before it ran (its split's FID,
    class counts and shift measures too, unless the split file cannot be read), and its error."""
    try:
        split = config_split(trial.config)
    except (OSError, ValueError):  # SplitFileError included: the split file may be why the trial failed
        split = None
    identity = describe(trial.config, split, trial_id=trial.trial_id)
    return TrialRecord.failed(
        identity,
        error,
        hyperparameters=dict(trial.config.method.hyperparameters),
        config=trial.config.model_dump(mode="json"),
    )


class TrialLog:
    """Writes finished trials: MLflow child run, then result rows; then drops a completed trial's
    resume checkpoint (its folder keeps the selected weights) and sets aside the row sets of earlier
    evaluation trials of the same cell (``SupersededResults``). Counts what it wrote."""

    def __init__(self, study_dir: Path, study: str, tracker, echo: Callable[[str], None] = print) -> None:
        self.study_dir, self.study, self.tracker, self.echo = study_dir, study, tracker, echo
        self.completed: list[str] = []
        self.failed: list[str] = []
        self.superseded = SupersededResults(study_dir, EVAL)

    def record(
        self, trial: PlannedTrial, record: TrialRecord, checkpoint: str | None, where: dict | None = None
    ) -> None:
        error = record.error
        run_id = self.tracker.log_trial(
            record,
            stage=trial.stage,
            checkpoint_dir=checkpoint if trial.stage == EVAL else None,
            tuned=trial.tuned,
        )
        write_trial_result(
            self.study_dir,
            record,
            stage=trial.stage,
            study=self.study,
            mlflow_run_id=run_id,
            tuned=trial.tuned,
            where=where,
        )
        if not error:  # recorded for good: the resume state (optimizer and all) is dead weight now
            (trial_workdir(self.study_dir, trial.trial_id) / LAST_CHECKPOINT).unlink(missing_ok=True)
        if not error and trial.stage == EVAL:
            earlier = self.superseded.completed(trial.trial_id)
            if earlier:
                self.tracker.mark_superseded(earlier, EVAL, by=trial.trial_id)
                self.echo(
                    f"[eval] {trial.label} measured again under the current settings: the results of "
                    f"trial {', '.join(earlier)} moved to {SUPERSEDED_DIR}/"
                )
        (self.failed if error else self.completed).append(trial.label)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed without an error message"


def trial_error(trial) -> str:
    """The last line of a failed Tune trial's error (e.g. ``ValueError: ...`` or why its worker died).

    Tune appends the error to the trial's local ``error.txt`` before calling the callbacks;
    ``trial.get_error()`` reads the copy in storage, which is only synced later.
    """
    local = trial.error_file
    text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error()
    return _last_line(text)


class Recorder(tune.Callback):
    """Hands every finished Tune trial to the log; ``resolve`` maps a Tune config to its planned trial."""

    def __init__(self, resolve: Callable[[dict], PlannedTrial], log: TrialLog) -> None:
        self.resolve, self.log = resolve, log

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        planned = self.resolve(trial.config)
        result = trial.last_result or {}
        if RECORD in result:
            record = TrialRecord.from_json(result[RECORD])
        else:
            record = failed_record(
                planned, result.get(ERROR) or "the trial ended without reporting its record"
            )
        self.log.record(planned, record, _checkpoint_location(trial.checkpoint), _where(result))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        planned = self.resolve(trial.config)
        self.log.record(planned, failed_record(planned, trial_error(trial)), None, _where(trial.last_result))


def _checkpoint_location(checkpoint) -> str | None:
    """Where a Tune checkpoint lies, as ``study.results.storage.locate`` reads it: its path, or an ``s3://``
    URI when Tune stores the study's experiments on S3 (its ``path`` is then ``bucket/key``)."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint.filesystem, pafs.S3FileSystem):
        return f"{S3}://{checkpoint.path}"
    return checkpoint.path


def _where(result: dict | None) -> dict:
    """The node and host of a trial's last report (``study.trainable.WHERE``; None before its first)."""
    return {key: (result or {}).get(key) for key in WHERE}


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress(tune.Callback):
    """Prints done / running / failed and an ETA after each finished trial and every ``interval`` s."""

    def __init__(self, label: str, total: int, log: TrialLog, echo: Callable[[str], None], interval=30.0):
        self.label, self.total, self.log, self.echo, self.interval = label, total, log, echo, interval
        self.started = self.printed = time.monotonic()
        self.base = (len(log.completed), len(log.failed))

    def _line(self, running: int) -> str:
        done = len(self.log.completed) - self.base[0]
        failed = len(self.log.failed) - self.base[1]
        elapsed = time.monotonic() - self.started
        finished = done + failed
        eta = f", ETA {_duration(elapsed / finished * (self.total - finished))}" if finished else ""
        return (
            f"[{self.label}] {done}/{self.total} done, {running} running, {failed} failed, "
            f"{_duration(elapsed)} elapsed{eta}"
        )

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self.printed >= self.interval:
            self.printed = time.monotonic()
            self.echo(self._line(sum(t.status == "RUNNING" for t in trials)))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.echo(self._line(sum(t.status == "RUNNING" and t is not trial for t in trials)))

    on_trial_error = on_trial_complete
