"""A file server on 127.0.0.1 for download tests: serves ``files`` (name -> bytes), honours ``Range:
bytes=N-`` with 206, can drop the connection after ``cut`` bytes of a body, and records every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FileServer:
    files: dict[str, bytes]
    url: str = ""
    cut: dict[str, int] = field(default_factory=dict)  # name -> bytes sent before dropping, once
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    ranges: bool = True  # False: answer every request with the whole file (200), as some servers do

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                name = self.path.lstrip("/").split("?")[0]
                wanted = self.headers.get("Range")
                server.requests.append((self.command, self.path, wanted))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                if wanted and wanted.startswith("bytes=") and server.ranges:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Accept-Ranges", "bytes")
                for key, value in server.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not body:
                    return
                cut = server.cut.pop(name, None)
                self.wfile.write(data[start:cut] if cut is not None else data[start:])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, format: str, *args) -> None:
                return

        return Handler


@contextmanager
def serve(
    files: dict[str, bytes], cut: dict[str, int] | None = None, headers: dict[str, str] | None = None
) -> Iterator[FileServer]:
    """Serve ``files`` on a free port of 127.0.0.1 for the block."""
    state = FileServer(dict(files), cut=dict(cut or {}), headers=dict(headers or {}))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    state.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
