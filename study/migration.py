"""Trial ids of study folders written before the identity payload (``tasks.identity``), moved to it.

Before it, a trial id hashed the whole trial config, the split hash and the code's versions: the oodml
package's version and a results version (1 until few-shot adaptation followed the original, 2 after).
Every result row set keeps what that hash was made of: its config (``config``), split (``split_hash``),
package version (``versions``) and, for a trial evaluated on other datasets, their split files (read again
for their hashes). ``migrate_trial_ids`` recomputes each row set's old id from them; where it matches the
row set's id, it takes the config with the meaning it had then, computes the id the payload gives it and
moves the row set, its curves, its trial folder and its checkpoint path to that id. A study resumed after
it runs only the trials whose meaning the new code changed:

- results version 1, trials with few-shot budgets: adapted with the criterion's parameters training, the
  support embedded once with the evaluation transform and margin's beta at 1.2 whatever the method, they
  become configs that say so (``fewshot.loss_parameters: trained``, ``fewshot.support_transform: eval``,
  ``fewshot.hyperparameters.beta: 1.2`` where the method's own beta differs); a spec with the new
  defaults runs them again, one that sets those values keeps them;
- results version 1, a hyperparameter that now follows a training setting (``MethodSpec.follows``, e.g.
  uniformity's ``network_lr``) had its declared default: where the setting differs, the config sets it.

A row set whose config no longer validates, or whose old id cannot be recomputed (a split file of another
dataset gone), keeps its id; its trial runs again, and the earlier rows are set aside as superseded once
it completes (``study.results.store.SupersededResults``). Migrating twice changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from study.results.layout import CURVES_DIR, RESULTS_DIR, TRIALS_DIR
from study.results.storage import StudyPath, Where, arrow_source, local_copy, locate
from study.results.store import atomic_write_table, result_path
from tasks.config import DataConfig, TrainingConfig, TrialConfig
from tasks.identity import split_hash, trial_identity
from tasks.methods import method_spec
from tasks.splits.files import SplitFileError, read_split_file

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
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


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
    """Move every row set with an old id to the id the identity payload gives it; old id -> new id."""
    study_dir = locate(study_dir)
    moved: dict[str, str] = {}
    for path in sorted((study_dir / RESULTS_DIR).glob("*.parquet")):
        found = _migration(path)
        if found is None:
            continue
        stage, old, new, table = found
        _move(study_dir, stage, old, new, table)
        moved[old] = new
    if moved:
        echo(
            f"migrated {len(moved)} trial result(s) to the identity payload of this oodml "
            "(docs/reliability.md, trial ids)"
        )
    return moved


def _migration(path: StudyPath) -> tuple[str, str, str, pa.Table] | None:
    """(stage, old id, new id, rows with the new id and config) for a row set to move; else None."""
    table = pq.read_table(**arrow_source(path))
    if not table.num_rows or "config" not in table.column_names:
        return None
    row = table.slice(0, 1).to_pylist()[0]
    if row["status"] != "completed" or not row.get("config") or not row.get("split_hash"):
        return None
    config = json.loads(row["config"])
    package = json.loads(row.get("versions") or "{}").get("oodml")
    try:
        cross = _cross_hashes(config)
    except (ValidationError, SplitFileError, OSError, ValueError):
        return None
    for version in LEGACY_RESULTS_VERSIONS:
        if package and legacy_trial_id(config, row["split_hash"], package, version, cross) == row["trial_id"]:
            break
    else:
        return None
    try:
        then = meaning_then(config, version)
    except (ValidationError, ValueError):
        return None
    new = trial_identity(then, row["split_hash"], cross)
    if new == row["trial_id"]:
        return None
    replaced = {
        "trial_id": new,
        "config": json.dumps(then.model_dump(mode="json"), sort_keys=True),
        "checkpoint": row["checkpoint"].replace(row["trial_id"], new) if row.get("checkpoint") else None,
    }
    for name, value in replaced.items():
        if name in table.column_names:
            column = pa.array([value] * table.num_rows, table.schema.field(name).type)
            table = table.set_column(table.schema.get_field_index(name), name, column)
    return row["stage"], row["trial_id"], new, table


def _cross_hashes(config: dict[str, Any]) -> list[str]:
    """The split hash of each of a stored config's cross-dataset entries, from their split files."""
    entries = [DataConfig.model_validate(entry) for entry in config.get("evaluate_on", [])]
    return [split_hash(read_split_file(local_copy(e.split_file)).split(e.split)) for e in entries]


def _move(study_dir: StudyPath, stage: str, old: str, new: str, table: pa.Table) -> None:
    """Write the new id's rows and curves, then remove the old; the trial folder follows."""
    curves = result_path(study_dir, old, stage, CURVES_DIR)
    if curves.exists():
        rows = pq.read_table(**arrow_source(curves))
        index = rows.schema.get_field_index("trial_id")
        rows = rows.set_column(index, "trial_id", pa.array([new] * rows.num_rows, pa.string()))
        atomic_write_table(rows, result_path(study_dir, new, stage, CURVES_DIR))
    atomic_write_table(table, result_path(study_dir, new, stage, RESULTS_DIR))
    curves.unlink(missing_ok=True)
    result_path(study_dir, old, stage, RESULTS_DIR).unlink(missing_ok=True)
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
