"""Split files: our JSON format and the ooDML pickle format (docs/protocol.md section 3), both ways.

The JSON file keeps everything: the three progressions (every recorded step), the selected splits
with their train/validation division and few-shot episodes, and provenance (dataset, feature
extractor, feature hash, parameters). The ooDML pickle keeps the selected splits only, in the layout
the original code reads: ``{split_id: {train, test, fid, split_train, split_val, test_episodes}}``.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.data.cache import atomic_write
from tasks.splits.episodes import Episode, is_whole_class

FORMAT = "oodml-splits"
VERSION = 1


class SplitFileError(ValueError):
    """A split file is unreadable, malformed, or refused for safety."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Strict):
    """One recorded step of a progression."""

    key: str
    fid: float
    train: list[str]
    test: list[str]


class Split(_Strict):
    """A selected benchmark split with its validation division and few-shot episodes."""

    id: int
    key: str
    progression: str = ""
    fid: float
    train: list[str]
    test: list[str]
    split_train: list[str]
    split_val: list[str]
    episodes: dict[int, list[Episode]] = Field(default_factory=dict)
    too_small: dict[int, list[str]] = Field(default_factory=dict)
    # shift measures beside ``fid`` (``tasks.splits.shift``): ``mmd`` (MMD^2_u), ``fid@<extractor>``;
    # None in files written before them, and in ooDML pickles, which have no place for them
    shift: dict[str, float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Split:
        where = f"split {self.id} (key {self.key})"
        shared = set(self.train) & set(self.test)
        if shared:
            raise ValueError(
                f"{where}: train and test share classes {sorted(shared)[:5]} ({len(shared)} in all); a "
                "class belongs to one side only: rebuild the split file (oodml splits build) or remove them "
                "from one side"
            )
        if set(self.split_train) | set(self.split_val) != set(self.train) or set(self.split_train) & set(
            self.split_val
        ):
            raise ValueError(f"{where}: split_train and split_val must divide the train classes")
        test = set(self.test)
        for shots, episodes in self.episodes.items():
            if len({is_whole_class(e) for e in episodes}) > 1:
                raise ValueError(f"{where}: {shots}-shot episodes mix whole-class and per-image support")
            for e, episode in enumerate(episodes):
                strangers = set(episode) - test
                if strangers:
                    raise ValueError(
                        f"{where}: {shots}-shot episode {e} names non-test classes {sorted(strangers)[:3]}"
                    )
                if is_whole_class(episode) and len(test - set(episode)) < 2:
                    raise ValueError(
                        f"{where}: {shots}-shot episode {e} takes all but {len(test - set(episode))} test "
                        "classes as support; whole-class episodes need at least 2 query classes"
                    )
        return self


class SplitFile(_Strict):
    """Everything ``oodml splits build`` produces."""

    format: Literal["oodml-splits"] = FORMAT
    version: Literal[1] = VERSION
    provenance: dict[str, Any] = Field(default_factory=dict)
    progressions: dict[str, list[Step]] = Field(default_factory=dict)
    splits: list[Split]

    def split(self, key_or_id: str | int) -> Split:
        """A selected split by id (int) or key (str)."""
        for s in self.splits:
            if s.id == key_or_id or s.key == key_or_id:
                return s
        raise KeyError(f"no selected split {key_or_id!r}; have {[(s.id, s.key) for s in self.splits]}")


def describe_validation(err: ValidationError) -> str:
    """A pydantic error as ``field: message`` lines, without the offending input (a whole split)."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def _write_atomically(path: Path, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


# --- JSON -----------------------------------------------------------------------------------------


def write_json(split_file: SplitFile, path: str | Path) -> Path:
    path = Path(path)
    _write_atomically(path, split_file.model_dump_json(indent=1).encode())
    return path


def read_json(path: str | Path) -> SplitFile:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SplitFileError(f"{path}: cannot read split file ({err})") from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise SplitFileError(f"{path}: not an oodml split file (field 'format' must be {FORMAT!r})")
    try:
        return SplitFile.model_validate(raw)
    except ValidationError as err:
        raise SplitFileError(f"{path}: invalid split file: {describe_validation(err)}") from None


# --- ooDML pickle ---------------------------------------------------------------------------------

# The ooDML files pickle numpy strings and floats, which need exactly these globals (numpy 2 renamed
# numpy.core to numpy._core). Anything else is refused before it can run.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyScalarUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, path: Path):
        super().__init__(stream)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise SplitFileError(
                f"{self._path}: refused to load: the pickle asks for '{module}.{name}', but an ooDML split file "
                "only needs numpy scalar reconstruction. Nothing in the file was executed; "
                "if you trust it, convert it to JSON in the environment that wrote it."
            ) from None


def load_pickle_safely(path: str | Path) -> Any:
    """Unpickle an ooDML split file, allowing only numpy scalar/dtype reconstruction."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return _NumpyScalarUnpickler(stream, path).load()
    except SplitFileError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise SplitFileError(f"{path}: cannot read pickle ({type(err).__name__}: {err})") from err


def read_pickle(path: str | Path) -> SplitFile:
    """An ooDML split pickle as a SplitFile (selected splits only; no progressions)."""
    path = Path(path)
    raw = load_pickle_safely(path)
    if not isinstance(raw, dict) or not raw:
        raise SplitFileError(f"{path}: expected a dict {{split_id: split}}, got {type(raw).__name__}")
    splits = []
    for split_id, entry in sorted(raw.items()):
        where = f"{path}: split {split_id!r}"
        if not isinstance(entry, dict):
            raise SplitFileError(f"{where}: expected a dict, got {type(entry).__name__}")
        missing = {"train", "test", "fid"} - set(entry)
        if missing:
            raise SplitFileError(f"{where}: missing fields {sorted(missing)}")
        train = [str(c) for c in entry["train"]]
        episodes = {
            int(shots): [
                _episode(by_episode[e], f"{where}: {shots}-shot episode {e}") for e in sorted(by_episode)
            ]
            for shots, by_episode in entry.get("test_episodes", {}).items()
        }
        try:
            splits.append(
                Split(
                    id=int(split_id),
                    key=str(entry.get("key", split_id)),
                    fid=float(entry["fid"]),
                    train=train,
                    test=[str(c) for c in entry["test"]],
                    split_train=[str(c) for c in entry.get("split_train", train)],
                    split_val=[str(c) for c in entry.get("split_val", [])],
                    episodes=episodes,
                )
            )
        except ValidationError as err:
            problem = describe_validation(err)  # the split's own checks name it already
            raise SplitFileError(f"{path if problem.startswith('split ') else where}: {problem}") from None
    return SplitFile(provenance={"source": str(path), "format": "oodml-pickle"}, splits=splits)


def _episode(stored: Any, where: str) -> Episode:
    """An episode as ooDML pickles hold it: ``{class: [support files]}``, or (SOP) a list of classes."""
    if isinstance(stored, dict):
        return {str(c): [str(f) for f in files] for c, files in stored.items()}
    if isinstance(stored, list | tuple | np.ndarray):
        return [str(c) for c in stored]
    raise SplitFileError(
        f"{where}: expected {{class: [support files]}} or a list of support classes, got {type(stored).__name__}"
    )


def _stored_episode(episode: Episode) -> Any:
    """The ooDML layout of an episode (numpy strings; support files by base name)."""
    if is_whole_class(episode):
        return [np.str_(c) for c in episode]
    return {np.str_(c): [Path(f).name for f in files] for c, files in episode.items()}


def write_pickle(split_file: SplitFile, path: str | Path) -> Path:
    """The selected splits in the ooDML layout (numpy strings and floats; support files by base name).

    The layout has no place for a split's ``shift`` measures beyond FID: they are kept in the JSON only."""
    names = lambda classes: [np.str_(c) for c in classes]  # noqa: E731
    payload = {
        s.id: {
            "train": names(s.train),
            "test": names(s.test),
            "fid": np.float64(s.fid),
            "split_train": names(s.split_train),
            "split_val": names(s.split_val),
            "test_episodes": {
                shots: {e: _stored_episode(episode) for e, episode in enumerate(episodes)}
                for shots, episodes in s.episodes.items()
            },
        }
        for s in split_file.splits
    }
    path = Path(path)
    _write_atomically(path, pickle.dumps(payload, protocol=4))
    return path


READERS = {".json": read_json, ".pkl": read_pickle, ".pickle": read_pickle}


def read_split_file(path: str | Path) -> SplitFile:
    """Read either format, chosen by the file extension."""
    path = Path(path)
    if not path.is_file():
        raise SplitFileError(f"{path}: split file not found")
    try:
        reader = READERS[path.suffix.lower()]
    except KeyError:
        raise SplitFileError(
            f"{path}: unknown split file extension; expected one of {sorted(READERS)}"
        ) from None
    return reader(path)
