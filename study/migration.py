"""Trial ids of study folders that an earlier identity gave (``tasks.identity``), moved to the current one.

Two earlier identities wrote study folders:

- **Before the identity payload**, a trial id hashed the whole trial config, the split hash and the code's
  versions: the oodml package's version and a results version (1 until few-shot adaptation followed the
  original, 2 after) (``legacy_trial_id``).
- **Identity version 1** hashed the payload with a split hash that covered the split's key, FID and
  left-out classes too (``split_hash_v1``), so a split file rebuilt with FIDs moved in the last digits gave
  the same work new ids (``trial_id_v1``).

Every result row set keeps what those ids were made of: its config (``config``: its split file and, for a
trial evaluated on other datasets, theirs, read again for their splits), split hash (``split_hash``) and
package version (``versions``). ``migrate_trial_ids`` reads each row set's split from its config's split
file; where the file still holds the split the rows were computed on (its ``split_hash_v1`` is the row
set's split hash) and one of the earlier ids recomputed from them is the row set's id, it takes the config
with the meaning it had then, computes the current id of it and moves the row set, its curves, its trial
folder and its checkpoint path to that id, with the current split hash (what ``oodml leaderboard``
compares). A study resumed after it runs only the trials whose meaning the new code changed; for a row
set before the payload:

- results version 1, trials with few-shot budgets: adapted with the criterion's parameters training, the
  support embedded once with the evaluation transform and margin's beta at 1.2 whatever the method, they
  become configs that say so (``fewshot.loss_parameters: trained``, ``fewshot.support_transform: eval``,
  ``fewshot.hyperparameters.beta: 1.2`` where the method's own beta differs); a spec with the new
  defaults runs them again, one that sets those values keeps them;
- results version 1, a hyperparameter that now follows a training setting (``MethodSpec.follows``, e.g.
  uniformity's ``network_lr``) had its declared default: where the setting differs, the config sets it.

A row set whose config no longer validates, or whose old id cannot be recomputed (a split file gone or
rebuilt with other classes or episodes), keeps its id; its trial runs again, and the earlier rows are set
aside as superseded once it completes (``study.results.store.SupersededResults``). Migrating twice changes
nothing: a moved row set's split hash is the current one, which no earlier split hash equals.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from study.results.layout import CURVES_DIR, RESULTS_DIR, TRIALS_DIR
from study.results.schema import SCHEMA
from study.results.storage import StudyPath, Where, arrow_source, local_copy, locate
from study.results.store import atomic_write_table, read_folder, result_path
from tasks.config import DataConfig, TrainingConfig, TrialConfig
from tasks.identity import content_hash, identity_payload, split_hash, trial_identity
from tasks.methods import method_spec
from tasks.splits.files import Split, SplitFile, SplitFileError, read_split_file

_MADE_OF = ["config", "split_hash", "versions"]  # what an old id was made of, besides the cross splits
# the fields the old ids left out while at their defaults (the oracle's and cross-dataset evaluation's)
_LEGACY_ADDED = {"role": "benchmark", "heldout": None, "evaluate_on": []}
LEGACY_RESULTS_VERSIONS = (1, 2)


def legacy_trial_id(
    config: dict[str, Any], split_digest: str, package_version: str, results_version: int, cross: list[str]
) -> str:
    """The id a trial config (as its row set stores it) had before the identity payload."""
    dumped = copy.deepcopy(config)
    dumped["data"].pop("split_file", None)
    for entry in dumped.get("evaluate_on", []):
        entry.pop("split_file", None)
    for name, default in _LEGACY_ADDED.items():
        if dumped.get(name) == default:
            dumped.pop(name, None)
    payload: dict[str, Any] = {
        "config": dumped,
        "split": split_digest,
        "code": {"oodml": package_version, "record_version": results_version},
    }
    if cross:
        payload["cross_splits"] = list(cross)
    return content_hash(payload)


def split_hash_v1(split: Split) -> str:
    """The split hash of identity version 1 (and before it): every field of the split but its id,
    progression and shift measures beside the FID, so its key, FID and left-out classes too."""
    return content_hash(split.model_dump(mode="json", exclude={"id", "progression", "shift"}))


def trial_id_v1(config: TrialConfig, split_digest: str, cross_digests: Sequence[str] = ()) -> str:
    """The id identity version 1 gave ``config`` on a split whose ``split_hash_v1`` is ``split_digest``
    (``cross_digests``: those of its ``evaluate_on`` splits): the payload it has now, at version 1."""
    return content_hash(identity_payload(config, split_digest, cross_digests) | {"identity_version": 1})


def meaning_then(config: dict[str, Any], results_version: int) -> TrialConfig:
    """The trial config that, under the current code, means what ``config`` meant when results version
    ``results_version`` wrote it (module docstring)."""
    raw = copy.deepcopy(config)
    if results_version == 1:
        method, training, fewshot = raw["method"], raw.get("training", {}), raw.setdefault("fewshot", {})
        spec = method_spec(method["name"])
        if fewshot.get("shots"):
            fewshot.setdefault("loss_parameters", "trained")
            fewshot.setdefault("support_transform", "eval")
            margin = method_spec("margin").hyperparameters["beta"].default  # always, then
            own = method.get("hyperparameters", {}).get(spec.margin_beta) if spec.margin_beta else None
            if own is None and spec.margin_beta:
                own = spec.hyperparameters[spec.margin_beta].default
            if fewshot.get("method", "margin") == "margin" and own is not None and own != margin:
                fewshot.setdefault("hyperparameters", {}).setdefault("beta", margin)
        for name, setting in spec.follows.items():
            declared = spec.hyperparameters[name].default
            current = training.get(setting, TrainingConfig.model_fields[setting].default)
            if name not in method.get("hyperparameters", {}) and current != declared:
                method.setdefault("hyperparameters", {})[name] = declared
    return TrialConfig.model_validate(raw)


def migrate_trial_ids(study_dir: Where, echo: Callable[[str], None] = lambda line: None) -> dict[str, str]:
    """Move every row set with an earlier id to the id the current identity gives it; old id -> new id. It
    reads the few columns an id is made of (all files at once, as every reader does), each split file once
    and a whole row set only where it moves."""
    study_dir = locate(study_dir)
    columns = ["trial_id", "stage", "status", *_MADE_OF]
    table, _ = read_folder(study_dir / RESULTS_DIR, SCHEMA, columns)  # unreadable files: left as they are
    completed = table.filter(pc.equal(table["status"], "completed"))
    row_sets = completed.group_by(["trial_id", "stage"], use_threads=False).aggregate(
        [(c, "first") for c in _MADE_OF]  # the same on every row of a row set
    )
    moved: dict[str, str] = {}
    splits = _SplitHashes()
    for row in row_sets.to_pylist():
        row = {k.removesuffix("_first"): v for k, v in row.items()}
        found = _migrated(row, splits)
        if found is not None:
            then, new, digest = found
            _move(study_dir, row["stage"], row["trial_id"], new, then, digest)
            moved[row["trial_id"]] = new
    if moved:
        echo(
            f"migrated {len(moved)} trial result(s) to the trial identity of this oodml "
            "(docs/reliability.md, trial ids)"
        )
    return moved


class _SplitHashes:
    """The version 1 and current hashes of the splits stored trial configs name: each split file read
    once and each split hashed once (a study's row sets share a few splits)."""

    def __init__(self) -> None:
        self._files: dict[str, SplitFile] = {}
        self._hashes: dict[tuple[str, str | int], tuple[str, str]] = {}

    def __call__(self, data: dict[str, Any]) -> tuple[str, str]:
        """(``split_hash_v1``, ``split_hash``) of the split ``data`` (a stored ``DataConfig``) selects."""
        entry = DataConfig.model_validate(data)
        key = (entry.split_file, entry.split)
        if key not in self._hashes:
            if entry.split_file not in self._files:
                self._files[entry.split_file] = read_split_file(local_copy(entry.split_file))
            split = self._files[entry.split_file].split(entry.split)
            self._hashes[key] = split_hash_v1(split), split_hash(split)
        return self._hashes[key]


def _migrated(row: dict, splits: _SplitHashes) -> tuple[TrialConfig, str, str] | None:
    """For a row set whose id an earlier identity gave: its config as it meant then, its current id and
    its split's current hash; else None."""
    if not row.get("config") or not row.get("split_hash"):
        return None
    config = json.loads(row["config"])
    try:
        split_v1, digest = splits(config["data"])
        cross = [splits(entry) for entry in config.get("evaluate_on", [])]
    except (ValidationError, SplitFileError, OSError, ValueError, KeyError):
        return None
    if split_v1 != row["split_hash"]:  # current, or the file holds another split now
        return None
    then = _meaning_then(row, config, [v1 for v1, _ in cross])
    if then is None:
        return None
    return then, trial_identity(then, digest, [current for _, current in cross]), digest


def _meaning_then(row: dict, config: dict[str, Any], cross: list[str]) -> TrialConfig | None:
    """The config of a row set, with the meaning it had when an earlier identity gave its id (``cross``:
    the version 1 split hashes of its other datasets' splits); None if no earlier identity gave it."""
    try:
        stored = TrialConfig.model_validate(config)
    except ValidationError:
        stored = None
    if stored is not None and trial_id_v1(stored, row["split_hash"], cross) == row["trial_id"]:
        return stored
    package = json.loads(row.get("versions") or "{}").get("oodml")
    for version in LEGACY_RESULTS_VERSIONS:
        if package and legacy_trial_id(config, row["split_hash"], package, version, cross) == row["trial_id"]:
            try:
                return meaning_then(config, version)
            except (ValidationError, ValueError):
                return None
    return None


def _move(study_dir: StudyPath, stage: str, old: str, new: str, then: TrialConfig, digest: str) -> None:
    """Write the row set and curves under the new id (with the config as it meant then, the split's
    current hash ``digest`` and the checkpoint path of the moved trial folder), then remove the old; the
    trial folder follows."""
    path = result_path(study_dir, old, stage, RESULTS_DIR)
    table = pq.read_table(**arrow_source(path))
    checkpoint = table["checkpoint"][0].as_py() if "checkpoint" in table.column_names else None
    replaced = {
        "trial_id": new,
        "config": json.dumps(then.model_dump(mode="json"), sort_keys=True),
        "split_hash": digest,
        "checkpoint": checkpoint.replace(old, new) if checkpoint else None,
    }
    for name, value in replaced.items():
        if name in table.column_names:
            column = pa.array([value] * table.num_rows, table.schema.field(name).type)
            table = table.set_column(table.schema.get_field_index(name), name, column)
    curves = result_path(study_dir, old, stage, CURVES_DIR)
    if curves.exists():
        rows = pq.read_table(**arrow_source(curves))
        index = rows.schema.get_field_index("trial_id")
        rows = rows.set_column(index, "trial_id", pa.array([new] * rows.num_rows, pa.string()))
        atomic_write_table(rows, result_path(study_dir, new, stage, CURVES_DIR))
    atomic_write_table(table, result_path(study_dir, new, stage, RESULTS_DIR))
    curves.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    source, target = study_dir / TRIALS_DIR / old, study_dir / TRIALS_DIR / new
    if source.exists() and not target.exists():
        _move_folder(source, target)


def _move_folder(source: StudyPath, target: StudyPath) -> None:
    if isinstance(source, Path):  # a local folder: one rename
        source.rename(target)
        return
    for item in list(source.iterdir()):  # an object store: each object, one server-side copy
        if item.is_dir():
            _move_folder(item, target / item.name)
        else:
            item.replace(target / item.name)
