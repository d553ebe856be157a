"""Published progression settings per dataset (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import replace

from tasks.splits.episodes import Support
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


# Few-shot support per dataset (DESIGN.md 6): whole test classes where classes hold only a few images.
DEFAULT_SUPPORT: dict[str, Support] = {"sop": "classes"}


def default_support(dataset: str | None) -> Support:
    """How a dataset's few-shot episodes draw their support: ``images`` per class, or whole ``classes``."""
    return DEFAULT_SUPPORT.get(dataset or "", "images")


def default_settings(dataset: str | None) -> ProgressionConfig:
    """The published settings of a dataset; CUB200's for any other dataset (the demo included)."""
    return PUBLISHED_SETTINGS.get(dataset or "", _CUB)


# The overridable progression settings: the names ``oodml splits build`` options and a study's
# ``splits:`` section share.
OVERRIDES = ("steps", "swaps_per_step", "history", "easier_steps", "easier_history", "removal_steps")


def overrides_of(settings: object) -> dict[str, int | None]:
    """The ``OVERRIDES`` attributes of parsed options or a study's split settings."""
    return {name: getattr(settings, name) for name in OVERRIDES}


def progression_config(
    dataset: str | None,
    *,
    steps: int | None = None,
    swaps_per_step: int | None = None,
    history: int | None = None,
    easier_steps: int | None = None,
    easier_history: int | None = None,
    removal_steps: int | None = None,
) -> ProgressionConfig:
    """The dataset's published settings with the given ones in their place (``None`` keeps published).

    ``swaps_per_step`` applies to all three progressions, ``history`` to the harder and removal ones.
    """
    published = default_settings(dataset)

    def override(
        settings: ProgressionSettings, steps: int | None, history: int | None
    ) -> ProgressionSettings:
        changes = {"steps": steps, "history": history, "swaps_per_step": swaps_per_step}
        return replace(settings, **{name: v for name, v in changes.items() if v is not None})

    return ProgressionConfig(
        harder=override(published.harder, steps, history),
        easier=override(published.easier, easier_steps, easier_history),
        removal=override(published.removal, removal_steps, history),
    )
