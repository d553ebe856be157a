"""What a trial on a Ray worker reads and writes when its study folder lies on an object store.

``tasks/`` trains in a local folder and reads local split files; it knows nothing of object stores. For a
study folder on S3 the trainable gives it:

- ``TrialFolder``: the trial's folder in the node's scratch space (``study.results.storage.scratch_path``),
  filled from the store's ``<study>/trials/<id>/`` when the trial starts (a trial resumed on any node finds
  its last epoch checkpoint) and copied back after every epoch and at the end, one PUT per changed file;
- ``localized``: the trial config with every split file on the store replaced by its local copy (a split
  file's location is not part of the trial's identity, ``tasks.identity``).

For a local study folder both are the identity: the trial works in ``<study>/trials/<id>/`` itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from study.results.storage import ObjectPath, StudyPath, is_remote, local_copy, scratch_path
from tasks.config import DataConfig, TrialConfig


class TrialFolder:
    """A trial's working folder: ``stored`` itself when local, else a scratch copy kept in step with it."""

    def __init__(self, stored: StudyPath) -> None:
        self.stored = stored
        self.local = scratch_path(stored) if isinstance(stored, ObjectPath) else stored
        self._pushed: dict[str, tuple[int, int]] = {}  # file -> (size, mtime_ns) when last uploaded

    @property
    def remote(self) -> bool:
        return isinstance(self.stored, ObjectPath)

    def pull(self) -> Path:
        """Make the scratch copy hold exactly the stored folder's files (nothing to do for a local folder:
        it is the stored one); returns ``local``."""
        if isinstance(self.stored, ObjectPath):
            shutil.rmtree(self.local, ignore_errors=True)  # an earlier attempt's files are not the store's
            if self.stored.is_dir():
                local_copy(self.stored)
            self._pushed = self._state() if self.local.is_dir() else {}
        self.local.mkdir(parents=True, exist_ok=True)
        return self.local

    def push(self) -> None:
        """Upload the files that changed since the last push (nothing to do for a local folder)."""
        if not isinstance(self.stored, ObjectPath):
            return
        state = self._state()
        for name, seen in state.items():
            if self._pushed.get(name) != seen:
                (self.stored / name).write_bytes((self.local / name).read_bytes())
        self._pushed = state

    def stored_path(self, local: str | Path) -> str:
        """Where a file of the local folder is kept in the study folder (the record names that)."""
        if not isinstance(self.stored, ObjectPath):
            return str(local)
        return str(self.stored / Path(local).relative_to(self.local).as_posix())

    def _state(self) -> dict[str, tuple[int, int]]:
        files = (p for p in self.local.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {p.relative_to(self.local).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def localized(config: TrialConfig) -> TrialConfig:
    """``config`` with its split files (the trial's and each ``evaluate_on`` entry's) read from local copies."""

    def local(data: DataConfig) -> DataConfig:
        if not is_remote(data.split_file):
            return data
        return data.model_copy(update={"split_file": str(local_copy(data.split_file))})

    return config.model_copy(
        update={"data": local(config.data), "evaluate_on": [local(d) for d in config.evaluate_on]}
    )
