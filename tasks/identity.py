"""One trial identity, computed before the trial runs, for ``oodml trial`` and for studies alike.

A trial's id hashes its identity payload (``identity_payload``): what its result depends on, and nothing
else. That is the trial config's settings that differ from their defaults (``semantic_config``: a new
setting added with a default leaves every existing id as it was), without the split files' locations (a
study folder can move) and, for a trial without few-shot budgets, without the adaptation settings it never
uses; the hash of its split's content (``split_hash``: the classes and episodes a trial reads, not the
split's labels or shift measures, so a split file rebuilt with FIDs moved in the last digits gives the same
ids); for a trial evaluated on other datasets, the content hash of each of their splits
(``cross_split_hashes``: a rebuilt split file of another dataset with other classes or episodes changes
the id, so its stale cross rows are not reused); and ``IDENTITY_VERSION``, which changes only when the same
payload starts to mean another result (a default or a definition changed). The package's version is not in
it: a release re-runs nothing it does not change. Study folders whose ids an earlier identity gave (before
this payload, or identity version 1) are migrated by ``study.migration``.
Equal ids mean interchangeable results: that is what makes a study's resume skip work, and what lets a
result of ``oodml trial`` be compared with a study's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from tasks.config import TrialConfig, adaptation_hyperparameters
from tasks.record import TrialIdentity
from tasks.splits.files import Split, read_split_file

# Bump when an unchanged payload comes to mean another result: a default of the trial config changed
# (tests/trial/test_identity.py pins them), or a method's or a metric's definition changed.
# 2: ``split_hash`` stopped hashing the split's key, FID and left-out classes (version 1 did: a split file
# rebuilt with FIDs moved by 1e-13 gave new ids to the same work); study.migration moves version 1 ids.
IDENTITY_VERSION = 2

# A split's fields, by whether a trial reads them (``split_hash`` hashes those only): its classes, their
# train/validation division and its few-shot episodes; not its labels (``id``, ``key``, ``progression``:
# the trial config names the split), its shift measures (``fid``, ``shift``) nor the record of the test
# classes too small for an episode (``too_small``: the episodes already leave them out).
SPLIT_CONTENT = ("train", "test", "split_train", "split_val", "episodes")
SPLIT_DESCRIPTION = ("id", "key", "progression", "fid", "shift", "too_small")


def content_hash(payload: Any) -> str:
    """The 16 hex digits of SHA-256 over ``payload`` as sorted JSON: how split hashes and trial ids hash."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def split_hash(split: Split) -> str:
    """A hash of what a trial reads of ``split`` (``SPLIT_CONTENT``): its class lists, division and
    episodes. Its labels and shift measures (``SPLIT_DESCRIPTION``) describe it and leave trial ids."""
    return content_hash(split.model_dump(mode="json", include=set(SPLIT_CONTENT)))


def _non_default(model: BaseModel) -> dict[str, Any]:
    """``model``'s required fields and those whose values differ from their defaults, as JSON data; a
    nested model that is required or whose default is a model keeps only its own such fields (and an
    optional one is left out without any)."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel) and (field.is_required() or isinstance(default, BaseModel)):
            nested = _non_default(value)
            if nested or field.is_required():
                out[name] = nested
        elif field.is_required() or value != default:
            out[name] = _json(value)
    return out


def _json(value: Any) -> Any:
    """``value`` as JSON data (a model in full: its presence is what differs from the default)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return value


def semantic_config(config: TrialConfig) -> dict[str, Any]:
    """The settings a trial's result depends on: its config's non-default values, without where split
    files lie, and without the adaptation settings when it has no few-shot budget."""
    found = _non_default(config)
    found["data"].pop("split_file", None)
    for entry in found.get("evaluate_on", []):
        entry.pop("split_file", None)
    if not config.fewshot.shots:
        found.pop("fewshot", None)
    return found


def identity_payload(config: TrialConfig, split_digest: str, cross_digests: Sequence[str] = ()) -> dict:
    """What a trial id hashes (module docstring)."""
    if len(cross_digests) != len(config.evaluate_on):
        raise ValueError(
            f"a trial evaluated on {len(config.evaluate_on)} other datasets needs as many split hashes, "
            f"got {len(cross_digests)}"
        )
    payload: dict[str, Any] = {
        "identity_version": IDENTITY_VERSION,
        "config": semantic_config(config),
        "split": split_digest,
    }
    if cross_digests:
        payload["cross_splits"] = list(cross_digests)
    return payload


def trial_identity(config: TrialConfig, split_digest: str, cross_digests: Sequence[str] = ()) -> str:
    """The trial id of ``config`` on a split whose ``split_hash`` is ``split_digest``; ``cross_digests``:
    the ``split_hash`` of each ``config.evaluate_on`` entry's split, in order (``cross_split_hashes``)."""
    return content_hash(identity_payload(config, split_digest, cross_digests))


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
