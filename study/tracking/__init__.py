"""MLflow tracking of a study: a parent run per study, a nested child run per trial (study.tracking.tracker)."""

from study.tracking.keys import mlflow_key
from study.tracking.tracker import StudyTracker, default_tracking_uri
from study.tracking.ui import add_ui_arguments, ui, ui_command

__all__ = ["StudyTracker", "add_ui_arguments", "default_tracking_uri", "mlflow_key", "ui", "ui_command"]
