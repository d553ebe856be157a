"""``oodml ui STUDY_DIR``: the MLflow UI for a study's store, bound to 127.0.0.1 unless asked otherwise."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import yaml

from study.results.layout import MLFLOW_ARTIFACTS_DIR, MLFLOW_DB, SPEC_FILE, default_tracking_uri
from study.results.storage import ObjectPath, Where, locate

LOOPBACK = "127.0.0.1"


def ui_command(
    study_dir: Where, *, host: str = LOOPBACK, port: int = 5000, backend: str | None = None
) -> list[str]:
    """The ``mlflow server`` command line for a study's store (its SQLite file, or ``backend``: the
    database URI a study on an object store logged to) and its artifact folder."""
    study_dir = locate(study_dir).resolve()
    artifacts = study_dir / MLFLOW_ARTIFACTS_DIR
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend or default_tracking_uri(study_dir),
        "--artifacts-destination",
        str(artifacts) if isinstance(artifacts, ObjectPath) else artifacts.as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dir",
        type=locate,
        help="the study folder (holds mlflow.db; on s3://bucket/prefix, its study.yaml names the store)",
    )
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default: 5000)")
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help=f"interface to bind (default: {LOOPBACK}, this machine only; 0.0.0.0 exposes the UI to the network)",
    )
    parser.add_argument(
        "--open", action="store_true", help="open the study's runs page in a web browser once the UI answers"
    )


def ui(args: argparse.Namespace) -> int:
    backend = None
    if isinstance(args.study_dir, ObjectPath):  # no SQLite file there: the store its saved spec names
        backend = _saved_tracking_uri(args.study_dir)
        if urlparse(backend).scheme.startswith(("http", "https")):
            print(f"study {args.study_dir} logs to the MLflow server {backend}: browse it there", flush=True)
            return 0
        store = backend
    else:
        store = Path(args.study_dir).resolve() / MLFLOW_DB
        if not store.is_file():
            raise FileNotFoundError(
                f"no MLflow store at {store}; a study that logged to a tracking server is browsed on that server"
            )
    print(
        f"MLflow UI for {store} at http://{args.host}:{args.port}, listening on {args.host} "
        f"({reach(args.host)}); Ctrl-C stops it",
        flush=True,
    )
    page = runs_page(args.study_dir, args.host, args.port, backend)
    if page:  # MLflow 3's UI opens on its GenAI overview: the study's runs are one page further
        print(f"the study's runs: {page}", flush=True)
    opener = (lambda: _open_when_up(page)) if args.open and page else None
    command = ui_command(args.study_dir, host=args.host, port=args.port, backend=backend)
    return run_process_group(command, on_start=opener)


def runs_page(study_dir: Where, host: str, port: int, backend: str | None = None) -> str | None:
    """The UI's page listing the runs of the study's experiment (``storage.experiment``, else the study's
    name, from its saved ``study.yaml``); None when the folder holds no saved spec or no such experiment."""
    from mlflow import MlflowClient  # only when the command runs

    saved = locate(study_dir) / SPEC_FILE
    if not saved.is_file():
        return None
    spec = yaml.safe_load(saved.read_text()) or {}
    name = (spec.get("storage") or {}).get("experiment") or spec.get("name")
    tracking = backend or default_tracking_uri(locate(study_dir).resolve())
    experiment = MlflowClient(tracking).get_experiment_by_name(name) if name else None
    if experiment is None:
        return None
    shown = LOOPBACK if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/#/experiments/{experiment.experiment_id}/runs"


def _open_when_up(page: str, timeout_s: float = 60) -> None:
    """Open ``page`` in a browser once the server answers (in a thread: the server runs meanwhile)."""
    import urllib.request
    import webbrowser

    def wait_and_open() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(page.split("#", 1)[0], timeout=2):
                    webbrowser.open(page)
                    return
            except OSError:
                time.sleep(0.5)

    threading.Thread(target=wait_and_open, daemon=True).start()


def _saved_tracking_uri(study_dir: ObjectPath) -> str:
    """``storage.tracking_uri`` of the spec saved in a study folder on an object store."""
    saved = study_dir / SPEC_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"{study_dir} holds no {SPEC_FILE}: is it a study folder?")
    return (yaml.safe_load(saved.read_text()).get("storage") or {})["tracking_uri"]


def run_process_group(
    command: list[str], grace_s: float = 10, on_start: Callable[[], None] | None = None
) -> int:
    """Run ``command`` in a session of its own until it exits, Ctrl-C or SIGTERM; on the way out stop its
    whole process group. ``mlflow server`` starts uvicorn and huey workers: stopping only the direct child
    would leave them running (re-parented to init). ``on_start`` is called once it has started."""
    process = subprocess.Popen(command, start_new_session=True)  # its own session: Ctrl-C reaches us only
    if on_start is not None:
        on_start()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process_group(process, grace_s)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_process_group(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM to ``process``'s group (its pid: it leads a session), SIGKILL to what is left after
    ``grace_s``; the group outlives its leader, so stragglers are found even after the leader exited."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is empty: all stopped
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.1)
    process.wait()


def _group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the leader so that it does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def reach(host: str) -> str:
    """Who can connect to a server bound to ``host``, in words."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "this machine only" if host == "localhost" else f"the network of interface {host}"
    if address.is_loopback:
        return "this machine only"
    return "every network this machine is on" if address.is_unspecified else f"the network of {host}"
