"""Progress of a long command (feature extraction, split progressions, an evaluation, a download).

On a terminal, a bar with rate and time left (tqdm, on stderr); elsewhere (a log file, CI, a Ray job's
output) a plain line every ``every_s`` seconds and one when the work ends, so that logs stay readable:
``progressions: 40/120 steps (33%), 12 s, about 24 s left``. ``quiet`` shows nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")
PLAIN_EVERY_S = 10.0  # seconds between plain lines
BYTES = "B"  # the unit of a download: a bar in kB/MB/GB, plain lines in MB


class Progress:
    """``total`` units of work named ``what``; ``update(n)`` as they are done, ``close()`` at the end (or
    use it as a context manager)."""

    def __init__(
        self,
        total: int | None,
        what: str,
        *,
        unit: str = "step",
        quiet: bool = False,
        stream: IO[str] | None = None,
        every_s: float = PLAIN_EVERY_S,
        initial: int = 0,
    ) -> None:
        self.total, self.what, self.unit, self.every_s = total, what, unit, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.done, self.started = initial, time.monotonic()
        self._first = initial
        self._said_at = self.started
        self._closed = quiet
        self._bar = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            scaled = unit == BYTES
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=what,
                unit=unit,
                unit_scale=scaled,
                file=self.stream,
                leave=False,
            )

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._closed:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._said_at >= self.every_s:
            self._say()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        self._say(final=True)

    def _say(self, final: bool = False) -> None:
        now = time.monotonic()
        self._said_at = now
        elapsed = now - self.started
        count, total, unit = self.done, self.total, plural(self.unit)
        if self.unit == BYTES:  # bytes read as MB
            count, total, unit = round(count / 1e6, 1), round(total / 1e6, 1) if total else total, "MB"
        line = f"{self.what}: {count}"
        line += f"/{total} {unit} ({100 * self.done / self.total:.0f}%)" if self.total else f" {unit}"
        line += f", {elapsed:.0f} s"
        progressed = self.done - self._first
        if final:
            line += ", done"
        elif self.total and progressed > 0:
            line += f", about {elapsed * (self.total - self.done) / progressed:.0f} s left"
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plural(unit: str) -> str:
    """``step`` -> ``steps``, ``batch`` -> ``batches``."""
    return unit + ("es" if unit.endswith(("ch", "sh", "s", "x")) else "s")


def tracked(
    items: Iterable[T], total: int | None, what: str, *, unit: str = "step", quiet: bool = False
) -> Iterator[T]:
    """``items`` with a ``Progress`` advanced by each."""
    with Progress(total, what, unit=unit, quiet=quiet) as progress:
        for item in items:
            yield item
            progress.update()
