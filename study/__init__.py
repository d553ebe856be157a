"""oodml study orchestration: specification, scheduling (Ray Tune + Optuna), tracking (MLflow), results."""
