"""A real PostgreSQL server on 127.0.0.1 for the MLflow tests (Debian's ``postgresql``), its data in a
folder of the test's, and an ``mlflow server`` (backed by it, or by any store MLflow takes).

PostgreSQL refuses to run as root, so as root its commands run as the ``postgres`` user (``runuser``);
as anyone else they run as that user. ``stop`` stops the server it started (``pg_ctl stop``, then its
process group) and nothing else.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port

USER, DATABASE = "oodml", "mlflow"


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``), the newest; None if absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    folder: Path
    port: int = field(default_factory=free_port)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, check=True, timeout=120)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def uri(self, database: str = DATABASE) -> str:
        """SQLAlchemy's URI, through psycopg 3 (``psycopg[binary]``)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        bin_dir = postgres_bin()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        self._run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)

    def log(self) -> str:
        path = self.folder / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        bin_dir = postgres_bin()
        try:
            self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # pg_ctl could not stop it: the postmaster of this data folder only
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@dataclass
class MlflowServer:
    """``mlflow server`` with its runs in ``backend`` and its artifacts proxied to ``artifacts`` (a folder,
    or an ``s3://`` URI: the server writes there with the standard AWS variables of its environment)."""

    folder: Path
    backend: str
    artifacts: str
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, seconds: float = 120) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", self.backend, "--artifacts-destination", self.artifacts]
        command += ["--workers", str(self.workers)]
        with (self.folder / "mlflow-server.log").open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.folder
            )
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not answer:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        return (self.folder / "mlflow-server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(15)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # workers left in the group
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None
