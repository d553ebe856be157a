"""ooDML splits: FID, split progressions, selection, episodes and split files.

The names below are imported on first use, so that a light submodule (``tasks.splits.options``, which a
study spec embeds) does not pull in torch through the package.
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "ProgressionConfig": "tasks.splits.progressions",
    "ProgressionSettings": "tasks.splits.progressions",
    "Split": "tasks.splits.files",
    "SplitFile": "tasks.splits.files",
    "SplitFileError": "tasks.splits.files",
    "SplitStep": "tasks.splits.progressions",
    "build_progressions": "tasks.splits.progressions",
    "build_split_file": "tasks.splits.build",
    "fid": "tasks.splits.fid",
    "fid_reference": "tasks.splits.fid",
    "read_split_file": "tasks.splits.files",
    "write_json": "tasks.splits.files",
    "write_pickle": "tasks.splits.files",
    "write_split_outputs": "tasks.splits.build",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tasks.splits' has no attribute {name!r}")
