"""2-D projections of a dataset's class means for a few of its splits: what the FID compares.

Written by the driver when it builds or reads a split file (``study/splitfiles.py``) into the study's
projection table (``study/results/projections.py``), which the dashboard draws. UMAP (``umap-learn``) when it
is installed and there are enough classes for its neighbourhood graph, else PCA, which needs only numpy.

The class means are looked up next to the split file as ``class_means.npz`` (what ``oodml splits build``
saves: ``class_names``, ``means``) and at the ``features`` npz its provenance names (``class_names``,
``class_means``). Without them there is no projection table, and the dashboard says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from study.results.layout import CLASS_MEANS_FILE, DEFAULT_SPLIT_KEY, projection_path
from study.results.projections import PROJECTION_SCHEMA, ProjectionTable, write_projection
from study.results.storage import StudyPath, local_copy, locate

SHOWN = 4  # splits per dataset: the easiest, the default, the median and the hardest
UMAP_MIN_CLASSES = 10  # below this, a neighbourhood graph says little: PCA


@dataclass(frozen=True)
class Projection:
    method: str  # how it was made, in words
    coords: np.ndarray  # (n, 2)
    labels: tuple[str, str]  # axis labels


def pca(matrix: np.ndarray) -> Projection:
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    share = singular**2 / max(float(np.sum(singular**2)), 1e-300)
    coords = np.zeros((len(matrix), 2))  # a second component may not exist (e.g. two classes)
    coords[:, : min(2, len(vt))] = centred @ vt[:2].T
    second = f"PC2 ({share[1]:.0%})" if len(share) > 1 else "PC2"
    return Projection("their first two principal components (PCA)", coords, (f"PC1 ({share[0]:.0%})", second))


def umap_available() -> bool:
    try:
        from umap import UMAP  # noqa: F401
    except ImportError:
        return False
    return True


def umap_2d(matrix: np.ndarray) -> Projection:
    from umap import UMAP

    neighbours = min(15, len(matrix) - 1)
    coords = UMAP(n_components=2, n_neighbors=neighbours, random_state=0).fit_transform(matrix)
    return Projection(f"UMAP ({neighbours} neighbours, seed 0)", np.asarray(coords), ("UMAP 1", "UMAP 2"))


def project(matrix: np.ndarray) -> Projection:
    """UMAP where umap-learn is installed and there are enough classes, else PCA."""
    if len(matrix) >= UMAP_MIN_CLASSES and umap_available():
        return umap_2d(matrix)
    return pca(matrix)


def shown_splits(splits: list) -> list:
    """The easiest, the default, the median and the hardest split (fewer when there are fewer)."""
    ordered = sorted(splits, key=lambda s: s.fid)
    default = [i for i, s in enumerate(ordered) if s.key == DEFAULT_SPLIT_KEY]
    picks = sorted({0, len(ordered) // 2, len(ordered) - 1, *default[:1]})
    return [ordered[i] for i in picks][:SHOWN]


def load_class_means(path: Path) -> dict[str, np.ndarray]:
    """Class name -> mean feature, from either npz layout."""
    with np.load(path, allow_pickle=False) as data:
        means = data["means"] if "means" in data.files else data["class_means"]
        return {
            str(n): np.asarray(m, dtype=np.float64) for n, m in zip(data["class_names"], means, strict=True)
        }


def projection_table(
    dataset: str, splits: list, means: dict[str, np.ndarray], source: str
) -> ProjectionTable:
    """The shown splits' class means in one 2-D projection, fitted on their classes."""
    shown = shown_splits(splits)
    names = sorted({c for s in shown for c in (*s.train, *s.test)})
    projection = project(np.stack([means[n] for n in names]))
    points = dict(zip(names, projection.coords, strict=True))
    rows = [
        {"split_id": s.id, "split_key": s.key, "fid": s.fid, "class_name": c, "side": side,
         "x": float(points[c][0]), "y": float(points[c][1])}
        for s in shown
        for side, classes in (("train", s.train), ("test", s.test))
        for c in classes
    ]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=PROJECTION_SCHEMA)
    return ProjectionTable(dataset, table, projection.method, *projection.labels, source)


def _up_to_date(out: StudyPath, source: StudyPath) -> bool:
    if isinstance(out, Path) and isinstance(source, Path):
        return out.is_file() and out.stat().st_mtime >= source.stat().st_mtime
    return out.is_file()


def write_split_projection(study_dir: StudyPath, dataset: str, split_path: StudyPath) -> StudyPath | None:
    """Write ``dataset``'s projection table unless it is newer than its split file; None without class
    means (or when they lack classes of the splits). A projection that fails warns: it never stops a study.
    On an object store the split file and class means are read through the scratch space, and a
    projection table already there is kept (a built split file there is never rebuilt in place)."""
    from tasks.splits.files import read_split_file

    out = projection_path(study_dir, dataset)
    if _up_to_date(out, split_path):
        return out
    try:
        split_file = read_split_file(local_copy(split_path))
        candidates = [split_path.parent / CLASS_MEANS_FILE]
        if split_file.provenance.get("features"):
            candidates.append(locate(split_file.provenance["features"]))
        found = next((p for p in candidates if p.is_file()), None)
        if found is None or not split_file.splits:
            return None
        means = load_class_means(local_copy(found))
        if {c for s in shown_splits(split_file.splits) for c in (*s.train, *s.test)} - set(means):
            return None
        return write_projection(study_dir, projection_table(dataset, split_file.splits, means, found.name))
    except Exception as err:  # a figure's input: the study goes on without it
        warnings.warn(
            f"{dataset}: no projection of the class means: {type(err).__name__}: {err}", stacklevel=2
        )
        return None
