"""From class-mean features (and, optionally, image lists) to a complete split file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tasks.splits.episodes import (
    DEFAULT_EPISODES,
    DEFAULT_SHOTS,
    EPISODE_BUILDERS,
    Support,
    default_shots,
    train_val_division,
)
from tasks.splits.files import Split, SplitFile, SplitFileError, Step, write_json, write_pickle
from tasks.splits.progressions import ProgressionConfig, SplitStep, build_progressions
from tasks.splits.selection import select
from tasks.splits.settings import default_settings, default_support
from tasks.splits.shift import shift_measures

if TYPE_CHECKING:  # PIL, through the image lists: only where the images are read
    from tasks.data.base import LabelledImages


def build_split_file(
    class_names: Sequence[str],
    class_means: np.ndarray,
    initial_train: Sequence[str],
    initial_test: Sequence[str],
    *,
    config: ProgressionConfig = ProgressionConfig(),
    selection: int | Sequence[str] = 8,
    images_by_class: Mapping[str, Sequence[str]] | None = None,
    shots: Sequence[int] = DEFAULT_SHOTS,
    episodes: int = DEFAULT_EPISODES,
    support: Support = "images",
    seed: int = 0,
    provenance: Mapping | None = None,
    shift_features: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> SplitFile:
    """Run the three progressions, select the benchmark splits and prepare each for training and few-shot.

    Without ``images_by_class`` (e.g. from precomputed features) the splits carry no few-shot episodes.
    ``support`` chooses the episodes' support: ``images`` per test class, or whole test ``classes``.
    Every selected split gets its shift measures beyond FID (``tasks.splits.shift``): MMD, and the FID
    under each extractor of ``shift_features`` (its class means, rows aligned with ``class_names``).
    """
    progressions = build_progressions(class_means, class_names, initial_train, initial_test, config, progress)
    selected = select(progressions, selection)
    measures, shift = shift_measures(
        class_names, class_means, [(s.train, s.test) for s in selected], shift_features
    )
    splits = [
        _prepare(split_id, step, images_by_class, shots, episodes, support, seed).model_copy(
            update={"shift": measured}
        )
        for (split_id, step), measured in zip(enumerate(selected, start=1), measures, strict=True)
    ]
    return SplitFile(
        provenance={
            **(provenance or {}),
            "shift": shift,
            "progression_settings": asdict(config),
            "selection": selection if isinstance(selection, int) else list(selection),
            "shots": list(shots) if images_by_class is not None else [],
            "episodes": episodes,
            "support": support,
            "seed": seed,
        },
        progressions={
            name: [Step(key=s.key, fid=s.fid, train=list(s.train), test=list(s.test)) for s in steps]
            for name, steps in progressions.items()
        },
        splits=splits,
    )


def build_from_dataset(
    dataset: str,
    images: LabelledImages,
    out_dir: str | Path,
    *,
    extractor: str | None = None,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    config: ProgressionConfig | None = None,
    selection: int | Sequence[str] = 8,
    shots: Sequence[int] | None = None,
    episodes: int = DEFAULT_EPISODES,
    support: Support | None = None,
    seed: int = 0,
    dataset_options: Mapping | None = None,
    shift_extractors: Sequence[str] = (),
    progress: bool = True,
) -> SplitFile:
    """The split file of a dataset, written to ``out_dir`` (``splits.json``, ``splits.pkl``, and the
    class means as ``class_means.npz`` for the dashboard's projection of splits).

    FID features come from ``extractor`` (the dataset's default when None); unset settings take the
    dataset's (``dataset`` is its registry name): published progressions (scaled to the initial
    partition for a dataset without published ones), few-shot ``support`` and the shot budgets that go
    with it. Each of ``shift_extractors`` gives the splits one more shift measure, their FID under its
    features (``fid@<extractor>``; its default weights, computed as the main extractor's).
    """
    from tasks.splits.features import class_mean_features, default_extractor

    extractor = extractor or default_extractor(dataset)
    support = support or default_support(dataset)
    features = class_mean_features(
        images, extractor, cache_dir=cache_dir, weights=weights, device=device, progress=progress
    )
    others = {
        name: class_mean_features(images, name, cache_dir=cache_dir, device=device, progress=progress)
        for name in shift_extractors
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    features.save_npz(out / "class_means.npz")
    by_class = images.indices_by_class()
    split_file = build_split_file(
        features.class_names,
        features.means,
        images.default_train,
        images.default_test,
        config=config or default_settings(dataset, (len(images.default_train), len(images.default_test))),
        selection=selection,
        images_by_class={c: [images.image_ids[i] for i in idx] for c, idx in by_class.items()},
        shots=shots or default_shots(support),
        episodes=episodes,
        support=support,
        seed=seed,
        progress=progress,
        provenance={
            "dataset": images.name,
            "root": str(images.root),
            "dataset_options": dict(dataset_options or {}),
            "extractor": extractor,
            "feature_hash": features.feature_hash,
            "shift_feature_hashes": {name: other.feature_hash for name, other in others.items()},
        },
        shift_features={name: other.means for name, other in others.items()},
    )
    write_split_outputs(split_file, out)
    return split_file


def _prepare(split_id, step: SplitStep, images_by_class, shots, episodes, support, seed) -> Split:
    split_train, split_val = train_val_division(step.train, seed=seed + split_id)
    episode_sets, too_small = {}, {}
    if images_by_class is not None:
        for s in shots:
            try:
                episode_sets[s], small = EPISODE_BUILDERS[support](
                    images_by_class, step.test, s, episodes, seed=seed * 1_000_003 + split_id * 101 + s
                )
            except ValueError as err:
                raise ValueError(f"split {split_id} (key {step.key}): {err}") from None
            if small:
                too_small[s] = small
    return Split(
        id=split_id,
        key=step.key,
        progression=step.progression,
        fid=step.fid,
        train=list(step.train),
        test=list(step.test),
        split_train=split_train,
        split_val=split_val,
        episodes=episode_sets,
        too_small=too_small,
    )


def load_features_npz(path: str | Path) -> tuple[list[str], np.ndarray, list[str], list[str]]:
    """Arrays ``class_names``, ``class_means``, ``train``, ``test`` (initial partition) from an npz file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"class_names", "class_means", "train", "test"} - set(data.files)
            if missing:
                raise SplitFileError(
                    f"{path}: missing arrays {sorted(missing)}; expected class_names (C), class_means (C x d), "
                    "train and test (class names of the initial partition)"
                )
            names = [str(c) for c in data["class_names"]]
            means = np.asarray(data["class_means"], dtype=np.float64)
            train, test = [str(c) for c in data["train"]], [str(c) for c in data["test"]]
    except (OSError, ValueError) as err:
        raise SplitFileError(f"{path}: cannot read features ({err})") from err
    if means.ndim != 2 or len(means) != len(names):
        raise SplitFileError(f"{path}: class_means has shape {means.shape}, expected ({len(names)}, d)")
    if not np.isfinite(means).all():
        raise SplitFileError(f"{path}: class_means holds non-finite values")
    return names, means, train, test


def write_split_outputs(split_file: SplitFile, out_dir: str | Path) -> tuple[Path, Path]:
    """``splits.json`` (everything) and ``splits.pkl`` (ooDML format) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_json(split_file, out / "splits.json"), write_pickle(split_file, out / "splits.pkl")
