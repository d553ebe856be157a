"""The study folder: every folder and file name in it, in one place (docs/results-schema.md, docs/architecture.md).

```
<study>/
  study.yaml                 SPEC_FILE: the resolved spec (what `oodml resume` reads)
  .lock                      LOCK_FILE: held (flock) by the one driver running the study
  .node-check                NODE_CHECK_FILE: on a cluster, the marker every node must read (study/cluster.py)
  results/<stage>-<id>.parquet, curves/<stage>-<id>.parquet    the results dataset
  status/trials.parquet      TRIAL_STATUS_FILE: one row per trial and stage the driver started
  status/driver.parquet      DRIVER_STATUS_FILE: the driver's state and heartbeat
  projections/<dataset>.parquet   2-D projections of the class means of a few splits
  comparison.json            COMPARISON_FILE: paired comparisons of the methods, written when the study ends
  splits/<dataset>/          a split file built by the study (splits.json, build-options.json, class_means.npz)
  trials/<trial id>/         a trial's working folder (best.pt, last.pt: written by tasks/train.py)
  ray/                       Ray Tune's experiment folders
  optuna.journal             the tuning stage's Optuna journal
  mlflow.db, mlartifacts/    the default MLflow store
  third_party.log            third-party log lines (MLflow, Ray, Optuna)
  dashboard/index.html       the dashboard and its PNG figures
```

Only names and path joins live here: no I/O. ``tasks/`` writes inside folders it is given under names of
its own (``tasks/train.py``, ``tasks/splits/build.py``); the names below that must match them say so.
"""

from __future__ import annotations

from pathlib import Path

from study.results.storage import StudyPath, Where, locate

SPEC_FILE = "study.yaml"
LOCK_FILE = ".lock"
NODE_CHECK_FILE = (
    ".node-check"  # written and removed by the driver while it checks every node sees the folder
)
RESULTS_DIR = "results"
CURVES_DIR = "curves"
SUPERSEDED_DIR = "superseded"  # row sets of a cell measured again under other settings (store.py)
STATUS_DIR = "status"
TRIAL_STATUS_FILE = "trials.parquet"
DRIVER_STATUS_FILE = "driver.parquet"
PROJECTIONS_DIR = "projections"
COMPARISON_FILE = "comparison.json"  # study/results/compare.py write_comparison (the parent run's artifact)
SPLITS_DIR = "splits"
SPLIT_FILE = "splits.json"  # tasks/splits/build.py writes it (and splits.pkl) into the folder it is given
SPLIT_OPTIONS_FILE = "build-options.json"
CLASS_MEANS_FILE = "class_means.npz"  # tasks/splits/build.py (ClassFeatures.save_npz)
TRIALS_DIR = "trials"
CHECKPOINT_FILE = "best.pt"  # tasks/train.py BEST_WEIGHTS: the selected model in a trial folder
RAY_DIR = "ray"
OPTUNA_JOURNAL = "optuna.journal"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS_DIR = "mlartifacts"
THIRD_PARTY_LOG = "third_party.log"
DASHBOARD_DIR = "dashboard"
DASHBOARD_PAGE = "index.html"

DEFAULT_SPLIT_KEY = "0"  # the dataset's default split (tasks/splits/selection.py DEFAULT_KEY)


def default_tracking_uri(study_dir: str | Path) -> str:
    """The study's own MLflow store: SQLite in the study folder, as an absolute URI
    (``sqlite:////abs/path/mlflow.db``)."""
    return f"sqlite:///{Path(study_dir).resolve() / MLFLOW_DB}"


def trial_dir(study_dir: Where, trial_id: str) -> StudyPath:
    return locate(study_dir) / TRIALS_DIR / trial_id


def split_dir(study_dir: Where, dataset: str) -> StudyPath:
    """Where the study builds ``dataset``'s split file (a spec may name one elsewhere instead)."""
    return locate(study_dir) / SPLITS_DIR / dataset


def status_path(study_dir: Where, name: str = TRIAL_STATUS_FILE) -> StudyPath:
    return locate(study_dir) / STATUS_DIR / name


def projection_path(study_dir: Where, dataset: str) -> StudyPath:
    return locate(study_dir) / PROJECTIONS_DIR / f"{dataset}.parquet"


def dashboard_page(study_dir: Where) -> StudyPath:
    return locate(study_dir) / DASHBOARD_DIR / DASHBOARD_PAGE
