"""ooDML splits: FID, split progressions, selection, episodes and split files."""

from tasks.splits.build import build_split_file, write_split_outputs
from tasks.splits.fid import fid, fid_reference
from tasks.splits.files import Split, SplitFile, SplitFileError, read_split_file, write_json, write_pickle
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings, SplitStep, build_progressions

__all__ = [
    "ProgressionConfig",
    "ProgressionSettings",
    "Split",
    "SplitFile",
    "SplitFileError",
    "SplitStep",
    "build_progressions",
    "build_split_file",
    "fid",
    "fid_reference",
    "read_split_file",
    "write_json",
    "write_pickle",
    "write_split_outputs",
]
