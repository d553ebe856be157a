"""The ``oodml`` command line.

Each command lives next to the code it drives and is imported only when it runs, so ``oodml --help``
stays instant and a command never pays for another's imports (torch, Ray, MLflow).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Command:
    """A subcommand: ``module.<add>(parser)`` declares its options, ``module.<run>(args)`` returns the exit code."""

    module: str
    add: str
    run: str
    help: str


COMMANDS: dict[tuple[str, ...], Command] = {
    ("splits", "build"): Command(
        "tasks.splits.cli", "add_build_arguments", "build", "build ooDML train/test split progressions"
    ),
    ("splits", "show"): Command(
        "tasks.splits.cli", "add_show_arguments", "show", "print the splits of a split file (JSON or pickle)"
    ),
    ("splits", "convert-sop"): Command(
        "tasks.splits.cli",
        "add_convert_sop_arguments",
        "convert_sop",
        "translate the ooDML code's SOP split pickle (product ids, class ids) to a split file of class ids",
    ),
    ("data", "download"): Command(
        "tasks.data.cli",
        "add_download_arguments",
        "download",
        "fetch a public dataset (cub200, sop), check its checksum and unpack it as its loader reads it",
    ),
    ("trial",): Command("tasks.cli", "add_trial_arguments", "trial", "run one trial from a YAML config"),
    ("results",): Command(
        "study.results.cli",
        "add_results_arguments",
        "results",
        "print a study's results: trials, AUC, ranking, curves, few-shot gain",
    ),
    ("leaderboard",): Command(
        "dashboards.leaderboard",
        "add_leaderboard_arguments",
        "leaderboard",
        "compare the results of many studies: AUC, Recall@1, few-shot gain, rank, effective robustness",
    ),
    ("report",): Command(
        "dashboards.cli",
        "add_report_arguments",
        "report",
        "write a study's dashboard (HTML page of interactive charts + PNG figures); --serve shows it live on 127.0.0.1",
    ),
    ("ui",): Command(
        "study.tracking.ui", "add_ui_arguments", "ui", "MLflow UI for a study's store (binds 127.0.0.1)"
    ),
    ("evaluate",): Command(
        "tasks.evaluate.cli", "add_arguments", "run", "retrieval metrics of embeddings and labels in an npz"
    ),
    ("run",): Command(
        "study.commands", "add_run_arguments", "run", "run a study (Ray Tune + Optuna + MLflow); resumes"
    ),
    ("resume",): Command(
        "study.commands", "add_resume_arguments", "resume", "finish the study saved in a study folder"
    ),
    ("list",): Command(
        "study.listing",
        "add_arguments",
        "run",
        "list methods, backbones, datasets, extractors with their options, defaults and search ranges",
    ),
}

# Errors that mean "the input is wrong": reported in one line, exit code 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError)


def _usage() -> str:
    width = max(len(" ".join(path)) for path in COMMANDS)
    rows = [f"  oodml {' '.join(path):<{width}}  {cmd.help}" for path, cmd in COMMANDS.items()]
    return (
        "usage: oodml COMMAND [options]\n\ncommands:\n"
        + "\n".join(rows)
        + "\n\n'oodml COMMAND --help' for options, 'oodml --version' for the version"
    )


def _version() -> str:
    try:
        return metadata.version("oodml")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _find(argv: list[str]) -> tuple[tuple[str, ...], Command] | None:
    for length in sorted({len(p) for p in COMMANDS}, reverse=True):
        command = COMMANDS.get(tuple(argv[:length]))
        if command:
            return tuple(argv[:length]), command
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"oodml {_version()}")
        return 0
    found = _find(argv)
    if found is None:
        print(_usage(), file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    path, command = found
    module = importlib.import_module(command.module)
    parser = argparse.ArgumentParser(prog="oodml " + " ".join(path), description=command.help)
    getattr(module, command.add)(parser)
    args = parser.parse_args(argv[len(path) :])
    try:
        return int(getattr(module, command.run)(args) or 0)
    except USER_ERRORS as err:
        print(f"oodml {' '.join(path)}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
