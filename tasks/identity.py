"""One trial identity, computed before the trial runs, for ``oodml trial`` and for studies alike.

A trial's id hashes its resolved ``TrialConfig`` without the split files' locations (a study folder can
move), the hash of its split's content (``split_hash``) and the versions of the code that defines a
trial's result. The fields added for the oracle and cross-dataset evaluation (``ADDED_FIELDS``) enter it
only when they differ from their defaults, so trials that use neither keep the ids of older study
folders, while a benchmark and an oracle trial (or a trial with and without held-out evaluation) differ.
A cross-dataset entry enters by its dataset, options and split key and by the content hash of that split
(``cross_split_hashes``, only in ids of trials that evaluate on another dataset): a rebuilt split file of
the other dataset changes the id, so its stale cross rows are not reused.
Equal ids mean interchangeable results: that is what makes a study's resume skip work,
and what lets a result of ``oodml trial`` be compared with a study's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from importlib import metadata

from tasks.config import TrialConfig, adaptation_hyperparameters
from tasks.record import TrialIdentity
from tasks.splits.files import Split, read_split_file

# Enters every trial id under the name "record_version" (what it was called when the trial record was a
# flat dict): bump it when what a trial produces changes meaning. Unchanged, study folders written
# before the typed record keep their trial ids and resume.
RESULTS_VERSION = (
    2  # 2: few-shot adaptation as the original (frozen beta, the method's own, augmented support)
)


@cache
def code_versions() -> dict[str, str | int]:
    return {"oodml": metadata.version("oodml"), "record_version": RESULTS_VERSION}


def split_hash(split: Split) -> str:
    """A hash of the split's class lists, division and episodes (what a trial's result depends on; its
    shift measures describe it and leave trial ids unchanged)."""
    payload = split.model_dump(mode="json", exclude={"id", "progression", "shift"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


ADDED_FIELDS = ("role", "heldout", "evaluate_on")


def _hashed_config(config: TrialConfig) -> dict:
    dumped = config.model_dump(
        mode="json", exclude={"data": {"split_file"}, "evaluate_on": {"__all__": {"split_file"}}}
    )
    fields = TrialConfig.model_fields
    for name in ADDED_FIELDS:
        if dumped[name] == fields[name].get_default(call_default_factory=True):
            del dumped[name]
    return dumped


def trial_identity(config: TrialConfig, split_digest: str, cross_digests: Sequence[str] = ()) -> str:
    """The trial id of ``config`` on a split whose ``split_hash`` is ``split_digest``; ``cross_digests``:
    the ``split_hash`` of each ``config.evaluate_on`` entry's split, in order (``cross_split_hashes``)."""
    if len(cross_digests) != len(config.evaluate_on):
        raise ValueError(
            f"a trial evaluated on {len(config.evaluate_on)} other datasets needs as many split hashes, "
            f"got {len(cross_digests)}"
        )
    payload = {
        "config": _hashed_config(config),
        "split": split_digest,
        "code": code_versions(),
    }
    if cross_digests:  # only then: the ids of trials that evaluate on no other dataset stay as they were
        payload["cross_splits"] = list(cross_digests)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cross_split_hashes(config: TrialConfig) -> tuple[str, ...]:
    """The ``split_hash`` of each ``evaluate_on`` entry's split, read from its split file."""
    return tuple(split_hash(read_split_file(d.split_file).split(d.split)) for d in config.evaluate_on)


def config_split(config: TrialConfig) -> Split:
    """The split ``config`` trains and evaluates on, read from its split file."""
    return read_split_file(config.data.split_file).split(config.data.split)


def describe(config: TrialConfig, split: Split | None = None, trial_id: str | None = None) -> TrialIdentity:
    """The identity of a trial as known before it runs: from its config and, if given, its split.

    Without ``trial_id`` it is computed from the split (read from the config's split file if not given).
    ``embedding_dim`` and ``epochs`` are the config's (None: the backbone's default); the trial
    replaces them with what it resolved. An oracle trains on the test classes its held-out division keeps,
    known once the dataset is read: its ``num_train_classes`` is None here and the trial sets it.
    """
    if trial_id is None:
        split = split if split is not None else config_split(config)
        trial_id = trial_identity(config, split_hash(split), cross_split_hashes(config))
    method = config.method
    from tasks.methods import method_spec

    known: dict = {}
    if split is not None:
        known = {
            "split_id": split.id,
            "split_key": split.key,
            "split_progression": split.progression,
            "split_hash": split_hash(split),
            "fid": split.fid,
            "num_train_classes": len(split.train) if config.role != "oracle" else None,
            "num_test_classes": len(split.test),
            "shift": split.shift,
        }
    return TrialIdentity(
        trial_id=trial_id,
        dataset=config.data.dataset_name,
        split_key=known.pop("split_key", str(config.data.split)),
        **known,
        method=method.label,
        method_name=method.name,
        method_variant=method.variant or method_spec(method.name).default_variant,
        backbone=config.model.backbone,
        embedding_dim=config.model.embedding_dim,
        seed=config.seed,
        epochs=config.training.epochs,
        protocol=config.training.protocol,
        trial_role=config.role,
        **_adaptation(config),
    )


def _adaptation(config: TrialConfig) -> dict:
    """The identity's few-shot criterion fields (none without few-shot budgets)."""
    if not config.fewshot.shots:
        return {}
    values = adaptation_hyperparameters(config)
    return {
        "fewshot_method": config.fewshot.method,
        "fewshot_hyperparameters": {k: float(v) for k, v in values.items()},
    }
