"""Where a study folder lives: a local folder, or a prefix of an S3 bucket (``s3://bucket/prefix``).

``locate(where)`` gives a ``pathlib.Path`` for a local folder, so every local study behaves exactly as it
always did, and an ``ObjectPath`` for ``s3://``: the part of ``Path``'s interface a study folder uses
(``/``, ``name``, ``parent``, ``exists``, ``is_dir``, ``glob``, ``read_bytes``, ``write_bytes``,
``unlink``, ``replace``), carried out by ``pyarrow.fs.S3FileSystem``: the library the results
already depend on, and the one Ray Tune stores its experiments through, so one client and one set of
credentials serve the tables, the trial checkpoints and Tune's state (docs/architecture.md).

Credentials, region and endpoint come from the standard AWS variables or files (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_PROFILE``, ``~/.aws/``, and
``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO, Ceph or SeaweedFS), never from a spec.

On a store without rename, an object is written by one PUT (a multipart upload also becomes visible
whole, when it completes): a reader sees the previous object or the new one, never part of one, which is
the guarantee ``atomic_path`` gives on a local disk. Every call to the store is retried with exponential
backoff while the store does not answer (connection refused, timeouts, 5xx), for up to
``STORE_OUTAGE_LIMIT_S`` seconds; after that it raises ``StoreUnavailableError`` naming the object.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TypeVar, Union

import pyarrow.fs as pafs

S3 = "s3"
SCHEMES = (S3,)
STORE_OUTAGE_LIMIT_S = float(os.environ.get("OODML_STORE_OUTAGE_LIMIT_S", "120"))
_FIRST_WAIT_S, _MAX_WAIT_S = 0.5, 8.0
# The store did not answer, or answered "try again": worth retrying. Refused credentials, a missing
# bucket and the like are raised at once.
_TRANSIENT = re.compile(
    r"NETWORK_CONNECTION|curlCode|SERVICE_UNAVAILABLE|SLOW_DOWN|THROTTLING|INTERNAL_FAILURE|REQUEST_TIMEOUT"
    r"|HTTP status 5\d\d|timed out|Connection reset"
)

T = TypeVar("T")


class StoreUnavailableError(OSError):
    """The object store did not answer for longer than ``STORE_OUTAGE_LIMIT_S`` seconds."""


def is_remote(where: Where) -> bool:
    """Whether ``where`` names an object-store location (``s3://...``) rather than a local path."""
    return isinstance(where, ObjectPath) or (isinstance(where, str) and where.partition("://")[0] in SCHEMES)


def locate(where: Where) -> StudyPath:
    """A local ``Path`` (as given: not resolved) or an ``ObjectPath`` for an ``s3://`` URI."""
    if isinstance(where, ObjectPath):
        return where
    if isinstance(where, str) and "://" in where:
        scheme, _, key = where.partition("://")
        if scheme not in SCHEMES:
            raise ValueError(
                f"{where}: study folders live on a local path or on S3 (s3://bucket/prefix), not on {scheme}://"
            )
        return ObjectPath(scheme, key)
    return Path(where)


class ObjectPath:
    """``scheme://bucket/key``: a path in an object store, with ``pathlib.Path``'s methods a study uses.

    Folders are key prefixes: ``mkdir`` does nothing, a folder exists while an object lies under it."""

    __slots__ = ("scheme", "key")

    def __init__(self, scheme: str, key: str) -> None:
        key = str(PurePosixPath("/", key.strip("/")))[1:]
        if not key:
            raise ValueError(f"{scheme}:// needs a bucket: {scheme}://bucket/prefix")
        self.scheme, self.key = scheme, key

    # --- names, as PurePosixPath
    def __truediv__(self, other: str | os.PathLike) -> ObjectPath:
        return ObjectPath(self.scheme, f"{self.key}/{os.fspath(other)}")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and (self.scheme, self.key) == (other.scheme, other.key)

    def __lt__(self, other: ObjectPath) -> bool:
        return (self.scheme, self.key) < (other.scheme, other.key)

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> ObjectPath:
        parent = str(PurePosixPath(self.key).parent)
        return self if parent == "." else ObjectPath(self.scheme, parent)

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def resolve(self) -> ObjectPath:
        return self

    expanduser = absolute = resolve

    def is_absolute(self) -> bool:
        return True

    # --- the store
    @property
    def filesystem(self) -> pafs.FileSystem:
        return _filesystem(self.scheme)

    def _info(self) -> pafs.FileInfo:
        return _retried(lambda: self.filesystem.get_file_info(self.key), self)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to make: a prefix exists once an object is written under it."""

    def read_bytes(self) -> bytes:
        def read() -> bytes:
            with self.filesystem.open_input_stream(self.key) as stream:
                return stream.read()

        return _retried(read, self)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: the object appears whole, or keeps its previous content."""

        def write() -> None:
            with self.filesystem.open_output_stream(self.key) as stream:
                stream.write(data)

        _retried(write, self)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            _retried(lambda: self.filesystem.delete_file(self.key), self)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, target: ObjectPath) -> ObjectPath:
        """Copy to ``target`` (one server-side copy: it appears whole), then delete this object."""
        if not isinstance(target, ObjectPath):
            raise TypeError(f"{self} can only be moved within the object store, not to {target}")
        _retried(lambda: self.filesystem.copy_file(self.key, target.key), self)
        self.unlink(missing_ok=True)
        return target

    def iterdir(self) -> Iterator[ObjectPath]:
        selector = pafs.FileSelector(self.key, allow_not_found=True)
        infos = _retried(lambda: self.filesystem.get_file_info(selector), self)
        return iter(sorted(ObjectPath(self.scheme, info.path) for info in infos))

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Objects and folders below this one whose path relative to it matches ``pattern`` part by part
        (``*.parquet``, ``eval-*/trial_*/error.txt``; no ``**``)."""
        parts = PurePosixPath(pattern).parts
        selector = pafs.FileSelector(self.key, allow_not_found=True, recursive=len(parts) > 1)
        infos = _retried(lambda: self.filesystem.get_file_info(selector), self)
        found = []
        for info in infos:
            relative = PurePosixPath(info.path).relative_to(self.key).parts
            if len(relative) == len(parts) and all(map(fnmatch.fnmatchcase, relative, parts)):
                found.append(ObjectPath(self.scheme, info.path))
        return iter(sorted(found))


StudyPath = Union[Path, ObjectPath]  # noqa: UP007
Where = Union[str, os.PathLike, ObjectPath]  # noqa: UP007  (what ``locate`` takes)


def arrow_source(where: Where) -> dict:
    """The ``source`` and ``filesystem`` pyarrow's readers take (``pq.read_table(**arrow_source(p))``): a
    local path goes to pyarrow as a string (its native reader), an object by its key and the store's client."""
    path = locate(where)
    if isinstance(path, ObjectPath):
        return {"source": path.key, "filesystem": path.filesystem}
    return {"source": str(path), "filesystem": None}


def scratch_root() -> Path:
    """Node-local scratch space for objects of a store (``OODML_SCRATCH``, else ``<tmp>/oodml-scratch``)."""
    return Path(os.environ.get("OODML_SCRATCH") or Path(tempfile.gettempdir()) / "oodml-scratch")


def scratch_path(where: ObjectPath) -> Path:
    """Where ``where`` is kept in this node's scratch space: ``<scratch>/<scheme>/<bucket>/<key>``."""
    return scratch_root() / where.scheme / where.key


def local_copy(where: Where) -> Path:
    """A local path holding ``where``'s content: a local path itself; an object or a folder of objects
    downloaded to the scratch space (again only where the local copy's size differs)."""
    path = locate(where)
    if isinstance(path, Path):
        return path
    target = scratch_path(path)
    info = path._info()
    if info.type == pafs.FileType.File:
        objects = [(path, info.size)]
    else:
        objects = _walk(path)
    if not objects:
        raise FileNotFoundError(f"{path}: no such object or folder on the store")
    for item, size in objects:
        local = target if item == path else target / PurePosixPath(item.key).relative_to(path.key)
        if not local.is_file() or local.stat().st_size != size:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
            tmp.write_bytes(item.read_bytes())
            os.replace(tmp, local)
    return target


def upload(local: Path, where: ObjectPath, last: str | None = None) -> None:
    """Upload a file, or a folder's files, one PUT each; ``last`` (a file of the folder, such as a
    completion marker) goes after all the others."""
    if local.is_file():
        where.write_bytes(local.read_bytes())
        return
    names = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    for name in sorted(names, key=lambda n: n == last):  # stable: the rest keep their order
        (where / name).write_bytes((local / name).read_bytes())


def _walk(folder: ObjectPath) -> list[tuple[ObjectPath, int]]:
    """Every object under ``folder`` with its size, from one listing."""
    selector = pafs.FileSelector(folder.key, allow_not_found=True, recursive=True)
    infos = _retried(lambda: folder.filesystem.get_file_info(selector), folder)
    found = [(ObjectPath(folder.scheme, i.path), i.size) for i in infos if i.type == pafs.FileType.File]
    return sorted(found, key=lambda pair: pair[0])


@functools.cache
def _filesystem(scheme: str) -> pafs.FileSystem:
    """One client per process, configured by the AWS variables and files (the SDK's default chain)."""
    if scheme != S3:
        raise ValueError(f"no object store client for {scheme}://")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {"connect_timeout": 5.0, "request_timeout": 60.0}
    if endpoint:  # pyarrow reads it too; passing it keeps http:// endpoints on http
        scheme_part, _, host = endpoint.partition("://")
        options |= {"endpoint_override": host or scheme_part, "scheme": scheme_part if host else "https"}
    return pafs.S3FileSystem(
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        allow_delayed_open=True,  # a small object is one PutObject on close, not a multipart upload
        **options,
    )


def _retried(call: Callable[[], T], where: ObjectPath) -> T:
    """``call()``, retried with exponential backoff while the store does not answer (``_TRANSIENT``); any
    other error (a missing object, refused credentials) is raised at once."""
    deadline = time.monotonic() + STORE_OUTAGE_LIMIT_S
    wait = _FIRST_WAIT_S
    while True:
        try:
            return call()
        except OSError as err:
            if isinstance(err, FileNotFoundError) or not _TRANSIENT.search(str(err)):
                raise
            if time.monotonic() + wait > deadline:
                raise StoreUnavailableError(
                    f"{where}: the object store did not answer for {STORE_OUTAGE_LIMIT_S:.0f} s "
                    f"({type(err).__name__}: {err}); check AWS_ENDPOINT_URL and that the store is up, "
                    "then run or resume again (finished results are kept)"
                ) from err
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT_S)
