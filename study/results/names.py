"""Names the results code and its command line share, in a module light enough for ``--help``."""

from __future__ import annotations

FID = "fid"  # the shift measure of the paper, a column of its own; the others are keys of ``shift``
CELL, SEED = "cell", "seed"  # what the sign-flip test flips (study/results/compare.py, **Test**)
UNITS = (CELL, SEED)
