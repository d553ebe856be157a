"""A study's inputs checked before anything is written: no study folder, lock, tracking store or Ray.

A spec can be valid and still impossible on the data it names: the dataset root is missing or laid out
wrongly, an image cannot be decoded, the split file names classes or support images the dataset does
not hold, or a few-shot budget or a batch needs more than the classes have. Every trial would fail,
one by one, after the study started; here each is one error naming the field to fix. The unreadable
images a spec chooses to skip are reported instead.

The checks are ``CHECKS``, in the order they run: each a ``Check``, a name and a function with a
docstring. A check of the spec alone (``scope="study"``) takes the ``StudySpec``; a check of a dataset
(``scope="dataset"``) runs once per dataset entry and takes its ``DatasetInputs`` (its images and split
file, each read once, on first use: ``study.inputs``). A check raises ``SpecError`` naming the field to
fix; ``check_inputs`` says which check refused the inputs and returns them read, for the study to expand.
A new check is one function and one entry in ``CHECKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from study.inputs import DatasetInputs, StudyInputs, check_batch_classes
from study.spec import DatasetEntry, SpecError, StudySpec
from tasks.data import LabelledImages
from tasks.fewshot import MIN_QUERY_CLASSES
from tasks.models import pretrained_weights
from tasks.splits.check import missing_support_images, unknown_classes
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


@dataclass(frozen=True)
class Check:
    """One named check of a study's inputs: ``run`` raises ``SpecError`` naming the field to fix."""

    name: str
    run: Callable[[StudySpec], None] | Callable[[DatasetInputs], None]
    scope: Literal["study", "dataset"] = "dataset"

    @property
    def about(self) -> str:
        """What it checks: its function's docstring, on one line."""
        return " ".join((self.run.__doc__ or "").split())


class PreflightError(SpecError):
    """A check refused the inputs: the message names the field to fix, ``check`` the check."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


def check_inputs(
    spec: StudySpec, echo: Callable[[str], None], checks: Sequence[Check] | None = None
) -> StudyInputs:
    """Run ``checks`` (default ``CHECKS``) in order; the first refusal is echoed with its check's name and
    raised (``PreflightError``). Returns the inputs the checks read, to be read no more."""
    inputs = StudyInputs(spec, echo)
    for check in CHECKS if checks is None else checks:
        try:
            if check.scope == "study":
                check.run(spec)
            else:
                for dataset in inputs.datasets:
                    check.run(dataset)
        except SpecError as err:
            echo(f"preflight: check {check.name!r} ({check.about}) refused the inputs")
            raise PreflightError(str(err), check.name) from None
    return inputs


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


def check_images(dataset: DatasetInputs) -> None:
    """The dataset's root holds it, laid out as its kind reads it, and every image decodes (or is left
    out and reported, with ``unreadable_images: skip``)."""
    dataset.images  # noqa: B018 (read on first use: reading them is the check)


def check_split_file(dataset: DatasetInputs) -> None:
    """A given split file reads, holds the keys the spec names, has episodes for every budget, and its
    training classes fill a batch (the oracle's too)."""
    dataset.plan  # noqa: B018 (read on first use: reading it is the check)


def _given_file(dataset: DatasetInputs) -> str:
    """The given split file, as messages name it: the field and the file."""
    return f"{dataset.field}.split_file ({dataset.plan.split_file})"


def _split_name(dataset: DatasetInputs, split: Split) -> str:
    return f"split {split.id} (key {split.key}) of {_given_file(dataset)}"


def check_split_classes(dataset: DatasetInputs) -> None:
    """A given split file names only classes the dataset holds."""
    images, field = dataset.images, dataset.field
    for split in dataset.splits:
        unknown = unknown_classes(split, dataset.sizes)
        if unknown:
            raise SpecError(
                f"{_split_name(dataset, split)} names {len(unknown)} classes that are not in dataset "
                f"{images.name} at {images.root}, e.g. {unknown[:5]}; the file was built for another dataset "
                f"or other options: check {field}.root and {field}.options, or rebuild the split file "
                "(oodml splits build)"
            )


def check_support_images(dataset: DatasetInputs) -> None:
    """A given split file's support images, of the budgets the study adapts with, are in the dataset."""
    images, shots = dataset.images, dataset.spec.shots
    for split in dataset.splits:
        missing = [m for m in missing_support_images(split, images) if m.shots in shots]
        if missing:
            m = missing[0]
            raise SpecError(
                f"{_split_name(dataset, split)}: its {m.shots}-shot episode {m.episode} uses support image "
                f"{m.image!r} of class {m.class_name!r}, which dataset {images.name} at {images.root} does "
                f"not hold (missing, or left out as unreadable; {len(missing)} such images in all); restore "
                "the images or rebuild the split file"
            )


def check_test_class_sizes(dataset: DatasetInputs) -> None:
    """A given split file's test classes hold enough images for each per-image budget
    (``check_class_sizes``)."""
    spec = dataset.spec
    for split in dataset.splits:
        per_image = [s for s in spec.shots if not any(map(is_whole_class, split.episodes.get(s, [])))]
        holder = f"split {split.key} of {_given_file(dataset)} has test classes"
        check_class_sizes(spec, per_image, split.test, dataset.sizes, holder, dataset.echo)


def check_default_division(dataset: DatasetInputs) -> None:
    """A dataset whose split file the study builds: its default train classes divide into train and
    validation classes, and the training ones fill a batch."""
    if dataset.plan is not None:
        return
    images, field = dataset.images, dataset.field
    try:
        split_train, _ = train_val_division(images.default_train, seed=0)
    except ValueError as err:
        raise SpecError(f"{field}.root: dataset {images.name} at {images.root}: {err}") from None
    check_batch_classes(dataset.spec, len(split_train), f"the default split of {field} ({images.name})")


def check_budget_class_sizes(dataset: DatasetInputs) -> None:
    """A dataset whose split file the study builds: with per-image support, every class holds enough
    images for each budget (any class can become a test class); with whole-class support, the default
    split's test classes hold enough for each budget (``check_whole_class_budgets``)."""
    if dataset.plan is not None:
        return
    spec, entry, images, field = dataset.spec, dataset.entry, dataset.images, dataset.field
    if entry.support == "images":
        holder = (
            f"dataset {images.name} ({field}) has classes (any class can become a test class as splits move "
            "classes between train and test)"
        )
        check_class_sizes(spec, spec.shots, images.classes, dataset.sizes, holder, dataset.echo)
    if entry.support == "classes":
        if entry.build.shots:
            check_whole_class_budgets(
                entry.build.shots, f"{field}.splits.shots", images, dataset.sizes, field
            )
        check_whole_class_budgets(spec.shots, "fewshot.budgets", images, dataset.sizes, field)


def check_split_build_weights(dataset: DatasetInputs) -> None:
    """A dataset whose split file the study builds: the feature extractors that build its splits have
    their weights (``check_feature_weights``)."""
    if dataset.plan is None:
        check_feature_weights(dataset.entry, dataset.images, dataset.field)


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


CHECKS: list[Check] = [
    Check("pretrained weights", check_weights, scope="study"),
    Check("dataset images", check_images),
    Check("split file", check_split_file),
    Check("split classes", check_split_classes),
    Check("support images", check_support_images),
    Check("test class sizes", check_test_class_sizes),
    Check("default division", check_default_division),
    Check("budget class sizes", check_budget_class_sizes),
    Check("split build weights", check_split_build_weights),
]
