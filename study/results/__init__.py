"""The Arrow/Parquet results dataset of a study and its aggregations (docs/results-schema.md)."""

from study.results.aggregate import (
    auc_summary,
    degradation_curves,
    fewshot_gain,
    normalized_auc,
    ranking,
    shift_agreement,
)
from study.results.compare import Comparison, compare
from study.results.files import ci95
from study.results.layout import DEFAULT_SPLIT_KEY
from study.results.report import add_results_arguments, format_summary, results
from study.results.schema import CURVES_SCHEMA, SCHEMA, SCHEMA_VERSION
from study.results.store import (
    SupersededResults,
    UnreadableResultWarning,
    completed_trial_ids,
    read_curves,
    read_results,
    result_path,
    write_trial_result,
)

__all__ = [
    "CURVES_SCHEMA",
    "Comparison",
    "DEFAULT_SPLIT_KEY",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SupersededResults",
    "UnreadableResultWarning",
    "add_results_arguments",
    "auc_summary",
    "ci95",
    "compare",
    "completed_trial_ids",
    "degradation_curves",
    "fewshot_gain",
    "format_summary",
    "normalized_auc",
    "ranking",
    "read_curves",
    "read_results",
    "result_path",
    "results",
    "shift_agreement",
    "write_trial_result",
]
