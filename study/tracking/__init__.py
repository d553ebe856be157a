"""MLflow tracking of a study: a parent run per study, a nested child run per trial (study.tracking.tracker).

Its names load their module on first use (``tasks.lazy``): ``oodml ui --help`` does not import MLflow.
"""

from __future__ import annotations

from tasks.lazy import lazy_exports

_EXPORTS = {
    "mlflow_key": "keys",
    "StudyTracker": "tracker",
    "default_tracking_uri": "tracker",
    "add_ui_arguments": "ui",
    "ui_command": "ui",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
