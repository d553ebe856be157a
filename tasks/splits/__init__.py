"""ooDML splits: FID, split progressions, selection, episodes and split files.

The names below are imported on first use, so that a light submodule (``tasks.splits.options``, which a
study spec embeds) does not pull in torch through the package.
"""

from __future__ import annotations

from tasks.lazy import lazy_exports

_LAZY = {
    "ProgressionConfig": "progressions",
    "ProgressionSettings": "progressions",
    "Split": "files",
    "SplitFile": "files",
    "SplitFileError": "files",
    "SplitStep": "progressions",
    "build_progressions": "progressions",
    "build_split_file": "build",
    "fid_reference": "fid",
    "read_split_file": "files",
    "write_json": "files",
    "write_pickle": "files",
    "write_split_outputs": "build",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
