"""A dataset's split file: the one the spec names, or one built once in the study folder.

Building goes through ``tasks.splits.build.build_from_dataset``, the function behind
``oodml splits build``, with the spec's options. What the file depends on (dataset, root, options,
build settings, shot budgets) is saved next to it; a later run asking for anything else is refused
rather than silently mixing results of two split sets in one study.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from study.results.layout import SPLIT_FILE, SPLIT_OPTIONS_FILE, split_dir
from study.results.storage import ObjectPath, StudyPath, scratch_path, upload
from study.spec import DatasetEntry, SpecError

OPTIONS_FILE = SPLIT_OPTIONS_FILE  # what the built split file depends on


def build_request(entry: DatasetEntry, shots: list[int]) -> dict[str, Any]:
    """Everything ``entry``'s built split file depends on, as JSON types (what ``OPTIONS_FILE`` holds)."""
    settings = entry.build.model_dump(mode="json")
    settings["shots"] = settings["shots"] if settings["shots"] is not None else list(shots)
    if not settings["shift_extractors"]:  # absent when none: split files built before the option still match
        del settings["shift_extractors"]
    return {"dataset": entry.dataset, "root": entry.root, "options": entry.loader_options(), **settings}


def split_file(entry: DatasetEntry, shots: list[int], study_dir: StudyPath) -> StudyPath:
    """The split file of ``entry``, building it into ``<study>/splits/<entry name>/`` on first use. A study
    folder on an object store gets it built in the scratch space and uploaded, ``splits.json`` last."""
    if entry.split_file:
        return Path(entry.split_file)
    out = split_dir(study_dir, entry.name)
    request = build_request(entry, shots)
    built, options = out / SPLIT_FILE, out / OPTIONS_FILE
    if built.is_file():
        recorded = json.loads(options.read_text()) if options.is_file() else None
        if recorded != request:
            raise SpecError(
                f"datasets[{entry.name}]: {built} was built with other settings ({recorded}); this spec asks "
                f"for {request}. Use a new study folder (storage.root), or delete {out} and its results."
            )
        return built
    from tasks.data import build_dataset
    from tasks.splits.build import build_from_dataset
    from tasks.splits.cli import report
    from tasks.splits.settings import overrides_of, progression_config

    s, options_of_loader = entry.build, entry.loader_options()
    images = build_dataset(entry.dataset, entry.root, **options_of_loader)
    sides = (len(images.default_train), len(images.default_test))
    work = scratch_path(out) if isinstance(out, ObjectPath) else out
    work.mkdir(parents=True, exist_ok=True)
    (work / OPTIONS_FILE).write_text(json.dumps(request))  # first: splits.json (written last) is the marker
    built_file = build_from_dataset(
        entry.dataset,
        images,
        work,
        extractor=s.extractor,
        weights=s.weights,
        device=s.device,
        config=progression_config(entry.dataset, sides=sides, **overrides_of(s)),
        selection=s.select,
        shots=request["shots"],
        episodes=s.episodes,
        support=s.support,
        seed=s.seed,
        dataset_options=options_of_loader,
        shift_extractors=s.shift_extractors or (),
    )
    report(built_file, work)
    if isinstance(out, ObjectPath):
        upload(work, out, last=SPLIT_FILE)
    return built
