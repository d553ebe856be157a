"""Fetching the public DML datasets into the layout their loaders read (README.md, Datasets).

oodml adds the catalogue (where each archive is published, its MD5, what it unpacks to) and the
messages; ``torchvision.datasets.utils`` checks (``check_integrity``) and unpacks (``extract_archive``).
The one thing torchvision's ``download_url`` lacks is resuming, so the archive is fetched into
``<archive>.part`` and an interrupted download continues from there with an HTTP ``Range`` request.
``OODML_DATA_MIRROR`` (or ``mirror=``) fetches the same archive names from another server.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.progress import BYTES, Progress

MIRROR_SETTING = "OODML_DATA_MIRROR"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A dataset archive could not be fetched, or is not the published file."""


@dataclass(frozen=True)
class PublicArchive:
    """A dataset's published archive: ``url``, its ``md5``, and the folder (``folder``, relative to the
    folder it is unpacked into) that is the dataset root the loader takes, recognised by ``marker``."""

    dataset: str
    url: str
    md5: str
    folder: str
    marker: str  # a path under ``folder`` that only a complete unpack has

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def source(self, mirror: str | None) -> str:
        return f"{mirror.rstrip('/')}/{self.archive}" if mirror else self.url


CATALOGUE: dict[str, PublicArchive] = {
    # Wah et al., The Caltech-UCSD Birds-200-2011 Dataset (CaltechDATA record 65de6-vp158)
    "cub200": PublicArchive(
        "cub200",
        "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        "97eceeb196236b17998738112f37df78",
        "CUB_200_2011",
        "images/200.Common_Yellowthroat",
    ),
    # Song et al., Deep Metric Learning via Lifted Structured Feature Embedding, CVPR 2016
    "sop": PublicArchive(
        "sop",
        "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
        "7f73d41a2f44250d4779881525aea32e",
        "Stanford_Online_Products",
        "Ebay_test.txt",
    ),
}


def fetch_resumable(url: str, target: Path, *, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``target`` through ``<target>.part``, continuing a partial file with a
    ``Range`` request (a server that ignores it sends the whole file, which then replaces the part)."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "oodml", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            if response.status != 206:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with (
                open(part, "ab" if have else "wb") as out,
                Progress(
                    total, f"downloading {target.name}", unit=BYTES, initial=have, quiet=not progress
                ) as bar,
            ):
                while block := response.read(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        if not (err.code == 416 and have):  # 416 on a range past the end: the part is already whole
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
        total = have
    except OSError as err:
        raise DownloadError(_interrupted(url, part, f"{type(err).__name__}: {err}")) from None
    got = part.stat().st_size
    if total is not None and got < total:  # the connection closed before the announced length
        raise DownloadError(_interrupted(url, part, f"{got} of {total} bytes received"))
    part.replace(target)
    return target


def _interrupted(url: str, part: Path, why: str) -> str:
    kept = f"; {part.stat().st_size} bytes are kept in {part}" if part.exists() else ""
    return f"download of {url} interrupted ({why}){kept}: run the command again to resume"


def download_dataset(
    name: str,
    root: str | Path,
    *,
    mirror: str | None = None,
    keep_archive: bool = False,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Fetch, verify and unpack ``name``'s public archive under ``root``; return the dataset root to give
    its loader. Does nothing when that folder is already complete; resumes a partial download."""
    if name not in CATALOGUE:
        raise ValueError(f"no public archive known for {name!r} (known: {', '.join(CATALOGUE)})")
    from torchvision.datasets.utils import check_integrity, extract_archive  # torch: only when it runs

    entry = CATALOGUE[name]
    root = Path(root).expanduser().resolve()
    dataset_root = root / entry.folder
    if (dataset_root / entry.marker).exists():
        echo(f"{name}: already at {dataset_root}")
        return dataset_root
    root.mkdir(parents=True, exist_ok=True)
    archive = root / entry.archive
    url = entry.source(mirror if mirror is not None else os.environ.get(MIRROR_SETTING) or None)
    if not archive.is_file():
        echo(f"{name}: downloading {url} to {archive}")
        fetch_resumable(url, archive, progress=progress)
    if not check_integrity(str(archive), entry.md5):
        archive.unlink()
        raise DownloadError(
            f"{archive} (from {url}) does not have the published MD5 {entry.md5}; it was removed so the "
            f"next attempt starts afresh. If it happens again, the server sends another file: try later "
            f"or set {MIRROR_SETTING} to a mirror of {entry.archive}"
        )
    echo(f"{name}: checksum ok, unpacking {archive.name} into {root}")
    extract_archive(str(archive), str(root))
    if not (dataset_root / entry.marker).exists():
        raise DownloadError(
            f"{archive} unpacked, but {dataset_root / entry.marker} is not there: not the expected layout"
        )
    if not keep_archive:
        archive.unlink()
    echo(f"{name}: ready at {dataset_root} (give this folder as the dataset's root)")
    return dataset_root
