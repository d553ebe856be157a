"""``oodml results STUDY_DIR``: the study's trials, AUC table, ranking, curves and few-shot gains as text
(``study.results.report``, imported when the command runs); the options of ``oodml leaderboard``
(``dashboards/leaderboard.py`` runs it: it writes a page)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.results.names import CELL, FID, UNITS
from study.results.storage import locate


def add_results_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dir", type=locate, help="the study folder (holds results/): a local path or s3://bucket/prefix"
    )
    parser.add_argument("--metric", default="recall@1", help="metric to summarise (default: recall@1)")
    parser.add_argument(
        "--shift",
        default=FID,
        help="shift measure on the x-axis of curves and AUC: fid (default), mmd, or fid@<extractor> when "
        "the split file stores it",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="print the paired comparisons of the methods instead (docs/statistics.md)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON: the AUC, ranking and effective-robustness tables, or with --compare the comparison",
    )
    parser.add_argument(
        "--unit",
        choices=UNITS,
        help=f"with --compare: what the sign-flip test flips (default {CELL}; seed needs 6+ seeds, "
        "docs/statistics.md)",
    )


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dirs",
        nargs="+",
        metavar="DIR",
        help="study folders (each holds results/): local paths or s3://bucket/prefix",
    )
    parser.add_argument("--metric", default="recall@1", help="metric to rank by (default: recall@1)")
    parser.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="also write the page to OUT (an .html file; plotly.min.js is written beside it)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead: the rows, effective robustness across studies, its points and trends",
    )


def results(args: argparse.Namespace) -> int:
    from study.results.compare import compare
    from study.results.report import format_comparison, format_summary, read_study, summary_json

    if args.unit and not args.compare:
        raise ValueError("--unit chooses the comparison's test: use it with --compare")
    if args.compare:
        table, skipped = read_study(args.study_dir)
        for path, why in skipped:
            print(f"unreadable, skipped: {path.name}: {why}", file=sys.stderr)
        comparison = compare(table, args.metric, shift=args.shift, unit=args.unit or CELL)
        print(comparison.to_json() if args.json else format_comparison(comparison, args.metric, args.shift))
        return 0
    if args.json:
        print(summary_json(args.study_dir, args.metric, args.shift))
        return 0
    print(format_summary(args.study_dir, args.metric, args.shift))
    return 0
