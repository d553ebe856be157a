"""A study folder is run by one driver at a time.

On a local disk: an exclusive ``flock`` on ``<study>/.lock``. The kernel releases it when its holder exits,
however it exits, so a killed run never leaves a stale lock behind; the file only names the holder.

On an object store (no locks, no rename): a lease object ``<study>/.lock`` naming its owner (a fresh
token), the driver, and when it was last renewed. A driver takes the lease when there is none or the one
there has expired: it writes its own, waits ``SETTLE_S`` and reads it back; a driver that reads another
owner's token lost a race and is refused. The owner renews the lease every ``RENEW_S`` seconds (20, or a
quarter of the expiry) from a thread and deletes it when it ends. A driver killed without a word
(``kill -9``, a lost node) leaves its lease behind: it is stale once not renewed for ``LEASE_EXPIRY_S``
seconds, and until then a new driver is refused with the time it must wait (docs/cluster.md, 2a).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from study.results.layout import LOCK_FILE
from study.results.storage import ObjectPath, StudyPath

LEASE_EXPIRY_S = float(os.environ.get("OODML_LEASE_EXPIRY_S", "90"))
RENEW_S = min(20.0, LEASE_EXPIRY_S / 4)  # several renewals fit in one expiry, whatever it is set to
SETTLE_S = 2.0


class StudyLockedError(RuntimeError):
    """Another process is running this study."""


@contextmanager
def study_lock(study_dir: StudyPath) -> Iterator[None]:
    if isinstance(study_dir, ObjectPath):
        with _lease(study_dir / LOCK_FILE):
            yield
        return
    with _flock(study_dir):
        yield


def _holder() -> str:
    return f"oodml run pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%F %T')}"


@contextmanager
def _flock(study_dir: Path) -> Iterator[None]:
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
        handle.write(_holder())
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_lease(path: ObjectPath) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # not a lease (written by hand, or damaged): treated as expired
        return {"owner": None, "holder": "an unreadable lease", "renewed": 0.0}


def _write_lease(path: ObjectPath, owner: str, holder: str) -> None:
    path.write_text(json.dumps({"owner": owner, "holder": holder, "renewed": time.time()}))


@contextmanager
def _lease(path: ObjectPath) -> Iterator[None]:
    study = path.parent
    current = _read_lease(path)
    if current is not None:
        age = time.time() - float(current.get("renewed", 0.0))
        if age <= LEASE_EXPIRY_S:
            raise StudyLockedError(
                f"study folder {study} is in use by {current.get('holder')} (its lease {path} was renewed "
                f"{age:.0f} s ago); wait for that run to finish (or stop it), then run or resume again. A "
                f"driver that died leaves its lease to expire {LEASE_EXPIRY_S:.0f} s after its last renewal"
            )
    owner, holder = secrets.token_hex(16), _holder()
    _write_lease(path, owner, holder)
    time.sleep(SETTLE_S)
    won = _read_lease(path)
    if won is None or won.get("owner") != owner:
        raise StudyLockedError(
            f"study folder {study}: another driver took its lease at the same moment "
            f"({(won or {}).get('holder', 'and released it')}); run or resume again once it has finished"
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_S):
            try:
                seen = _read_lease(path)
            except OSError:  # the store is away: renew at the next beat (the lease outlives a short outage)
                continue
            if seen is not None and seen.get("owner") not in (owner, None):
                print(
                    f"oodml: warning: the lease {path} was taken by {seen.get('holder')}: two drivers may be "
                    "running this study; stop one of them",
                    file=sys.stderr,
                )
                return
            try:
                _write_lease(path, owner, holder)
            except OSError:
                continue

    thread = threading.Thread(target=renew, name="oodml-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            if (_read_lease(path) or {}).get("owner") == owner:
                path.unlink(missing_ok=True)
        except OSError:  # the store is away: the lease expires on its own
            pass
