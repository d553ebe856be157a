"""Choosing the benchmark splits among the recorded progression steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tasks.splits.progressions import SplitStep

DEFAULT_KEY = "0"


def candidates(progressions: dict[str, list[SplitStep]]) -> list[SplitStep]:
    """Every recorded step once; key "0" (the default split) is recorded by both swap directions."""
    seen: dict[str, SplitStep] = {}
    for steps in progressions.values():
        for step in steps:
            seen.setdefault(step.key, step)
    return list(seen.values())


def select_by_keys(progressions: dict[str, list[SplitStep]], keys: Sequence[str]) -> list[SplitStep]:
    """The splits named by their keys (e.g. CUB's ``-20,-10,0,6,10,30,R22,R48,R66``), sorted by FID."""
    by_key = {step.key: step for step in candidates(progressions)}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise ValueError(f"split keys {unknown} were not recorded; recorded keys: {', '.join(by_key)}")
    return sorted((by_key[k] for k in dict.fromkeys(keys)), key=lambda s: s.fid)


def select_evenly(progressions: dict[str, list[SplitStep]], count: int = 8) -> list[SplitStep]:
    """``count`` splits whose FIDs are spread as evenly as possible over the reachable range.

    Always takes the default split and the lowest- and highest-FID steps, then adds, one at a time, the
    step farthest (in FID) from every step taken so far (max-min spacing). Returned sorted by FID.
    """
    pool = candidates(progressions)
    if count < 1:
        raise ValueError("select at least one split")
    if count >= len(pool):
        return sorted(pool, key=lambda s: s.fid)
    fids = np.array([s.fid for s in pool])
    default = next(i for i, s in enumerate(pool) if s.key == DEFAULT_KEY)
    chosen = list(dict.fromkeys([default, int(np.argmin(fids)), int(np.argmax(fids))]))[:count]
    while len(chosen) < count:
        gaps = np.min(np.abs(fids[:, None] - fids[chosen][None, :]), axis=1)
        gaps[chosen] = -1.0
        chosen.append(int(np.argmax(gaps)))
    return sorted((pool[i] for i in chosen), key=lambda s: s.fid)


def parse_selection(text: str | None) -> int | list[str]:
    """``--select`` value: a split count (``8``) or comma-separated keys (``-20,0,6,R22``)."""
    if text is None or text == "":
        return 8
    if text.strip().isdigit():
        return int(text)
    return [k.strip() for k in text.split(",") if k.strip()]


def select(progressions: dict[str, list[SplitStep]], selection: int | Sequence[str]) -> list[SplitStep]:
    if isinstance(selection, int):
        return select_evenly(progressions, selection)
    return select_by_keys(progressions, selection)
