"""A study's inputs, each read once: a dataset's images (decoded, to find unreadable ones) and each split
file, checked against the spec as it is read (``DatasetPlan``).

``StudyInputs`` reads them on first use, so the preflight's checks (``study.preflight``) that need none
run before any image is decoded; the plans the preflight read are the ones the study expands
(``study.expand``, which reads nothing), and a split file the study builds is read once, after building.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from study.results.storage import StudyPath, local_copy, locate
from study.spec import DatasetEntry, SpecError, StudySpec
from tasks.data import (
    DatasetError,
    LabelledImages,
    build_dataset,
    describe_unreadable,
    find_unreadable,
    select_images,
)
from tasks.splits.check import class_sizes
from tasks.splits.episodes import has_support
from tasks.splits.files import Split, SplitFileError, read_split_file
from tasks.splits.heldout import MIN_HALF, kept_classes


@dataclass(frozen=True)
class DatasetPlan:
    """A dataset with its split file read: the splits to evaluate and the one to tune on."""

    entry: DatasetEntry
    split_file: StudyPath  # where trials read it: a local path, or an object (fetched by the trainable)
    evaluated: tuple[Split, ...]
    default: Split

    @classmethod
    def load(
        cls,
        entry: DatasetEntry,
        split_file: StudyPath,
        spec: StudySpec,
        class_sizes: Mapping[str, int] | None = None,
    ) -> DatasetPlan:
        """Read and check the split file against the spec (keys exist, every budget has episodes, batches
        fit). ``class_sizes`` (images per class) serves the oracle's check: without it, and with the oracle
        on, the entry's dataset is built to count them."""
        split_file = locate(split_file).resolve()
        field = f"datasets.{spec.datasets.index(entry)}"
        source = (
            f"{field}.split_file" if entry.split_file else f"{field} (split file built from {field}.splits)"
        )
        where = f"{source} ({split_file})"
        try:
            splits = read_split_file(local_copy(split_file))
        except SplitFileError as err:
            raise SpecError(f"{source}: {err}") from None
        keys = [s.key for s in splits.splits]
        wanted = entry.evaluate or keys
        unknown = [k for k in [*wanted, entry.default_split] if k not in keys]
        if unknown:
            raise SpecError(
                f"{where}: split keys {unknown} are not in the split file; it has {keys}: set "
                f"{field}.evaluate and {field}.default_split to keys it has"
            )
        evaluated = tuple(splits.split(k) for k in wanted)
        for split in evaluated:
            have = sorted(
                s for s, episodes in split.episodes.items() if episodes and has_support(episodes[0])
            )
            missing = [s for s in spec.shots if s not in have]
            if missing:
                raise SpecError(
                    f"{where}: split {split.key} has no few-shot episodes for budgets {missing} "
                    f"(its test classes are too small or the file was built without them; it has {have}); "
                    "lower fewshot.budgets or rebuild the splits with these shots"
                )
        default = splits.split(entry.default_split)
        _check_batch(spec, [default, *evaluated], where)
        if spec.oracle_methods:  # an oracle trains on the test classes the held-out division keeps
            sizes = class_sizes if class_sizes is not None else dataset_class_sizes(entry, field)
            kept = {s.key: len(kept_classes(s.test, sizes)) for s in evaluated}
            fewest = min(kept, key=kept.__getitem__)
            holder = f"the oracle of split {fewest} of {where}"
            which = f"its test classes of {2 * MIN_HALF} images or more, of {len(splits.split(fewest).test)}"
            check_batch_classes(spec, kept[fewest], holder, which)
        return cls(entry, split_file, evaluated, default)


def dataset_class_sizes(entry: DatasetEntry, field: str) -> dict[str, int]:
    """Images per class of the entry's dataset (built, not decoded)."""
    try:
        return class_sizes(build_dataset(entry.dataset, entry.root, **entry.builder_options()))
    except DatasetError as err:
        raise SpecError(f"{field}.root: {err}") from None


def _check_batch(spec: StudySpec, splits: list[Split], where: str) -> None:
    smallest = min(splits, key=lambda s: len(s.split_train))
    check_batch_classes(spec, len(smallest.split_train), f"split {smallest.key} of {where}")


def check_batch_classes(spec: StudySpec, classes: int, holder: str, which: str = "its split_train") -> None:
    """Every training batch needs ``batch_size / samples_per_class`` distinct training classes, for each
    method's training settings; ``holder`` (a split, in words) trains on ``classes`` (``which`` ones)."""
    for index, method in enumerate(spec.methods):
        training = spec.method_settings(method).training
        size, per_class = training.batch_size, training.samples_per_class
        if classes < size // per_class:
            field = f"methods.{index}.training" if "batch_size" in method.training else "training"
            raise SpecError(
                f"{field}.batch_size: a batch of {size} images with samples_per_class {per_class} needs "
                f"{size // per_class} distinct classes, but {holder} trains on {classes} classes ({which}); "
                f"lower {field}.batch_size to at most {classes * per_class}"
            )


class DatasetInputs:
    """One dataset entry's inputs, each read on first use and kept: its images, every one decoded once
    (unreadable ones refused or left out, as the entry says), and its split file where the spec names one."""

    def __init__(self, spec: StudySpec, index: int, echo: Callable[[str], None]) -> None:
        self.spec, self.index, self.entry, self.echo = spec, index, spec.datasets[index], echo

    @property
    def field(self) -> str:
        """Where the spec sets this entry: ``datasets.<index>``."""
        return f"datasets.{self.index}"

    @cached_property
    def images(self) -> LabelledImages:
        """The dataset, every image decoded once: unreadable ones fail or are left out, as the spec says."""
        entry, field = self.entry, self.field
        try:
            images = build_dataset(entry.dataset, entry.root, **entry.builder_options())
        except DatasetError as err:
            raise SpecError(f"{field}.root: {err}") from None
        self.echo(f"{field} ({entry.name}): checking {len(images)} images under {images.root}")
        problems = find_unreadable(images)
        if not problems:
            return images
        listed = describe_unreadable(problems)
        if entry.unreadable_images == "fail":
            raise SpecError(
                f"{field}: {len(problems)} unreadable images under {images.root}:\n{listed}\nreplace them, "
                f"or set {field}.unreadable_images: skip to leave them out (they are then reported)"
            )
        bad = {p.index for p in problems}
        try:
            kept = select_images(images, [i for i in range(len(images)) if i not in bad])
        except DatasetError as err:
            raise SpecError(f"{field}: unreadable_images: skip: {err}") from None
        self.echo(
            f"{field} ({entry.name}): leaving out {len(problems)} unreadable images (unreadable_images: skip):"
        )
        self.echo(listed)
        return kept

    @cached_property
    def sizes(self) -> dict[str, int]:
        """Images per class, of the images kept."""
        return class_sizes(self.images)

    @cached_property
    def plan(self) -> DatasetPlan | None:
        """The split file the spec names, read and checked against the spec; None where the study builds
        one (read by ``StudyInputs.plans`` once built)."""
        if not self.entry.split_file:
            return None
        return DatasetPlan.load(self.entry, Path(self.entry.split_file), self.spec, self.sizes)

    @property
    def splits(self) -> list[Split]:
        """The given split file's splits the study uses (the default one and those evaluated), once each."""
        if self.plan is None:
            return []
        return list({s.key: s for s in (self.plan.default, *self.plan.evaluated)}.values())


class StudyInputs:
    """Every dataset entry's inputs (``DatasetInputs``), read on first use, once."""

    def __init__(self, spec: StudySpec, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.datasets = [DatasetInputs(spec, i, echo) for i in range(len(spec.datasets))]

    def plans(self, split_files: Sequence[StudyPath]) -> list[DatasetPlan]:
        """Each entry's plan: the given split files' as read already, the built ones' read now (at
        ``split_files``, one per entry: ``study.splitfiles.split_file``)."""
        return [
            d.plan or DatasetPlan.load(d.entry, path, self.spec, d.sizes)
            for d, path in zip(self.datasets, split_files, strict=True)
        ]
