"""``oodml leaderboard``: many study folders' results side by side, and effective robustness across them.

**Reading.** One DuckDB query reads every study's ``results/*.parquet`` at once, the completed evaluation
rows and the columns the summaries read (``schema.SUMMARY_COLUMNS``), cast to the results schema as
``store.read_folder`` does; a file written before a column was added gives nulls. Local folders are read
by ``read_parquet`` over the list of their globs (``union_by_name``; ``filename``: its folder says which
study a row comes from). Folders on an object store (``s3://``) are read without DuckDB's ``httpfs``
extension (a download this oodml does not make): their files, listed through ``pyarrow.fs`` as
``store.read_folder`` lists them, form one Arrow dataset read by ``storage``'s client (the standard AWS
variables), whose results folder is each file's partition value (Arrow fills it in; one dataset for
every remote study, so the query scans one), and DuckDB scans it with the query's columns and filter
pushed down to Arrow; ``UNION ALL BY NAME`` joins the two. Local folders keep ``read_parquet``: Arrow's
scan of many small files is slower (1.6x on 1,134 files).

**Per study.** Each study's rows are aggregated on their own, by the functions ``oodml results`` uses, so
every number is the one ``oodml results`` (``--compare``) of that study prints: per dataset x backbone x
method the normalized AUC with its 95% interval over seeds (``aggregate.auc_summary``), ``metric`` on the
default split (key ``DEFAULT_SPLIT_KEY``) and on the study's hardest split of the dataset (its highest FID)
with their intervals (``aggregate.degradation_curves``), the few-shot gain per budget (the mean over the
method's splits of ``aggregate.fewshot_gain``'s gains) and the paired-test rank within the study, dataset
and backbone (``compare.compare``: 1 + the methods significantly better, Holm, alpha 0.05).

**Split files.** Two studies whose splits of a dataset with the same ``split_id`` have different
``split_hash`` values used different split files, so their splits are different splits: they are never
mixed. Per dataset, the studies are taken in the order given; each joins the first group whose splits it
agrees with (no shared ``split_id`` with another hash; the group then holds the union of their splits), or
starts a group of its own, named ``<dataset> #2``, ``#3``, ...; ``kept_apart`` says which and why.

**Effective robustness** (``robustness``, Taori et al. 2020, Miller et al. 2021) is fitted per group across
the studies: a model is a (study, backbone, method, seed), a method a (study, backbone, method); with one
study it is ``oodml results``' effective robustness.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from study.results.aggregate import METHOD, auc_summary, degradation_curves, fewshot_gain
from study.results.compare import compare
from study.results.layout import DEFAULT_SPLIT_KEY, RESULTS_DIR
from study.results.robustness import points, robustness_frame, trends
from study.results.schema import SCHEMA, SCHEMA_VERSION, SUMMARY_COLUMNS
from study.results.storage import ObjectPath, StudyPath, locate

if TYPE_CHECKING:
    import pyarrow.dataset as ds

STUDY = "study_folder"  # the column the query adds: the label of the study a row comes from
RESULTS_FROM = "results_dir"  # the results folder a row was read from, as the query gives it
OWNER = ["study", "backbone", "method"]  # a method across studies (robustness.robustness_frame's method)
ROW_COLUMNS = [
    "group",
    "dataset",
    "backbone",
    "method",
    "study",
    "auc",
    "auc_ci95",
    "n_seeds",
    "complete",
    "default_split",
    "default_ci95",
    "hardest_key",
    "hardest_fid",
    "hardest_split",
    "hardest_ci95",
    "fewshot_gain",  # {shots: gain}
    "rank",
    "effective_robustness",
    "er_ci_low",
    "er_ci_high",
]


@dataclass(frozen=True)
class Leaderboard:
    """The leaderboard of ``studies`` (label -> folder): ``rows`` (``ROW_COLUMNS``), effective robustness
    across studies per group (``robustness``), the points and trends it is fitted on, and the sentences
    saying which studies were kept apart."""

    metric: str
    studies: dict[str, str]
    rows: pd.DataFrame
    robustness: pd.DataFrame
    points: pd.DataFrame
    trends: pd.DataFrame
    kept_apart: list[str]

    @property
    def budgets(self) -> list[int]:
        return sorted({int(k) for gains in self.rows["fewshot_gain"] for k in gains})

    def to_json(self) -> str:
        """``{"metric", "studies", "kept_apart", "rows", "effective_robustness", "points", "trends"}``; NaN
        becomes null."""
        tables = {
            "rows": self.rows,
            "effective_robustness": self.robustness,
            "points": self.points,
            "trends": self.trends,
        }
        out = {"metric": self.metric, "studies": self.studies, "kept_apart": self.kept_apart}
        out |= {name: _records(frame) for name, frame in tables.items()}
        return json.dumps(out, indent=1, allow_nan=False)


def study_labels(study_dirs: Sequence[str | Path]) -> dict[str, StudyPath]:
    """Label -> folder (as given; local or ``s3://``): each folder's name, or its path where two folders
    share a name; refuses folders without ``results/`` and a folder named twice."""
    folders = [locate(where) for where in study_dirs]
    for folder in folders:
        if not (folder / RESULTS_DIR).is_dir():
            raise FileNotFoundError(f"{folder} has no {RESULTS_DIR}/ folder: is it a study folder?")
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) < len(resolved):
        raise ValueError(f"a study folder is named twice: {sorted(map(str, folders))}")
    names = [f.name for f in resolved]
    return {
        (r.name if names.count(r.name) == 1 else str(f)): f for f, r in zip(folders, resolved, strict=True)
    }


def remote_dataset(files: dict[ObjectPath, list[ObjectPath]]) -> ds.Dataset:
    """The result files of the studies on an object store (their results folder -> its Parquet files, as
    listed once by ``read_studies``) as one Arrow dataset (module docstring, **Reading**):
    ``SUMMARY_COLUMNS`` and each file's results folder in ``RESULTS_FROM``."""
    import pyarrow.dataset as ds  # only for studies on an object store

    schema = pa.schema([*(SCHEMA.field(c) for c in SUMMARY_COLUMNS), pa.field(RESULTS_FROM, pa.string())])
    paths, partitions = [], []
    for results, found in files.items():
        for path in found:
            paths.append(path.key)
            partitions.append(ds.field(RESULTS_FROM) == str(results))
    store = next(iter(files)).filesystem  # storage's one client (s3:// is the one scheme)
    return ds.FileSystemDataset.from_paths(
        paths, schema=schema, format=ds.ParquetFileFormat(), filesystem=store, partitions=partitions
    )


def read_studies(studies: dict[str, StudyPath]) -> pa.Table:
    """The completed evaluation rows of every study (``SUMMARY_COLUMNS``) with their study's label in
    ``STUDY``: one DuckDB query over all their Parquet files (module docstring, **Reading**)."""
    import duckdb  # only when a leaderboard is read

    # absolute paths: DuckDB's ``filename`` is the glob's folder normalised, so these name it exactly
    results = {label: folder.resolve() / RESULTS_DIR for label, folder in studies.items()}
    files = {folder: sorted(folder.glob("*.parquet")) for folder in results.values()}  # as read_folder lists
    empty = [f"{label} ({studies[label]})" for label, folder in results.items() if not files[folder]]
    if empty:
        raise FileNotFoundError(f"study {', '.join(empty)} has no result files yet")
    local = [str(folder / "*.parquet") for folder in results.values() if isinstance(folder, Path)]
    remote = {folder: found for folder, found in files.items() if isinstance(folder, ObjectPath)}
    completed = "WHERE stage = 'eval' AND status = 'completed'"
    connection, parts, params = duckdb.connect(), [], {}
    if local:
        parts.append(
            f"SELECT parse_dirpath(filename) AS {RESULTS_FROM}, COLUMNS(lambda c: list_contains($wanted, c)) "
            f"FROM read_parquet($files, union_by_name = true, filename = true) {completed}"
        )
        params = {"files": local, "wanted": SUMMARY_COLUMNS}
    if remote:
        connection.register("remote", remote_dataset(remote))
        parts.append(f"SELECT * FROM remote {completed}")
    try:
        found = connection.sql(" UNION ALL BY NAME ".join(parts), params=params).to_arrow_table()
    except duckdb.IOException as err:
        raise OSError(f"reading the results of {', '.join(studies)}: {err}") from err
    if found.num_rows and pc.max(found["schema_version"]).as_py() > SCHEMA_VERSION:
        raise ValueError(f"some result files were written with a results schema newer than {SCHEMA_VERSION}")
    columns = [
        pa.nulls(found.num_rows, f.type) if f.name not in found.column_names else found[f.name].cast(f.type)
        for f in (SCHEMA.field(c) for c in SUMMARY_COLUMNS)
    ]
    table = pa.Table.from_arrays(columns, names=SUMMARY_COLUMNS)
    labels = {str(folder): label for label, folder in results.items()}
    folders = found[RESULTS_FROM].combine_chunks().dictionary_encode()  # one entry per study
    owners = pa.array([labels[d] for d in folders.dictionary.to_pylist()], pa.string())
    return table.append_column(STUDY, owners.take(folders.indices))


def split_groups(table: pa.Table, order: Sequence[str]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(study, dataset) -> its group (module docstring, **Split files**), and a sentence per study kept
    apart."""
    frame = table.select([STUDY, "dataset", "split_id", "split_key", "split_hash"]).to_pandas()
    present = set(zip(frame[STUDY], frame["dataset"], strict=True))
    frame = frame.dropna(subset=["split_hash"]).drop_duplicates()
    groups: dict[tuple[str, str], str] = {}
    notes = []
    for dataset in sorted({d for _, d in present if d is not None}):
        kept: list[tuple[dict, list[str]]] = []  # per group: split hash by split id, its studies
        for study in (s for s in order if (s, dataset) in present):
            mine = frame[(frame[STUDY] == study) & (frame["dataset"] == dataset)]
            hashes = dict(zip(mine["split_id"], mine["split_hash"], strict=True))
            place = next((i for i, (held, _) in enumerate(kept) if not _clashes(hashes, held)), len(kept))
            if place == len(kept):
                kept.append(({}, []))
            kept[place][0].update(hashes)
            kept[place][1].append(study)
            groups[(study, dataset)] = dataset if place == 0 else f"{dataset} #{place + 1}"
            if place:
                split_id = _clashes(hashes, kept[0][0])[0]
                key = mine.loc[mine["split_id"] == split_id, "split_key"].iloc[0]
                notes.append(
                    f"{dataset}: {study} kept apart from {', '.join(kept[0][1])} "
                    f"(as {groups[(study, dataset)]}): "
                    f"its split {key} (id {split_id}) has split hash {hashes[split_id]}, theirs "
                    f"{kept[0][0][split_id]}; a different split file, so not the same splits"
                )
    return groups, notes


def read_leaderboard(study_dirs: Sequence[str | Path], metric: str = "recall@1") -> Leaderboard:
    """The leaderboard of the study folders (module docstring)."""
    studies = study_labels(study_dirs)
    table = read_studies(studies)
    groups, notes = split_groups(table, list(studies))
    rows, found = [], []
    for label in studies:
        own = table.filter(pc.equal(table[STUDY], label)).drop_columns([STUDY])
        if own.num_rows:
            rows.append(_study_rows(own, metric).assign(study=label))
            found.append(points(own, metric).assign(study=label))
    if not rows:
        raise ValueError(f"no completed evaluation trial in {', '.join(studies)} yet: nothing to rank")
    board = pd.concat(rows, ignore_index=True)
    board.insert(0, "group", [groups[(s, d)] for s, d in zip(board["study"], board["dataset"], strict=True)])
    pooled = pd.concat(found, ignore_index=True)
    pooled["group"] = [groups[(s, d)] for s, d in zip(pooled["study"], pooled["dataset"], strict=True)]
    by_group = pooled.drop(columns="dataset").rename(columns={"group": "dataset"})  # the trends' scope
    robustness = robustness_frame(by_group, metric, method=OWNER).rename(columns={"dataset": "group"})
    robustness.insert(
        1, "dataset", robustness["group"].map(dict(zip(pooled["group"], pooled["dataset"], strict=True)))
    )
    lines = trends(by_group, method=OWNER).rename(columns={"dataset": "group"})
    er = robustness[["group", *OWNER, "effective_robustness", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "er_ci_low", "ci_high": "er_ci_high"}
    )
    board = board.merge(er, on=["group", *OWNER], how="left")
    board = board.sort_values(
        ["group", "auc", "study", "backbone", "method"], ascending=[True, False] + [True] * 3
    )
    return Leaderboard(
        metric,
        {label: str(folder) for label, folder in studies.items()},
        board[ROW_COLUMNS].reset_index(drop=True),
        robustness.sort_values(["group", "effective_robustness"], ascending=[True, False]).reset_index(
            drop=True
        ),
        pooled[["group", "dataset", *OWNER, "seed", "split_id", "split_key", "x", "y"]],
        lines,
        notes,
    )


def format_leaderboard(board: Leaderboard) -> str:
    """The leaderboard as plain text: the studies, those kept apart, one table per group."""
    lines = [f"Leaderboard of test {board.metric} over {len(board.studies)} studies:"]
    lines += [f"  {label}: {folder}" for label, folder in board.studies.items()]
    lines += [f"  kept apart: {note}" for note in board.kept_apart]
    lines += [
        "",
        "Per group (a dataset and its split file): normalized AUC over FID ± 95% CI over seeds, "
        f"{board.metric} on the default split (key {DEFAULT_SPLIT_KEY}) and on the study's hardest split, "
        "few-shot gain per budget (mean over splits), paired-test rank within the study (1 + methods "
        "significantly better), effective robustness across the group's studies [95% bootstrap interval]:",
    ]
    for group, part in board.rows.groupby("group", sort=True):
        shown = pd.DataFrame(
            {
                "backbone": part["backbone"],
                "method": part["method"],
                "study": part["study"],
                "auc": [format_value(v, c) for v, c in zip(part["auc"], part["auc_ci95"], strict=True)],
                "default": [
                    format_value(v, c)
                    for v, c in zip(part["default_split"], part["default_ci95"], strict=True)
                ],
                "hardest": [
                    f"{format_value(v, c)} @ {k}"
                    for v, c, k in zip(
                        part["hardest_split"], part["hardest_ci95"], part["hardest_key"], strict=True
                    )
                ],
            }
            | {f"gain@{k}": [format_interval(g.get(k)) for g in part["fewshot_gain"]] for k in board.budgets}
            | {
                "rank": part["rank"],
                "eff. robustness": [
                    format_interval(v, lo, hi)
                    for v, lo, hi in zip(
                        part["effective_robustness"], part["er_ci_low"], part["er_ci_high"], strict=True
                    )
                ],
            }
        )
        lines += ["", f"{group}:", shown.to_string(index=False)]
    return "\n".join(lines)


def _study_rows(table: pa.Table, metric: str) -> pd.DataFrame:
    """Per dataset x backbone x method of one study: its leaderboard columns (module docstring, **Per
    study**), but the group's and effective robustness."""
    auc = auc_summary(table, metric).to_pandas()[[*METHOD, "auc", "ci95", "n_seeds", "complete"]]
    out = auc.rename(columns={"ci95": "auc_ci95"})
    curves = degradation_curves(table, metric).to_pandas()
    default = curves[curves["split_key"] == DEFAULT_SPLIT_KEY][[*METHOD, "mean", "ci95"]]
    out = out.merge(default.rename(columns={"mean": "default_split", "ci95": "default_ci95"}), how="left")
    hardest_fid = curves.groupby("dataset")["fid"].transform("max")
    hardest = curves[curves["fid"] == hardest_fid][[*METHOD, "split_key", "fid", "mean", "ci95"]]
    hardest.columns = [*METHOD, "hardest_key", "hardest_fid", "hardest_split", "hardest_ci95"]
    out = out.merge(hardest, how="left")
    gains = fewshot_gain(table, metric).to_pandas().groupby([*METHOD, "shots"])["gain"].mean()
    by_method = {key: {} for key in zip(*(out[c] for c in METHOD), strict=True)}
    for (*key, shots), gain in gains.items():
        by_method.setdefault(tuple(key), {})[int(shots)] = float(gain)
    out["fewshot_gain"] = [by_method[key] for key in zip(*(out[c] for c in METHOD), strict=True)]
    ranks = compare(table, metric).ranking.to_pandas()[[*METHOD, "rank"]]
    return out.merge(ranks, how="left")


def _clashes(hashes: dict, held: dict) -> list:
    """The split ids both maps hold with different split hashes."""
    return sorted(s for s, h in hashes.items() if s in held and held[s] != h)


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN as None, dict keys as strings."""

    def plain(value: object) -> object:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, float | np.floating) and np.isnan(value):
            return None
        return value.item() if isinstance(value, np.generic) else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def format_value(value: float, ci: float) -> str:
    """``0.6120 ± 0.0100``; the value alone where its interval is undefined (one seed); ``–`` without it."""
    if pd.isna(value):
        return "–"
    return f"{value:.4f}" if pd.isna(ci) else f"{value:.4f} ± {ci:.4f}"


def format_interval(value: float | None, low: float = np.nan, high: float = np.nan) -> str:
    """``+0.0120 [-0.0010, +0.0200]``, the signed value alone without an interval, ``–`` without one."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:+.4f}" if pd.isna(low) else f"{value:+.4f} [{low:+.4f}, {high:+.4f}]"
