"""iu_boundary: is a moment an intonation-unit boundary (1) or a point inside an IU (0)?

Boundaries are an annotation read from a table, `task_params.boundaries_csv` (a path relative
to data.root, or absolute), with the boundary times in seconds in a column `start` (or `time`,
the reference's column name). Events:
- positives (label "boundary"): every boundary;
- negatives (label "inside"): `negatives_per_positive` x the number of boundaries, drawn
  uniformly over the union of the IU segments between consecutive boundaries, each shrunk by
  `margin` at both ends, by rejection sampling away from every boundary; deterministic from
  `seed` (the task's own: it defines the epochs). Segments shorter than 2 x margin get none.
  (The reference draws the same number in every segment, from seed 0, and also keeps a
  window's width before the next boundary; its defaults were 1 per boundary, margin 1 s, and
  its config 2 per boundary, margin 0.5 s, as here.)
Events are numbered in time order and windows are cut around them like word windows. Binary
head (BCE on one logit), ROC-AUC (headline), F1, balanced accuracy.

The reference's table (hassonlab/podcast-benchmark, processed_data/iu_boundaries.csv, columns
time, prev_word, next_word) was made by scripts/transcribe_prosody.py: the PSST model
(NathanRoll/psst-medium-en on Hugging Face, a Whisper-medium fine-tuned to emit an
<|IU_Boundary|> token) transcribes podcast.wav in 25-s chunks; its words are aligned to the
ds005574 transcript by dynamic programming, and each boundary gets the middle of the pause
between the transcript words on either side of it (the previous word's end where they touch).
Download that CSV from the reference repository and point `boundaries_csv` at it. `podbench
synth` writes a stand-in table, derivatives/podbench-synth/iu_boundaries.csv, and plants a
boundary response on the ground truth's `boundary_channels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from podbench.config import Config, opt
from podbench.data.dataset import Dataset, read_table, seconds_column
from podbench.errors import ConfigError, DataError
from podbench.registry import register_task
from podbench.tasks.common import BinaryTask, EventTargetsKeying
from podbench.tasks.negatives import draw_inside, numbered_events

TIME_COLUMNS = ("start", "time")
STANDIN_TABLE = "derivatives/podbench-synth/iu_boundaries.csv"


@dataclass
class IuBoundaryParams:
    boundaries_csv: str | None = opt(
        None,
        doc="CSV of IU boundaries (column start or time, s); relative to data.root or "
        f"absolute (the stand-in's: {STANDIN_TABLE})",
    )
    negatives_per_positive: int = opt(2, ge=1, doc="negatives drawn per IU boundary")
    margin: float = opt(0.5, ge=0, doc="negatives lie at least this far (s) from every boundary")
    seed: int = opt(0, ge=0, doc="seed of the negative draws (the task's own: it defines epochs)")
    class_weight: Literal["none", "balanced"] = opt(
        "none", doc="balanced: weight the loss by the training fold's class frequencies"
    )


def boundaries_path(cfg: Config) -> Path:
    """The boundary table: under data.root, else as given (absolute or from the working
    directory)."""
    spec = cfg.task_params["boundaries_csv"]
    given = Path(spec).expanduser()
    under_root = Path(cfg.data.root).expanduser() / given
    for path in (under_root, given) if not given.is_absolute() else (given,):
        if path.is_file():
            return path
    raise ConfigError(
        f"task_params.boundaries_csv = {spec!r}: no such file (looked for "
        f"{under_root}{'' if given.is_absolute() else f' and {given}'})"
    )


def boundary_times(path: Path) -> np.ndarray:
    """Sorted distinct boundary times (s) of the table."""
    table = read_table(path, (), sep=",")
    column = next((c for c in TIME_COLUMNS if c in table.columns), None)
    if column is None:
        raise DataError(
            f"{path}: expected a column start (or time) of IU boundary times in "
            f"seconds; found {list(table.columns)}"
        )
    times = np.unique(seconds_column(table, column, path))
    if len(times) < 2:
        raise DataError(
            f"{path}: {len(times)} boundary time(s); expected at least 2 "
            "(negatives lie between consecutive boundaries)"
        )
    return times


def iu_events(cfg: Config) -> pd.DataFrame:
    """Boundaries and inside points, numbered in time order (see the module docstring)."""
    p = cfg.task_params
    path = boundaries_path(cfg)
    bounds = boundary_times(path)
    n_neg = p["negatives_per_positive"] * len(bounds)
    try:
        t_neg, which = draw_inside(
            bounds[:-1] + p["margin"],
            bounds[1:] - p["margin"],
            bounds,
            n_neg,
            p["margin"],
            p["seed"],
            "IU boundary",
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    events = pd.DataFrame(
        {
            "start": np.r_[bounds, t_neg],
            "end": np.r_[bounds[1:], bounds[-1], bounds[1:][which]],
            "word": ["boundary"] * len(bounds) + ["inside"] * n_neg,
        }
    )
    return numbered_events(events)


class IuBoundaryKeying(EventTargetsKeying):
    """Its events by the boundary table's content and the parameters that draw the negatives
    (all but the class weights)."""

    def events(self, cfg: Config) -> dict:
        from podbench.data.recordings import file_digest

        p = dict(cfg.task_params)
        p.pop("class_weight")
        p["boundaries_csv"] = {"sha256": file_digest(boundaries_path(cfg))}
        return {"kind": "iu_boundary", **p}


# its events are those of the boundary table (task_params.boundaries_csv), not part of ds005574
@register_task("iu_boundary", params=IuBoundaryParams, dataset_files=lambda cfg: [])
class IuBoundary(BinaryTask):
    """Intonation-unit boundaries vs points inside IUs, windows centred on each."""

    word_events = False
    keying_class = IuBoundaryKeying

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        if not cfg.task_params["boundaries_csv"]:
            raise ConfigError(
                "task_params.boundaries_csv is required: a CSV of IU boundary times "
                "(column start or time, s), e.g. the reference's "
                f"processed_data/iu_boundaries.csv or the stand-in's {STANDIN_TABLE}"
            )

    def events(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        return iu_events(cfg)

    def event_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [boundaries_path(cfg)]

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return self.event_sources(cfg, dataset)

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        events = iu_events(cfg)
        return events[["word_idx", "word"]].assign(
            value=(events["word"] == "boundary").astype(np.float64)
        )
