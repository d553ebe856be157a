"""Third-party INFO lines of a study go to its log file, not the console; errors reach both."""

from __future__ import annotations

import io
import logging

from study.logs import third_party_log


def test_third_party_lines_go_to_the_file_and_errors_also_to_the_console(tmp_path, capsys):
    mlflow = logging.getLogger("mlflow")
    console = io.StringIO()
    own = logging.StreamHandler(console)  # as MLflow configures its logger
    before = (list(mlflow.handlers), mlflow.propagate, mlflow.level)
    mlflow.handlers, mlflow.propagate = [own], False
    mlflow.setLevel(logging.INFO)
    try:
        with third_party_log(tmp_path / "third_party.log") as capture:
            mlflow.info("Creating initial MLflow database tables...")
            alembic = logging.getLogger("alembic")
            alembic.addHandler(logging.StreamHandler(console))  # added later, as MLflow's store set-up does
            capture()
            alembic.warning("Context impl SQLiteImpl.")
            logging.getLogger("ray.tune.tune").warning("Wrote the latest version of all result files")
            logging.getLogger("ray._private.worker").error("worker died")
        assert mlflow.handlers == [own]
        mlflow.info("after the block")
    finally:
        mlflow.handlers, mlflow.propagate = before[0], before[1]
        mlflow.setLevel(before[2])
    text = (tmp_path / "third_party.log").read_text()
    for line in ("Creating initial MLflow", "SQLiteImpl", "Wrote the latest version", "worker died"):
        assert line in text
    assert console.getvalue() == "after the block\n"  # nothing during the block, restored after
    assert capsys.readouterr().err == "worker died\n"
