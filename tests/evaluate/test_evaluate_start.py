"""``oodml evaluate --no-nmi`` loads no faiss: k-means is the only part of the evaluation that needs it, and
the process's start counts in its time against faiss's bare search (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.test_cli_start import imported_modules


def test_no_nmi_imports_no_faiss_and_nmi_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(path, embeddings=rng.normal(size=(40, 4)).astype(np.float32), labels=np.arange(40) % 8)
    without = imported_modules("evaluate", str(path), "--no-nmi", "--json")
    assert "torch" in without and "faiss" not in without
    assert "faiss" in imported_modules("evaluate", str(path), "--json")
