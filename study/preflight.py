"""A study's inputs checked before anything is written: no study folder, lock, tracking store or Ray.

A spec can be valid and still impossible on the data it names: the dataset root is missing or laid out
wrongly, an image cannot be decoded, the split file names classes or support images the dataset does
not hold, or a few-shot budget or a batch needs more than the classes have. Every trial would fail,
one by one, after the study started; here each is one error naming the field to fix. The unreadable
images a spec chooses to skip are reported instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from study.expand import DatasetPlan, check_batch_classes
from study.spec import DatasetEntry, SpecError, StudySpec
from tasks.data import (
    DatasetError,
    LabelledImages,
    build_dataset,
    describe_unreadable,
    find_unreadable,
    select_images,
)
from tasks.fewshot import MIN_QUERY_CLASSES
from tasks.models import pretrained_weights
from tasks.splits.check import class_sizes, missing_support_images, unknown_classes
from tasks.splits.episodes import (
    MIN_QUERY_IMAGES,
    images_needed,
    is_whole_class,
    too_small_classes,
    train_val_division,
    whole_class_max_shots,
)
from tasks.splits.features import default_extractor, extractor_weights
from tasks.splits.files import Split


def check_inputs(spec: StudySpec, echo: Callable[[str], None]) -> None:
    """Raise ``SpecError`` naming the field to fix for the first input that cannot run as specified."""
    check_weights(spec)
    for index, entry in enumerate(spec.datasets):
        field = f"datasets.{index}"
        images = readable_images(entry, field, echo)
        if entry.split_file:
            plan = DatasetPlan.load(entry, Path(entry.split_file), spec, class_sizes(images))
            where = f"{field}.split_file ({plan.split_file})"
            for split in {s.key: s for s in (plan.default, *plan.evaluated)}.values():
                check_split(spec, split, images, field, where, echo)
        else:
            check_unbuilt(spec, entry, images, field, echo)


def check_weights(spec: StudySpec) -> None:
    """Each backbone's pretrained weights (the study's, and a method's own) are where every trial will look
    for them."""
    for index, method in enumerate(spec.methods):
        model = spec.method_settings(method).model
        field = f"methods.{index}.model" if method.model else "model"
        try:
            pretrained_weights(model.backbone, model.pretrained)
        except (FileNotFoundError, ValueError) as err:
            raise SpecError(f"{field}.pretrained: {err}") from None


def readable_images(entry: DatasetEntry, field: str, echo: Callable[[str], None]) -> LabelledImages:
    """The dataset, every image decoded once: unreadable ones fail or are left out, as the spec says."""
    try:
        images = build_dataset(entry.dataset, entry.root, **entry.builder_options())
    except DatasetError as err:
        raise SpecError(f"{field}.root: {err}") from None
    echo(f"{field} ({entry.name}): checking {len(images)} images under {images.root}")
    problems = find_unreadable(images)
    if not problems:
        return images
    listed = describe_unreadable(problems)
    if entry.unreadable_images == "fail":
        raise SpecError(
            f"{field}: {len(problems)} unreadable images under {images.root}:\n{listed}\n"
            f"replace them, or set {field}.unreadable_images: skip to leave them out (they are then reported)"
        )
    bad = {p.index for p in problems}
    try:
        kept = select_images(images, [i for i in range(len(images)) if i not in bad])
    except DatasetError as err:
        raise SpecError(f"{field}: unreadable_images: skip: {err}") from None
    echo(f"{field} ({entry.name}): leaving out {len(problems)} unreadable images (unreadable_images: skip):")
    echo(listed)
    return kept


def check_split(
    spec: StudySpec,
    split: Split,
    images: LabelledImages,
    field: str,
    where: str,
    echo: Callable[[str], None] = lambda line: None,
) -> None:
    """A given split file's split against the dataset: its classes, support images and test class sizes."""
    sizes = class_sizes(images)
    name = f"split {split.id} (key {split.key}) of {where}"
    unknown = unknown_classes(split, sizes)
    if unknown:
        raise SpecError(
            f"{name} names {len(unknown)} classes that are not in dataset {images.name} at {images.root}, "
            f"e.g. {unknown[:5]}; the file was built for another dataset or other options: check "
            f"{field}.root and {field}.options, or rebuild the split file (oodml splits build)"
        )
    missing = [m for m in missing_support_images(split, images) if m.shots in spec.shots]
    if missing:
        m = missing[0]
        raise SpecError(
            f"{name}: its {m.shots}-shot episode {m.episode} uses support image {m.image!r} of class "
            f"{m.class_name!r}, which dataset {images.name} at {images.root} does not hold (missing, or "
            f"left out as unreadable; {len(missing)} such images in all); restore the images or rebuild the "
            "split file"
        )
    per_image = [s for s in spec.shots if not any(map(is_whole_class, split.episodes.get(s, [])))]
    check_class_sizes(
        spec, per_image, split.test, sizes, f"split {split.key} of {where} has test classes", echo
    )


def check_unbuilt(
    spec: StudySpec,
    entry: DatasetEntry,
    images: LabelledImages,
    field: str,
    echo: Callable[[str], None] = lambda line: None,
) -> None:
    """A dataset whose split file the study builds: the checks its classes allow before any split exists."""
    try:
        split_train, _ = train_val_division(images.default_train, seed=0)
    except ValueError as err:
        raise SpecError(f"{field}.root: dataset {images.name} at {images.root}: {err}") from None
    check_batch_classes(spec, len(split_train), f"the default split of {field} ({images.name})")
    sizes = class_sizes(images)
    if entry.support == "images":
        check_class_sizes(
            spec,
            spec.shots,
            images.classes,
            sizes,
            f"dataset {images.name} ({field}) has classes (any class can become a test class as splits move "
            "classes between train and test)",
            echo,
        )
    if entry.support == "classes":
        if entry.build.shots:
            check_whole_class_budgets(entry.build.shots, f"{field}.splits.shots", images, sizes, field)
        check_whole_class_budgets(spec.shots, "fewshot.budgets", images, sizes, field)
    check_feature_weights(entry, images, field)


def check_whole_class_budgets(
    budgets: Iterable[int], budget_field: str, images: LabelledImages, sizes: dict[str, int], field: str
) -> None:
    """Whole-class budgets must leave two query classes among the default split's test classes."""
    test = images.default_test
    most = whole_class_max_shots([sizes[c] for c in test])
    too_many = sorted(s for s in budgets if s > most)
    if too_many:
        raise SpecError(
            f"{budget_field}: {too_many} shots with whole-class support (docs/protocol.md section 5) need "
            f"that many images per test class, spent on whole classes with at least 2 classes left as "
            f"queries; the {len(test)} test classes of the default split of {field} ({images.name}) hold "
            f"{sum(sizes[c] for c in test)} images, enough for at most {most} shots: lower {budget_field}"
        )


def check_feature_weights(entry: DatasetEntry, images: LabelledImages, field: str) -> None:
    """The FID feature extractors that will build the splits (and measure their shift) have their weights
    (none are downloaded)."""
    extractor = entry.build.extractor or default_extractor(entry.dataset)
    try:
        extractor_weights(images, extractor, entry.build.weights)
    except FileNotFoundError as err:
        raise SpecError(
            f"{field}.splits.weights: {extractor} features build this dataset's splits: {err}"
        ) from None
    for other in entry.build.shift_extractors or ():
        try:
            extractor_weights(images, other)
        except FileNotFoundError as err:
            raise SpecError(
                f"{field}.splits.shift_extractors: {other} features give this dataset's splits a shift "
                f"measure: {err}"
            ) from None


def check_class_sizes(
    spec: StudySpec,
    budgets: Iterable[int],
    test: Iterable[str],
    sizes: dict[str, int],
    holder: str,
    echo: Callable[[str], None],
) -> None:
    """Every per-image budget needs ``shots`` support images and 2 queries in each class of ``test``
    (``tasks.fewshot.images_needed``, the threshold the trials leave classes out by).

    ``small_classes: fail`` refuses a budget some class is too small for; ``leave_out`` reports those
    classes, and still refuses a budget that would leave fewer than 2 classes to score.
    """
    test = list(test)
    leave_out = spec.fewshot.small_classes == "leave_out"
    for shots in budgets:
        if shots == 0:
            continue
        small = too_small_classes(test, sizes, shots)
        if not small:
            continue
        need = images_needed(shots)
        listed = ", ".join(f"{c} ({n} images)" for c, n in list(small.items())[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        kept = len(test) - len(small)
        if leave_out and kept >= MIN_QUERY_CLASSES:
            echo(
                f"fewshot.budgets: {shots} shots leave out {len(small)} of {len(test)} classes with fewer than "
                f"{need} images (fewshot.small_classes: leave_out; counted in left_out_classes): {listed}{more}"
            )
            continue
        fits = sorted(sizes[c] for c in test if c in sizes)
        # the largest budget that keeps 2 classes (leave_out) or every class (fail)
        smallest = fits[-MIN_QUERY_CLASSES] if leave_out and len(fits) >= MIN_QUERY_CLASSES else fits[0]
        largest = smallest - MIN_QUERY_IMAGES
        lower = f"lower fewshot.budgets to at most {largest}" if largest >= 1 else f"drop budget {shots}"
        need_text = (
            f"fewshot.budgets: {shots} shots need {need} images in a test class ({shots} support, at least "
            f"{MIN_QUERY_IMAGES} queries, the gallery of each other)"
        )
        if leave_out:
            raise SpecError(
                f"{need_text}, but {holder} with fewer: {listed}{more}; leaving them out "
                f"(fewshot.small_classes: leave_out) keeps {kept} of {len(test)}, and an episode needs "
                f"{MIN_QUERY_CLASSES} classes to score: {lower}"
            )
        raise SpecError(
            f"{need_text}, but {holder} with fewer: {listed}{more}; {lower}, or set "
            "fewshot.small_classes: leave_out to leave such classes out of those episodes"
        )
