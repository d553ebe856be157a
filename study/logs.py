"""Third-party log lines of a study go to a file in the study folder, so the console shows oodml's own
progress: MLflow's database set-up (alembic), Ray's start-up and token notices, Tune's "Wrote the latest
version of all result files". Errors still reach the console as well.

Ray re-configures its ``ray`` logger in ``ray.init``, so the loggers below it that speak are taken one by
one: a logger with handlers of its own and ``propagate`` off is left alone by that re-configuration."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

THIRD_PARTY = (
    "mlflow",
    "alembic",
    "optuna",
    "huggingface_hub",
    "urllib3",
    "ray._private",  # start-up, token authentication notices
    "ray.tune",  # "Wrote the latest version of all result files ..."
    "ray.train",
    "ray.air",
    "ray.util",
)


@contextmanager
def third_party_log(path: str | Path) -> Iterator[Callable[[], None]]:
    """For the block, records of the ``THIRD_PARTY`` loggers are appended to ``path``, and only their
    errors also reach stderr. Yields ``capture``: call it again after a library replaced handlers (MLflow
    sets up alembic's when it creates a store)."""
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    saved: dict[str, tuple[list[logging.Handler], bool]] = {}

    def capture() -> None:
        for name in THIRD_PARTY:
            logger = logging.getLogger(name)
            if logger.handlers != [to_file, errors]:
                saved.setdefault(name, (list(logger.handlers), logger.propagate))
                logger.handlers = [to_file, errors]
                logger.propagate = False

    capture()
    try:
        yield capture
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        to_file.close()
