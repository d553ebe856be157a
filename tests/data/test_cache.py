"""Atomic cache writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.data.cache import atomic_write


def test_atomic_write_replaces_on_success_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"partial")
        raise RuntimeError
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["file.bin"]
