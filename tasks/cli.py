"""``oodml trial CONFIG.yaml``: run one trial from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tasks.config import load_trial_config


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="trial config (YAML)")
    parser.add_argument("--workdir", help="checkpoint folder (default: runs/trials/<trial id>)")
    parser.add_argument("--out", help="write the trial record as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def trial(args: argparse.Namespace) -> int:
    from tasks.trial import run_trial

    config = load_trial_config(args.config)
    workdir = Path(args.workdir or Path("runs") / "trials" / config.identity())

    def report(row: dict, _: Path) -> None:
        shown = {
            k: round(v, 4) for k, v in row.items() if k in ("train/loss", "val/recall@1", "test/recall@1")
        }
        print(f"epoch {row['epoch']}: {shown}", flush=True)

    record = run_trial(config, workdir, on_epoch=None if args.quiet else report, progress=not args.quiet)
    text = json.dumps(record, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    summary = {k: v for k, v in record.items() if not k.startswith(("curve/", "config", "versions"))}
    print(json.dumps(summary, indent=1))
    print(f"checkpoints in {workdir}")
    return 0
