"""A study folder is run by one driver at a time: an exclusive ``flock`` on ``<study>/.lock``.

The kernel releases the lock when its holder exits, however it exits, so a killed run never leaves a
stale lock behind; the file only names the holder for the error message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from study.results.layout import LOCK_FILE


class StudyLockedError(RuntimeError):
    """Another process is running this study."""


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    study_dir.mkdir(parents=True, exist_ok=True)
    with open(study_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StudyLockedError(
                f"study folder {study_dir} is in use by {holder}; wait for that run to finish "
                "(or stop it), then run or resume again"
            ) from None
        handle.truncate(0)
        handle.write(f"oodml run pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%F %T')}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
