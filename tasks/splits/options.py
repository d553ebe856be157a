"""The options of building a split file, declared once: a study spec's ``splits:`` section is this model,
and ``oodml splits build`` generates its flags from its fields (name, help text, default).

Progression settings left unset take the dataset's (``tasks.splits.settings``: published, or CUB200's
scaled to the class count; docs/protocol.md section 2). On the command line a list is comma-separated
(``--shots 2,5,10``, ``--select -20,0,6,R22``); the model reads that form in YAML too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.registry import unknown_name
from tasks.splits.episodes import DEFAULT_EPISODES, EPISODE_BUILDERS
from tasks.splits.extractors import EXTRACTORS
from tasks.splits.selection import parse_selection


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressionOverrides(_Strict):
    """The progression settings a user may set; unset, each keeps the dataset's."""

    steps: int | None = Field(None, description="harder steps N")
    swaps_per_step: int | None = Field(None, description="swaps per step K (all progressions)")
    history: int | None = Field(None, description="swap history H (harder and removal)")
    easier_steps: int | None = Field(None, description="easier steps")
    easier_history: int | None = Field(None, description="swap history of the easier progression")
    removal_steps: int | None = Field(None, description="class-removal steps")


def _comma_list(value: Any) -> Any:
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class SplitOptions(ProgressionOverrides):
    """How to build a split file from a dataset: progressions, the splits kept, episodes, FID features."""

    select: int | list[str] = Field(
        8,
        description="number of splits (spread evenly over the reachable FID range, the default split "
        "among them) or the split keys to keep, e.g. -20,0,6,R22",
    )
    shots: list[int] | None = Field(
        None,
        description="few-shot budgets of the episodes; unset: 2,5,10 (2,5 with whole-class support), in a "
        "study its budgets > 0",
    )
    episodes: int = Field(DEFAULT_EPISODES, description="episodes per shot budget")
    support: str | None = Field(
        None,
        description="few-shot support: 'images' per test class, or whole test 'classes' (docs/protocol.md "
        "section 5); unset: the dataset's default (classes for sop, images otherwise)",
    )
    seed: int = Field(0, description="seed of the train/validation division and of the episodes")
    extractor: str | None = Field(
        None,
        description="FID feature extractor; unset: the dataset's default (resnet50; glyph-classifier for glyphs)",
    )
    weights: str | None = Field(None, description="the extractor's pretrained weights (a file)")
    device: str = Field("cpu", description="where the FID features are computed")
    shift_extractors: list[str] | None = Field(
        None,
        description="more feature extractors: each stores every split's FID under its features as the "
        "shift measure fid@<extractor> (MMD is always stored); unset: none",
    )

    @field_validator("select", mode="before")
    @classmethod
    def _count_or_keys(cls, select: Any) -> Any:
        """``"8"`` is a count, ``"-20,0,R22"`` (or ``"-20"``) a list of keys, as ``--select`` reads them."""
        return parse_selection(select) if isinstance(select, str) else select

    @field_validator("select")
    @classmethod
    def _some(cls, select: int | list[str]) -> int | list[str]:
        if select in (0, []) or (isinstance(select, int) and select < 0):
            raise ValueError(
                f"expected a number of splits >= 1 or a non-empty list of split keys, got {select}"
            )
        return select

    @field_validator("shots", "shift_extractors", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("support")
    @classmethod
    def _support(cls, support: str | None) -> str | None:
        if support is not None and support not in EPISODE_BUILDERS:
            raise ValueError(f"episode builder: {unknown_name(support, EPISODE_BUILDERS)}")
        return support

    @field_validator("extractor", "shift_extractors")
    @classmethod
    def _extractors(cls, names: str | list[str] | None) -> str | list[str] | None:
        if not names:
            return names
        for name in [names] if isinstance(names, str) else names:
            if name not in EXTRACTORS:
                raise ValueError(f"feature extractor: {unknown_name(name, EXTRACTORS)}")
        return names

    @field_validator("weights")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        """Absolute, as the split file's provenance and a study's trials (other working directories) need."""
        return None if path is None else str(Path(path).expanduser().resolve())
