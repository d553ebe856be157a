"""``oodml report STUDY_DIR [--serve] [--port N]``: write a study's dashboard, or serve it live."""

from __future__ import annotations

import argparse

from study.results.storage import locate


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_dir", type=locate, help="the study folder (holds results/): a local path or s3://bucket/prefix"
    )
    parser.add_argument(
        "--serve", action="store_true", help="serve the page on 127.0.0.1, rebuilt when the results change"
    )
    parser.add_argument("--port", type=int, default=8765, help="port for --serve (default 8765; 0: any free)")


def report(args: argparse.Namespace) -> int:
    from dashboards.report import build_report  # matplotlib and pandas: only when the command runs

    if not args.serve:
        print(f"wrote {build_report(args.study_dir)}")
        return 0
    from dashboards import serve  # only here: the server's imports are not needed to write the page

    live = serve.LiveReport(args.study_dir)
    print(f"wrote {live.refresh()}")
    serve.serve(live, args.port)
    return 0
