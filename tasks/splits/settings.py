"""Progression settings per dataset: the published ones (docs/protocol.md section 2), scaled for the rest.

CUB200, CARS196 and SOP use their published settings exactly. Any other dataset (an image folder, a CSV
list, the glyph demo) starts from CUB200's and bounds them by the size of its initial partition, ``n``
classes on the smaller side, so that a small dataset builds with the defaults (``scaled_settings``):

- swaps per step: at most a quarter of ``n`` (at least 1);
- swap history: at most 30% of ``n`` (CUB's easier walk remembers 30 of its 100 classes per side), and
  never so long that a step runs out of candidates (history + swaps per step <= n);
- removal steps: at most as many as can run before a side would fall below what the next step needs
  (swaps + max(history, 2) classes) if every step removed classes; the removal walk stops there anyway.

A dataset with CUB's 100 + 100 classes or more gets CUB's settings unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tasks.splits.episodes import Support
from tasks.splits.options import ProgressionOverrides
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings

_CUB = ProgressionConfig(
    harder=ProgressionSettings(steps=25, swaps_per_step=2, history=5),
    easier=ProgressionSettings(steps=15, swaps_per_step=2, history=30),
    removal=ProgressionSettings(steps=35, swaps_per_step=2, history=5),
)
# SOP: the paper publishes K=1000, N=20 for the harder direction only. The history length and the
# easier/removal settings are ours: a history of one step's swaps, a short easier walk, and few removal
# steps since each removes up to 1000 classes per side.
_SOP = ProgressionConfig(
    harder=ProgressionSettings(steps=20, swaps_per_step=1000, history=1000),
    easier=ProgressionSettings(steps=5, swaps_per_step=1000, history=1000),
    removal=ProgressionSettings(steps=5, swaps_per_step=1000, history=1000),
)

PUBLISHED_SETTINGS: dict[str, ProgressionConfig] = {"cub200": _CUB, "cars196": _CUB, "sop": _SOP}

# The paper's benchmark split keys, where published (CUB200).
PUBLISHED_KEYS: dict[str, list[str]] = {"cub200": ["-20", "-10", "0", "6", "10", "30", "R22", "R48", "R66"]}


# Few-shot support per dataset (docs/protocol.md section 5): whole test classes where classes hold only a
# few images.
DEFAULT_SUPPORT: dict[str, Support] = {"sop": "classes"}


def default_support(dataset: str | None) -> Support:
    """How a dataset's few-shot episodes draw their support: ``images`` per class, or whole ``classes``."""
    return DEFAULT_SUPPORT.get(dataset or "", "images")


def default_settings(dataset: str | None, sides: Sequence[int] | None = None) -> ProgressionConfig:
    """The published settings of a dataset; for any other dataset (the demo included) CUB200's, scaled
    to ``sides`` (its initial train and test class counts) when given."""
    if dataset in PUBLISHED_SETTINGS:
        return PUBLISHED_SETTINGS[dataset]
    return _CUB if sides is None else scaled_settings(_CUB, sides)


MAX_SWAP_FRACTION = 0.25  # swaps per step, of the smaller side
MAX_HISTORY_FRACTION = 0.3  # swap history, of the smaller side


def scaled_settings(
    config: ProgressionConfig, sides: Sequence[int], fixed: frozenset[str] = frozenset()
) -> ProgressionConfig:
    """``config`` bounded by the size of the initial partition (the rule in the module docstring).

    ``fixed`` names the overrides (``OVERRIDES``) a user gave: those are kept as given.
    """
    n = min(sides)
    if n < 2:
        raise ValueError(
            f"the initial partition has {list(sides)} train/test classes; FID needs at least 2 on each side"
        )
    swaps = config.harder.swaps_per_step
    if "swaps_per_step" not in fixed:
        swaps = min(swaps, max(1, int(MAX_SWAP_FRACTION * n)))
    most_history = min(int(MAX_HISTORY_FRACTION * n), n - swaps)

    def bound(settings: ProgressionSettings, history_option: str) -> ProgressionSettings:
        history = settings.history if history_option in fixed else max(0, min(settings.history, most_history))
        return replace(settings, swaps_per_step=swaps, history=history)

    harder, easier = bound(config.harder, "history"), bound(config.easier, "easier_history")
    removal = bound(config.removal, "history")
    if "removal_steps" not in fixed:
        keep = swaps + max(removal.history, 2)  # the removal walk stops below this (progressions.py)
        runnable = max(1, (n - keep) // swaps + 1)
        removal = replace(removal, steps=min(removal.steps, runnable))
    return ProgressionConfig(harder=harder, easier=easier, removal=removal)


# The overridable progression settings, as ``tasks.splits.options`` declares them (the flags of
# ``oodml splits build`` and the keys of a study's ``splits:`` section).
OVERRIDES = tuple(ProgressionOverrides.model_fields)


def overrides_of(settings: ProgressionOverrides) -> dict[str, int | None]:
    """The progression settings of split options, as ``progression_config`` takes them."""
    return {name: getattr(settings, name) for name in OVERRIDES}


def progression_config(
    dataset: str | None,
    *,
    sides: Sequence[int] | None = None,
    steps: int | None = None,
    swaps_per_step: int | None = None,
    history: int | None = None,
    easier_steps: int | None = None,
    easier_history: int | None = None,
    removal_steps: int | None = None,
) -> ProgressionConfig:
    """The dataset's settings (``default_settings``) with the given ones in their place (``None`` keeps
    the default).

    ``swaps_per_step`` applies to all three progressions, ``history`` to the harder and removal ones.
    ``sides`` (the initial partition's train and test class counts) scales the defaults of a dataset
    without published settings; the given settings are kept as given.
    """
    published = default_settings(dataset)

    def override(
        settings: ProgressionSettings, steps: int | None, history: int | None
    ) -> ProgressionSettings:
        changes = {"steps": steps, "history": history, "swaps_per_step": swaps_per_step}
        return replace(settings, **{name: v for name, v in changes.items() if v is not None})

    config = ProgressionConfig(
        harder=override(published.harder, steps, history),
        easier=override(published.easier, easier_steps, easier_history),
        removal=override(published.removal, removal_steps, history),
    )
    if sides is None or dataset in PUBLISHED_SETTINGS:
        return config
    given = dict(
        steps=steps,
        swaps_per_step=swaps_per_step,
        history=history,
        easier_steps=easier_steps,
        easier_history=easier_history,
        removal_steps=removal_steps,
    )
    return scaled_settings(config, sides, frozenset(k for k, v in given.items() if v is not None))
