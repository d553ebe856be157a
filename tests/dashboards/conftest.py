"""The dashboard of a synthetic study, built once per test session."""

from pathlib import Path

import pytest

from dashboards import build_report
from tests.dashboards.synthetic import make_study


@pytest.fixture(scope="session")
def study_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built dashboard (index.html) of a 2 methods x 4 splits x 2 seeds x shots {0, 2} study."""
    study_dir = make_study(tmp_path_factory.mktemp("study"), ["multisimilarity", "margin"])
    return build_report(study_dir)
