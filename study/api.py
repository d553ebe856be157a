"""``study.run(config, overrides=...)``: run (or resume) a study from Python and get its results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from study.cluster import configure
from study.results.layout import SPEC_FILE
from study.results.storage import StudyPath, Where, locate
from study.spec import StudySpec, load_spec

if TYPE_CHECKING:
    from study.results import Comparison
    from study.runner import StudyOutcome


def say(line: str) -> None:
    """Progress output: flushed at once, so it shows in logs and ``ray job logs`` as it happens."""
    print(line, flush=True)


@dataclass
class StudyResult:
    """Where a study's outputs are, what this call did, and its results (read from the study folder)."""

    spec: StudySpec
    outcome: StudyOutcome

    @property
    def study_dir(self) -> StudyPath:
        return self.outcome.study_dir

    @property
    def parent_run_id(self) -> str:
        return self.outcome.parent_run_id

    @property
    def tracking_uri(self) -> str:
        return self.outcome.tracking_uri

    @cached_property
    def table(self) -> pa.Table:
        """Every result row (both stages, completed and failed), schema in docs/results-schema.md."""
        from study.results import read_results

        return read_results(self.study_dir)

    def degradation_curves(self, metric: str = "recall@1", shots: int = 0, shift: str = "fid") -> pa.Table:
        """Curves against FID, or another ``shift`` measure stored with the splits (``mmd``)."""
        from study.results import degradation_curves

        return degradation_curves(self.table, metric, shots, shift=shift)

    def auc(self, metric: str = "recall@1", shots: int = 0, shift: str = "fid") -> pa.Table:
        from study.results import auc_summary

        return auc_summary(self.table, metric, shots, shift=shift)

    def shift_agreement(self) -> pa.Table:
        """Per dataset and stored shift measure, Kendall's tau between its split order and FID's."""
        from study.results import shift_agreement

        return shift_agreement(self.table)

    def ranking(self, metric: str = "recall@1") -> pa.Table:
        from study.results import ranking

        return ranking(self.table, metric)

    def fewshot_gain(self, metric: str = "recall@1") -> pa.Table:
        from study.results import fewshot_gain

        return fewshot_gain(self.table, metric)

    def shift_decomposition(self, metric: str = "recall@1") -> pa.Table:
        """Each method's drop from the easiest split as difficulty + shift_part, against its oracle
        (docs/oracle.md); empty without oracle trials."""
        from study.results.oracle import shift_decomposition

        return shift_decomposition(self.table, metric)

    def cross_dataset(self, metric: str = "recall@1") -> pa.Table:
        """Models evaluated on other datasets' test classes (``evaluate_on``, docs/oracle.md)."""
        from study.results.oracle import cross_dataset

        return cross_dataset(self.table, metric)

    def compare(
        self,
        metric: str = "recall@1",
        shots: int = 0,
        seed: int = 0,
        alpha: float = 0.05,
        shift: str = "fid",
        unit: str = "cell",
    ) -> Comparison:
        """Paired comparisons of the methods: pairs, per-split and ranking tables (docs/statistics.md);
        the AUC over ``shift`` (FID, or a stored measure such as ``mmd``); the test flips ``unit``s,
        ``cell`` or ``seed`` (6+ seeds)."""
        from study.results.compare import compare

        return compare(self.table, metric, shots, seed, alpha, shift, unit)

    def summary(self, shift: str = "fid") -> str:
        from study.results import format_summary

        return format_summary(self.study_dir, shift=shift)


def run(
    config: str | Path | Mapping[str, Any] | StudySpec,
    overrides: Mapping[str, Any] | None = None,
    *,
    address: str | None = None,
    echo: Callable[[str], None] = say,
) -> StudyResult:
    """Run the study in ``config`` (YAML path, mapping or spec), resuming whatever is already recorded.

    ``overrides`` map dotted paths to values (``{"training.epochs": 3}``); ``address`` names a Ray
    cluster to join (default: ``RAY_ADDRESS``, else a local Ray on 127.0.0.1).
    """
    if isinstance(config, StudySpec):
        spec = load_spec(config.model_dump(mode="json"), overrides)
    else:
        spec = load_spec(dict(config) if isinstance(config, Mapping) else config, overrides)
    address = configure(address or spec.ray.address)  # before study.runner imports ray
    from study.runner import run_study

    return StudyResult(spec, run_study(spec, address=address, echo=echo))


def resume(
    study_dir: Where,
    overrides: Mapping[str, Any] | None = None,
    *,
    address: str | None = None,
    echo: Callable[[str], None] = say,
) -> StudyResult:
    """Finish the study saved in ``study_dir`` (its resolved spec, ``study.yaml``), wherever it now is."""
    study_dir = locate(study_dir).resolve()
    overrides = {**(overrides or {}), "storage.root": str(study_dir)}
    return run(study_dir / SPEC_FILE, overrides, address=address, echo=echo)
