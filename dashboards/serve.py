"""``oodml report --serve``: the dashboard on 127.0.0.1, rebuilt from the results dataset as a study runs.

Each request for the page compares the watched state (result files, the status tables, whether the
driver is alive) with the one of the last build and rebuilds when it changed. Every ``RELOAD_S`` seconds the
served page asks for itself again and reloads only when the build it gets differs (its footer says when it
was built), so an open browser follows the study and a chart keeps its zoom and hidden methods while
nothing changes. The file on disk carries no reload.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from dashboards.report import build_report
from study.results.layout import (
    DASHBOARD_DIR,
    DASHBOARD_PAGE,
    PROJECTIONS_DIR,
    RESULTS_DIR,
    TRIAL_STATUS_FILE,
    status_path,
)
from study.results.status import read_driver

RELOAD_S = 15
# Added to the served page: reload when the server's build of the page differs from the one shown.
RELOAD_SCRIPT = f"""<script>
setInterval(() => fetch(location.href, {{cache: "no-store"}}).then(response => response.text()).then(page => {{
  const built = new DOMParser().parseFromString(page, "text/html").querySelector("footer").textContent;
  if (built !== document.querySelector("footer").textContent) location.reload();
}}).catch(() => {{}}), {RELOAD_S * 1000});
</script>
"""
HOST = "127.0.0.1"


def watched_state(study_dir: Path) -> tuple:
    """What the page depends on that changes while a study runs."""
    files = [(p, p.stat()) for d in (RESULTS_DIR, PROJECTIONS_DIR) for p in (study_dir / d).glob("*.parquet")]
    tables = sorted((str(p), stat.st_mtime_ns, stat.st_size) for p, stat in files)
    trials = status_path(study_dir, TRIAL_STATUS_FILE)
    trials_state = (trials.stat().st_mtime_ns, trials.stat().st_size) if trials.exists() else None
    driver = read_driver(study_dir)  # not its heartbeat, renewed every few seconds: whether it is alive
    driver_state = (driver.pid, driver.started_at, driver.state, driver.alive()) if driver else None
    return tables, trials_state, driver_state


class LiveReport:
    """A study's dashboard, rebuilt on ``refresh`` when the watched state changed since the last build."""

    def __init__(self, study_dir: str | Path) -> None:
        self.study_dir = Path(study_dir)
        self.folder = self.study_dir / DASHBOARD_DIR
        self._built: tuple | None = None
        self._lock = threading.Lock()

    def refresh(self) -> Path:
        with self._lock:  # one build at a time; concurrent requests wait for it
            state = watched_state(self.study_dir)
            if state != self._built:
                build_report(self.study_dir)
                self._built = state
        return self.folder / DASHBOARD_PAGE


class _Handler(SimpleHTTPRequestHandler):
    """Serves the page (refreshed, with ``RELOAD_SCRIPT``) and the files next to it (figures, Plotly.js);
    nothing else."""

    def __init__(self, *args, live: LiveReport, **kwargs) -> None:
        self.live = live
        super().__init__(*args, directory=str(live.folder), **kwargs)

    def do_GET(self) -> None:
        if urlsplit(self.path).path not in ("/", "/index.html"):
            super().do_GET()
            return
        try:
            page = self.live.refresh().read_bytes()
        except Exception as err:  # the study folder vanished, a figure failed...: say so, keep serving
            self.send_error(500, f"could not build the dashboard: {type(err).__name__}: {err}")
            return
        body = page.replace(b"</body>", RELOAD_SCRIPT.encode() + b"</body>", 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the browser left (reloaded, closed the tab) before the page was sent

    def log_message(self, format: str, *args) -> None:  # quiet: one line per request drowns the console
        return


def make_server(live: LiveReport, port: int) -> ThreadingHTTPServer:
    """An HTTP server bound to 127.0.0.1 only (``port`` 0: any free port)."""
    return ThreadingHTTPServer((HOST, port), partial(_Handler, live=live))


def serve(live: LiveReport, port: int, echo: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    server = make_server(live, port)
    echo(
        f"serving the dashboard of {live.study_dir} at http://{HOST}:{server.server_port}/ "
        f"(bound to {HOST} only: this machine). It is rebuilt from the results dataset when that changes; "
        f"an open page reloads within {RELOAD_S} s of a change. Ctrl-C stops."
    )
    main = threading.current_thread() is threading.main_thread()  # only there can it take signals
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        server.server_close()
        if main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the server as Ctrl-C does (closing its socket), instead of killing it mid-write."""
    raise KeyboardInterrupt
