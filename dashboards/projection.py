"""A 2-D projection of the train and test class means of a few splits: what the FID compares.

UMAP (``umap-learn``) when it is installed and there are enough classes for its neighbourhood graph,
else PCA, which needs nothing beyond numpy.

The splits come from the study's split file (``<study>/splits/<dataset>/splits.json``, or the one the
spec names). The class-mean features are looked up next to it as ``class_means.npz`` (the layout of
``tasks.splits.features.ClassFeatures.save_npz``: ``class_names``, ``means``) and at the ``features``
npz its provenance names (``oodml splits build --features``: ``class_names``, ``class_means``). Without
them the section says where it looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dashboards.page import Block, Image, Note
from dashboards.plotting import TEST_COLOUR, TRAIN_COLOUR, figure, slug
from study.results import DEFAULT_SPLIT_KEY
from study.results.layout import SPEC_FILE
from study.splitfiles import SPLITS_DIR
from tasks.splits.files import Split, SplitFile, SplitFileError, read_split_file

FEATURES_FILE = "class_means.npz"
SHOWN = 4  # splits per dataset: the easiest, the default, the median and the hardest


def projection_blocks(study_dir: Path, datasets: list[str], out: Path) -> list[Block]:
    return [block for dataset in datasets for block in _dataset_blocks(study_dir, dataset, out)]


def study_datasets(study_dir: Path) -> list[str]:
    """Datasets with a split folder in the study."""
    folder = study_dir / SPLITS_DIR
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def split_file_path(study_dir: Path, dataset: str) -> Path | None:
    built = study_dir / SPLITS_DIR / dataset / "splits.json"
    if built.is_file():
        return built
    spec = study_dir / SPEC_FILE
    if not spec.is_file():
        return None
    for entry in (yaml.safe_load(spec.read_text()) or {}).get("datasets") or []:
        if entry.get("name") == dataset and entry.get("split_file"):
            return Path(entry["split_file"])
    return None


def feature_candidates(split_path: Path, split_file: SplitFile) -> list[Path]:
    candidates = [split_path.parent / FEATURES_FILE]
    if split_file.provenance.get("features"):
        candidates.append(Path(split_file.provenance["features"]))
    return candidates


def load_class_means(path: Path) -> dict[str, np.ndarray]:
    """Class name -> mean feature, from either npz layout."""
    with np.load(path, allow_pickle=False) as data:
        means = data["means"] if "means" in data.files else data["class_means"]
        return {
            str(n): np.asarray(m, dtype=np.float64) for n, m in zip(data["class_names"], means, strict=True)
        }


def shown_splits(splits: list[Split]) -> list[Split]:
    ordered = sorted(splits, key=lambda s: s.fid)
    default = [i for i, s in enumerate(ordered) if s.key == DEFAULT_SPLIT_KEY]
    picks = sorted({0, len(ordered) // 2, len(ordered) - 1, *default[:1]})
    return [ordered[i] for i in picks][:SHOWN]


def _dataset_blocks(study_dir: Path, dataset: str, out: Path) -> list:
    split_path = split_file_path(study_dir, dataset)
    if split_path is None:
        return [Note(f"{dataset}: no split file in {study_dir / SPLITS_DIR / dataset} or the study spec.")]
    try:
        split_file = read_split_file(split_path)
    except SplitFileError as err:
        return [Note(f"{dataset}: cannot read the split file: {err}", warning=True)]
    candidates = feature_candidates(split_path, split_file)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None or not split_file.splits:
        where = " or ".join(str(p) for p in candidates)
        return [Note(f"{dataset}: no class-mean features saved with the split file (looked for {where}).")]
    means = load_class_means(found)
    shown = shown_splits(split_file.splits)
    missing = {c for s in shown for c in (*s.train, *s.test)} - set(means)
    if missing:
        return [
            Note(
                f"{dataset}: {found} lacks {len(missing)} classes of the splits, e.g. {sorted(missing)[:3]}."
            )
        ]
    path = out / f"projection_{slug(dataset)}.png"
    method = plot_projection(shown, means, dataset, path)
    return [
        Image(
            path,
            f"{dataset}: class means ({found.name}) projected to 2-D by {method} (fitted on the classes of "
            "the splits shown); the easiest, default, median and hardest splits.",
        )
    ]


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


UMAP_MIN_CLASSES = 10  # below this, a neighbourhood graph says little: PCA


def project(matrix: np.ndarray) -> Projection:
    """UMAP where umap-learn is installed and there are enough classes, else PCA."""
    if len(matrix) >= UMAP_MIN_CLASSES and umap_available():
        return umap_2d(matrix)
    return pca(matrix)


def plot_projection(splits: list[Split], means: dict[str, np.ndarray], dataset: str, path: Path) -> str:
    """Draw the splits' class means in one 2-D projection; returns how it was made."""
    names = sorted({c for s in splits for c in (*s.train, *s.test)})
    projection = project(np.stack([means[n] for n in names]))
    points = dict(zip(names, projection.coords, strict=True))
    size = (3.3 * len(splits) + 0.4, 3.7)
    with figure(path, size, ncols=len(splits), sharex=True, sharey=True) as (fig, axes):
        for ax, split in zip(axes[0], splits, strict=True):
            for classes, colour, marker, label in (
                (split.train, TRAIN_COLOUR, "o", "train classes"),
                (split.test, TEST_COLOUR, "^", "test classes"),
            ):
                xy = np.array([points[c] for c in classes]).reshape(-1, 2)
                ax.scatter(
                    xy[:, 0], xy[:, 1], s=12, color=colour, marker=marker, alpha=0.75, lw=0, label=label
                )
            default = " (default)" if split.key == DEFAULT_SPLIT_KEY else ""
            ax.set_title(f"{dataset} · split {split.key}{default}\nFID {split.fid:.3g}")
            ax.set_xlabel(projection.labels[0])
        axes[0, 0].set_ylabel(projection.labels[1])
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2)
    return projection.method
