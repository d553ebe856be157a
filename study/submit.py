"""Entry point of a study submitted as a Ray job; it joins the cluster it runs on.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m study.submit configs/demo.yaml --set storage.root=/shared/runs/demo

A job's driver runs in a temporary copy of the working directory, so the study folder must be an
absolute path outside it (on storage every node sees, for a multi-node cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from study.commands import add_run_arguments, run
from study.overrides import apply_overrides, parse_assignments
from study.results.storage import is_remote


def study_root(config: str, assignments: list[str]) -> str | None:
    raw = apply_overrides(yaml.safe_load(Path(config).read_text()) or {}, parse_assignments(assignments))
    return (raw.get("storage") or {}).get("root")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.submit", description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    root = study_root(args.config, args.set)
    if not root or not (is_remote(root) or Path(root).expanduser().is_absolute()):
        print(
            f"study.submit: error: storage.root must be an absolute path (got {root!r}): a Ray job runs in a "
            "temporary copy of its working directory; add --set storage.root=/abs/path/to/study (or "
            "s3://bucket/prefix)",
            file=sys.stderr,
        )
        return 2
    args.address = args.address or os.environ.get("RAY_ADDRESS") or "auto"
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
