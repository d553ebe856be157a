"""``oodml data download cub200|sop [--root DIR]``."""

from __future__ import annotations

import argparse
import sys

from tasks.data.download import CATALOGUE, MIRROR_SETTING, DownloadError, download_dataset


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=sorted(CATALOGUE), help="the public dataset to fetch")
    parser.add_argument(
        "--root",
        default="data",
        help="folder to unpack into (default: ./data); the dataset lands in a subfolder",
    )
    parser.add_argument(
        "--mirror",
        help=f"fetch the same archive name from this base URL instead (default: ${MIRROR_SETTING}, else the publisher)",
    )
    parser.add_argument("--keep-archive", action="store_true", help="keep the archive after unpacking it")


def download(args: argparse.Namespace) -> int:
    try:
        download_dataset(args.dataset, args.root, mirror=args.mirror, keep_archive=args.keep_archive)
    except DownloadError as err:
        print(f"oodml data download: error: {err}", file=sys.stderr)
        return 1
    return 0
