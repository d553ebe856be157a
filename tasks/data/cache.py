"""Cache files written atomically: readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """A binary handle on a temporary file next to ``path``, moved onto ``path`` (``os.replace``) on success
    and removed on failure. The file gets the usual 0644 permissions (temporary files are created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def cache_root() -> Path:
    """oodml's cache folder: ``$OODML_CACHE``, else ``~/.cache/oodml``."""
    base = os.environ.get("OODML_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "oodml"
