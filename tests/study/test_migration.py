"""Study folders written before the identity payload, or with identity version 1, resume without
re-running what they have (study/migration.py).

The old ids are pinned from the code that computed them: the shipped trial config on split hash "s" had
id 9f116a12c2ddabbe from the typed record (adfcb88) to 85ca83b (results version 1), and 3eb6147910e0cfeb
once few-shot adaptation followed the original (results version 2), both with oodml 0.1.0; under identity
version 1 (0954d1b to 75e8393) ``SPLIT`` had split hash 63b04d09f503e5c0, and the shipped config on it id
9619c410e9cb0eaa (b8cbcf0b80f96633 on split hash "s").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from study.migration import (
    legacy_trial_id,
    meaning_then,
    migrate_trial_ids,
    split_hash_v1,
    trial_id_v1,
)
from study.results import read_curves, read_results, write_trial_result
from study.results.layout import CURVES_DIR, RESULTS_DIR, TRIALS_DIR
from study.results.store import atomic_write_table, result_path
from tasks.config import TrialConfig
from tasks.identity import describe, split_hash, trial_identity
from tasks.record import Environment
from tasks.splits.files import Split, SplitFile, read_split_file, write_json
from tests.records import make_record

ROOT = Path(__file__).resolve().parents[2]
# settings added since results version 1: a version-1 row set's config has none of them
ADDED_SINCE_1 = {
    "training": ["warmup_epochs"],
    "fewshot": ["hyperparameters", "loss_parameters", "support_transform", "reweight"],
}


def _as_version_1(config: dict) -> dict:
    old = json.loads(json.dumps(config))
    for section, names in ADDED_SINCE_1.items():
        for name in names:
            old[section].pop(name, None)
    return old


def _shipped() -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "trial_glyphs.yaml").read_text())
    return TrialConfig.model_validate(raw).model_dump(mode="json")


SPLIT = Split(
    id=1,
    key="R2",
    progression="harder",
    fid=35.25,
    train=["a", "b", "c", "d"],
    test=["e", "f", "g"],
    split_train=["a", "b", "c"],
    split_val=["d"],
    episodes={1: [["e"], ["f"]]},
    shift={"mmd": 0.5},
)


def test_the_old_ids_are_the_old_codes() -> None:
    assert legacy_trial_id(_as_version_1(_shipped()), "s", "0.1.0", 1, []) == "9f116a12c2ddabbe"
    assert legacy_trial_id(_shipped(), "s", "0.1.0", 2, []) == "3eb6147910e0cfeb"
    assert split_hash_v1(SPLIT) == "63b04d09f503e5c0"
    shipped = TrialConfig.model_validate(_shipped())
    assert trial_id_v1(shipped, split_hash_v1(SPLIT)) == "9619c410e9cb0eaa"
    assert trial_id_v1(shipped, "s") == "b8cbcf0b80f96633"


def _old_folder(tmp_path: Path, identity: str, split: Split = SPLIT) -> tuple[Path, TrialConfig, str]:
    """A study folder of one trial on ``SPLIT`` as an earlier code wrote it (``identity``: "legacy", before
    the identity payload with oodml 0.1.0, or "v1"), with its curves and trial folder, its split file
    holding ``split``; the study folder, the trial config and the old id."""
    raw = _shipped()
    path = write_json(SplitFile(splits=[split]), tmp_path / "splits.json")
    raw["data"] |= {"split_file": str(path), "split": SPLIT.key}
    config = TrialConfig.model_validate(raw)
    digest = split_hash_v1(SPLIT)
    old = (
        legacy_trial_id(raw, digest, "0.1.0", 2, []) if identity == "legacy" else trial_id_v1(config, digest)
    )
    study = tmp_path / "study"
    (study / TRIALS_DIR / old).mkdir(parents=True)
    (study / TRIALS_DIR / old / "best.pt").write_bytes(b"weights")
    record = make_record(trial_id=old)
    record = dataclasses.replace(
        record,
        identity=dataclasses.replace(record.identity, split_hash=digest),
        config=raw,
        checkpoint=str(study / TRIALS_DIR / old / "best.pt"),
        environment=Environment({"oodml": "0.1.0"}, "cpu", 2),
    )
    write_trial_result(study, record, stage="eval", study="old")
    return study, config, old


@pytest.mark.parametrize("identity", ["legacy", "v1"])
def test_an_earlier_identity_s_folder_moves_to_the_current_ids(tmp_path: Path, identity: str) -> None:
    study, config, old = _old_folder(tmp_path, identity)
    new = describe(config).trial_id  # what a fresh trial of the config gets, from the split file
    assert new == trial_identity(config, split_hash(SPLIT)) != old
    assert migrate_trial_ids(study) == {old: new}
    rows = read_results(study).to_pylist()
    assert {(r["trial_id"], r["split_hash"]) for r in rows} == {(new, split_hash(SPLIT))}
    assert {r["checkpoint"] for r in rows} == {str(study / TRIALS_DIR / new / "best.pt")}
    assert all(TrialConfig.model_validate_json(r["config"]) == config for r in rows)
    assert set(read_curves(study)["trial_id"].to_pylist()) == {new}
    assert (study / TRIALS_DIR / new / "best.pt").read_bytes() == b"weights"
    assert not (study / TRIALS_DIR / old).exists()
    assert migrate_trial_ids(study) == {}  # twice: nothing more


def test_rows_of_a_split_their_file_no_longer_holds_keep_their_id(tmp_path: Path) -> None:
    """The split file rebuilt with other episodes: its split is not the rows' split, their trial runs
    again."""
    other = SPLIT.model_copy(update={"episodes": {1: [["e"], ["g"]]}})
    study, _, old = _old_folder(tmp_path, "v1", split=other)
    assert migrate_trial_ids(study) == {}
    assert set(read_results(study)["trial_id"].to_pylist()) == {old}


def test_a_version_1_config_keeps_its_meaning() -> None:
    raw = _as_version_1(_shipped())
    raw["method"] = {"name": "s2sd", "variant": None, "hyperparameters": {}}
    then = meaning_then(raw, 1)
    fs = then.fewshot
    assert (fs.loss_parameters, fs.support_transform, fs.hyperparameters) == (
        "trained",
        "eval",
        {"beta": 1.2},
    )
    margin = meaning_then(raw | {"method": {"name": "margin", "variant": None, "hyperparameters": {}}}, 1)
    assert margin.fewshot.hyperparameters == {}  # its own beta is 1.2: nothing to say
    uniform = meaning_then(
        raw | {"method": {"name": "uniformity", "variant": None, "hyperparameters": {}}}, 1
    )
    assert uniform.method.hyperparameters == {"network_lr": 1e-5}  # training.lr is 2e-3 there
    zero_shot = _as_version_1(_shipped())
    zero_shot["fewshot"]["shots"] = []
    assert meaning_then(zero_shot, 1).fewshot.loss_parameters == "frozen"  # unused: left at the default
    assert meaning_then(_shipped(), 2) == TrialConfig.model_validate(_shipped())


def _age(
    study_dir: Path, identity: str = "legacy", trial_ids: Collection[str] | None = None
) -> dict[str, str]:
    """Rewrite a study folder (or its trials ``trial_ids``) as an earlier code wrote it: ``"legacy"``,
    before the identity payload (results version 1: configs without the settings added since, ids of the
    old formula), or ``"v1"``, identity version 1; both with the split hashes of version 1. New id -> old
    id."""
    ages = {}
    for path in sorted((study_dir / RESULTS_DIR).glob("*.parquet")):
        table = pq.read_table(path)
        row = table.slice(0, 1).to_pylist()[0]
        if trial_ids is not None and row["trial_id"] not in trial_ids:
            continue
        config = json.loads(row["config"])
        digest = split_hash_v1(read_split_file(config["data"]["split_file"]).split(config["data"]["split"]))
        if identity == "legacy":
            config = _as_version_1(config)
            old = legacy_trial_id(config, digest, json.loads(row["versions"])["oodml"], 1, [])
        else:
            old = trial_id_v1(TrialConfig.model_validate(config), digest)
        new = row["trial_id"]
        aged = {
            "trial_id": old,
            "config": json.dumps(config, sort_keys=True),
            "split_hash": digest,
            "checkpoint": row["checkpoint"].replace(new, old) if row["checkpoint"] else None,
        }
        for name, value in aged.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.array([value] * table.num_rows, pa.string()))
        atomic_write_table(table, result_path(study_dir, old, row["stage"]))
        path.unlink()
        curves = result_path(study_dir, new, row["stage"], CURVES_DIR)
        if curves.exists():
            rows = pq.read_table(curves)
            rows = rows.set_column(
                0 + rows.schema.get_field_index("trial_id"), "trial_id", pa.array([old] * rows.num_rows)
            )
            atomic_write_table(rows, result_path(study_dir, old, row["stage"], CURVES_DIR))
            curves.unlink()
        if (study_dir / TRIALS_DIR / new).exists():
            (study_dir / TRIALS_DIR / new).rename(study_dir / TRIALS_DIR / old)
        ages[new] = old
    return ages


def _ids(table: pa.Table) -> list[tuple[str, str, str]]:
    """Each result row's trial id, split hash and checkpoint, sorted."""
    return sorted(
        tuple(r.values()) for r in table.select(["trial_id", "split_hash", "checkpoint"]).to_pylist()
    )


@pytest.mark.slow
def test_a_folder_written_before_resumes_with_nothing_re_run(ray_local, tmp_path, tiny_spec) -> None:
    """A study of two trials, one aged to the legacy ids and one to identity version 1's: one resume moves
    both to the ids, split hashes and checkpoints of the fresh run and runs nothing; aged to the legacy
    ids again, under a spec whose few-shot adaptation means something else now, both run again."""
    from study.api import run

    raw = tiny_spec(tmp_path / "aged")
    raw |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    raw["training"] |= {"iterations_per_epoch": 1}  # one step: what is trained does not matter here
    # the adaptation results version 1 ran, named: such trials keep their results across the migration
    raw["fewshot"] |= {"iterations": {2: 1}, "loss_parameters": "trained", "support_transform": "eval"}
    first = run(raw, echo=lambda line: None)
    assert first.outcome.ok and first.outcome.planned == 2
    fresh = _ids(first.table)  # read before the folder is aged
    legacy, v1 = sorted({trial_id for trial_id, _, _ in fresh})
    ages = _age(first.study_dir, "legacy", {legacy}) | _age(first.study_dir, "v1", {v1})
    assert set(ages) == {legacy, v1} and not set(ages) & set(ages.values())

    lines: list[str] = []
    again = run(raw, echo=lines.append)
    assert again.outcome.ok and again.outcome.executed == 0  # nothing re-run
    assert any("migrated 2 trial result(s)" in line for line in lines)
    assert _ids(again.table) == fresh  # the payload's ids, the same as a fresh run's
    assert all((first.study_dir / TRIALS_DIR / t / "best.pt").exists() for t in ages)
    assert migrate_trial_ids(first.study_dir) == {}  # twice: nothing more

    _age(first.study_dir)
    del raw["fewshot"]["loss_parameters"], raw["fewshot"]["support_transform"]  # the new defaults
    changed = run(raw, echo=lambda line: None)
    assert changed.outcome.ok and changed.outcome.executed == 2  # their meaning changed: run again
