"""``oodml evaluate FILE.npz``: retrieval metrics of a saved embedding set."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``oodml evaluate``."""
    parser.add_argument("file", type=Path, help="npz with arrays 'embeddings' (n x d) and 'labels' (n)")
    parser.add_argument(
        "--k", type=_ks, default=None, help="Recall@k cutoffs (default: retrieval_metrics', 1,2,4,8)"
    )
    parser.add_argument("--metric", choices=("ip", "l2"), default="ip", help="similarity for the search")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument("--no-nmi", action="store_true", help="skip k-means and NMI")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device for the ranks and metrics: cpu (default), cuda, cuda:1, or auto (CUDA if "
        "available); k-means runs on that GPU when faiss has GPU support (README: GPU install)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.file``; 0 on success, 2 (message on stderr) if the file is unusable."""
    from tasks.evaluate.retrieval import DEFAULT_KS, retrieval_metrics  # torch: only when it runs

    _freeze_at_exit()
    try:
        embeddings, labels = load_npz(args.file)
    except ValueError as err:
        print(f"oodml evaluate: error: {err}", file=sys.stderr)
        return 2
    try:
        device = _device(args.device)
    except (RuntimeError, ValueError) as err:
        print(f"oodml evaluate: error: --device {args.device}: {err}", file=sys.stderr)
        return 2
    metrics = retrieval_metrics(
        embeddings,
        labels,
        args.k or DEFAULT_KS,
        with_nmi=not args.no_nmi,
        metric=args.metric,
        device=device,
        progress=True,
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{args.file}: {len(labels)} images, {len(np.unique(labels))} classes")
        width = max(map(len, metrics))
        for name, value in metrics.items():
            print(f"  {name:<{width}}  {value:.4f}")
    return 0


def _freeze_at_exit() -> None:
    """Spare the process the interpreter's last garbage collections, which walk every object torch made
    (exit took 1.8 s, median of 6, on the loaded 2-core box; 0.9 s with this): ``gc.freeze`` at exit puts
    them out of the collector's reach. Nothing here needs a reference cycle collected at exit: the
    output is printed and the streams are flushed at exit regardless. Registered once per process."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def _device(name: str) -> torch.device:
    """The device named on the command line, checked before any work; ``auto``: CUDA if available."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)  # RuntimeError for an unknown name
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA is not available here (use --device cpu)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise ValueError("expected cpu, cuda, cuda:N or auto")
    return device


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check ``embeddings`` and ``labels``; ValueError naming the file and array otherwise."""
    try:
        data = np.load(path, allow_pickle=False)
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror or err}") from err
    except ValueError as err:
        raise ValueError(f"{path}: not an .npz archive ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array, expected an .npz archive with 'embeddings' and 'labels'")
    with data:
        emb, labels = (_array(data, path, name) for name in ("embeddings", "labels"))
    if emb.ndim != 2 or emb.shape[0] < 2 or emb.dtype.kind not in "iuf":
        raise ValueError(
            f"{path}: 'embeddings' must be a real-valued (n x d) array, n >= 2; got {emb.dtype} {emb.shape}"
        )
    if labels.shape != (emb.shape[0],):
        raise ValueError(
            f"{path}: 'labels' has shape {labels.shape}, expected ({emb.shape[0]},) like 'embeddings'"
        )
    if not np.isfinite(emb).all():
        raise ValueError(f"{path}: 'embeddings' contains non-finite values")
    return emb, labels


def _array(data: np.lib.npyio.NpzFile, path: Path, name: str) -> np.ndarray:
    if name not in data.files:
        raise ValueError(f"{path}: no array '{name}' (found: {', '.join(data.files) or 'none'})")
    try:
        return data[name]
    except ValueError as err:  # object arrays would need pickles
        raise ValueError(f"{path}: array '{name}': {err}") from err


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(ks) < 1:
        raise argparse.ArgumentTypeError(f"cutoffs must be positive, got {text!r}")
    return ks
