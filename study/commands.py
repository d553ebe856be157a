"""``oodml run CONFIG`` and ``oodml resume STUDY_DIR``.

Exit codes: 0 when every trial is recorded as completed, 1 when some failed or are still missing
(run again to retry them), 2 for an invalid spec, a study folder another run holds, or a Ray cluster
whose nodes do not all see the study folder.
"""

from __future__ import annotations

import argparse
import sys

from study.overrides import parse_assignments
from study.results.storage import StoreUnavailableError, locate


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a spec field (YAML value), e.g. --set training.epochs=3; repeatable",
    )
    parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="study specification (YAML), e.g. configs/demo.yaml")
    _common(parser)


def add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dir", type=locate, help="a study folder (holds study.yaml): a local path or s3://bucket/prefix"
    )
    _common(parser)


def where(result) -> str:
    """Where a study's outputs are, and the commands that show them."""
    from study.cli import COMMANDS
    from study.results.layout import RESULTS_DIR, dashboard_page

    d, uri = result.study_dir, result.tracking_uri
    ui = f"oodml ui {d}" if ("ui",) in COMMANDS else f"mlflow ui --backend-store-uri {uri}"
    shown = f"  (oodml results {d})" if ("results",) in COMMANDS else ""
    lines = [
        f"results:   {d / RESULTS_DIR}{shown}",
        f"MLflow:    {uri}  parent run {result.parent_run_id}  ({ui})",
    ]
    serve = f"  (oodml report {d} --serve)" if ("report",) in COMMANDS else ""
    lines.append(f"dashboard: {dashboard_page(d)}{serve}")
    return "\n".join(lines)


def _finish(result) -> int:
    outcome = result.outcome
    print(result.summary())
    print(where(result))
    for label in outcome.failed:
        print(f"failed: {label}", file=sys.stderr)
    if not outcome.ok:
        print(
            f"{len(outcome.incomplete)} of {outcome.planned} evaluation trials are not completed; "
            f"run `oodml resume {outcome.study_dir}` to retry them",
            file=sys.stderr,
        )
    return 0 if outcome.ok else 1


def _locked(start) -> int:
    from study.cluster import StorageNotSharedError
    from study.lock import StudyLockedError

    try:
        result = start()
    except (StudyLockedError, StorageNotSharedError) as err:
        print(f"oodml: error: {err}", file=sys.stderr)
        return 2
    except StoreUnavailableError as err:  # its message says to resume once the store is back
        print(f"oodml: error: {err}", file=sys.stderr)
        return 1
    return _finish(result)


def run(args: argparse.Namespace) -> int:
    from study.api import run as run_study

    return _locked(lambda: run_study(args.config, parse_assignments(args.set), address=args.address))


def resume(args: argparse.Namespace) -> int:
    from study.api import resume as resume_study

    overrides = parse_assignments(args.set)
    return _locked(lambda: resume_study(args.study_dir, overrides=overrides, address=args.address))
