"""The epochs stage: one window per word (or task event) spanning every lag, subjects side by side.

Window arithmetic follows the reference: a lag's window starts at
`round(start*sfreq) + round((lag/1000 - w/2)*sfreq)` and has `round((w - 0.002)*sfreq) + 1`
samples (320 at 0.625 s and 512 Hz). The stored span runs from the first lag's window start to
the last lag's window end, so each lag is a slice of it. Words whose span does not fit inside
every recording are dropped once, for all lags, with the reference's validity rule.

The windows are centred on the task's events: word onsets for word tasks; other tasks
(sentence onsets, a regular grid for loudness) give their own events. The event axis is
called `word` in every store so that all stages align on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.check import check_recordings
from podbench.data.recordings import Recording, open_recordings
from podbench.errors import DataError
from podbench.features.context import Resolved
from podbench.features.keys import StageSpec
from podbench.features.store import write_dataset
from podbench.progress import progress

CHUNK_BYTES = 64e6  # target size of one word chunk of the epochs array
ECOG_ATTRS = {
    "units": "V",
    "long_name": "the recording's signal as mne reads the .fif "
    "(the high-gamma envelope for data.signal highgamma)",
}


@dataclass(frozen=True)
class Geometry:
    """Sample geometry of the lag windows relative to a word's onset sample."""

    sfreq: float
    lags: tuple[int, ...]
    window: int  # samples per lag window
    offsets: tuple[int, ...]  # window start of each lag, relative to the onset sample

    @property
    def span_start(self) -> int:
        return min(self.offsets)

    @property
    def span(self) -> int:
        return max(self.offsets) + self.window - self.span_start

    def lag_start(self, i: int) -> int:
        """Index of lag i's first sample inside the stored span."""
        return self.offsets[i] - self.span_start


def geometry(cfg: Config, sfreq: float) -> Geometry:
    w = cfg.data.window_width
    lags = tuple(cfg.data.lags.values())
    offsets = tuple(int(round((lag / 1000 - w / 2) * sfreq)) for lag in lags)
    return Geometry(sfreq, lags, int(round((w - 0.002) * sfreq)) + 1, offsets)


def valid_words(
    words: pd.DataFrame, recordings: list[Recording], cfg: Config, geo: Geometry
) -> np.ndarray:
    """Mask of words whose windows fit inside every recording, for every lag.

    The reference's rule in seconds, with the first and the last lag run (not the grid's
    exclusive end: at -1000..800 ms the podcast's last word fits), plus the sample-level
    bound of the stored span so that no window is ever read out of range.
    """
    w, first, last = cfg.data.window_width, min(geo.lags), max(geo.lags)
    start = words["start"].to_numpy()
    onset = np.rint(start * geo.sfreq).astype(np.int64)
    ok = np.ones(len(words), bool)
    for rec in recordings:
        last_time = (rec.n_times - 1) / rec.sfreq
        ok &= start + (first / 1000 - w / 2) >= 0
        ok &= start + (last / 1000 + w / 2 - 0.002) <= last_time
        ok &= onset + geo.span_start >= 0
        ok &= onset + geo.span_start + geo.span <= rec.n_times
    return ok


def read_windows(rec: Recording, onsets: np.ndarray, geo: Geometry) -> np.ndarray:
    """Span windows of `rec` at onset samples -> float32 [word, channel, time]."""
    lo = int(onsets.min()) + geo.span_start
    hi = int(onsets.max()) + geo.span_start + geo.span
    segment = rec.read(lo, hi)
    index = (onsets - lo + geo.span_start)[:, None] + np.arange(geo.span)
    return np.ascontiguousarray(segment[:, index].transpose(1, 0, 2))


def build_epochs(ctx: Resolved, spec: StageSpec, tmp: Path) -> dict:
    """Write the epochs store of a resolved config at `tmp`; return extra provenance."""
    import xarray as xr

    cfg = ctx.cfg
    check_recordings(ctx.dataset, ctx.subjects, cfg.data.signal)
    recordings = open_recordings(ctx.dataset, ctx.subjects, ctx.electrodes, cfg.data.signal)
    geo = geometry(cfg, recordings[0].sfreq)
    words = ctx.task.events(cfg, ctx.dataset)
    keep = valid_words(words, recordings, cfg, geo)
    kept = words[keep].reset_index(drop=True)
    if kept.empty:
        raise DataError(
            f"no event of task {cfg.task!r} fits the lag grid "
            f"{cfg.data.lags.values()} ms and window {cfg.data.window_width} s "
            "inside every recording"
        )
    onsets = np.rint(kept["start"].to_numpy() * geo.sfreq).astype(np.int64)
    channels = [f"sub-{r.subject:02d}:{n}" for r in recordings for n in r.channels]
    n_ch = len(channels)
    chunk = int(max(1, min(1024, CHUNK_BYTES // (n_ch * geo.span * 4))))
    static = {
        "channel": ("channel", np.array(channels, dtype=object)),
        "subject": ("channel", np.array([r.subject for r in recordings for _ in r.channels])),
        "name": ("channel", np.array([n for r in recordings for n in r.channels], dtype=object)),
        "time": (
            "time",
            (geo.span_start + np.arange(geo.span)) / geo.sfreq,
            {"units": "s", "long_name": "time relative to the event onset"},
        ),
    }
    bar = progress(len(kept), "epochs", unit="word")
    for first in range(0, len(kept), chunk):
        sl = slice(first, first + chunk)
        data = np.concatenate([read_windows(r, onsets[sl], geo) for r in recordings], axis=1)
        part = xr.Dataset(
            {"ecog": (("word", "channel", "time"), data, ECOG_ATTRS)},
            coords={
                "word": kept["word_idx"].to_numpy()[sl].astype(np.int64),
                "label": ("word", kept["word"].to_numpy()[sl].astype(object)),
                "onset": ("word", kept["start"].to_numpy()[sl], {"units": "s"}),
                "offset": ("word", kept["end"].to_numpy()[sl], {"units": "s"}),
                "onset_sample": ("word", onsets[sl], {"units": "samples"}),
            },
        )
        if first == 0:
            part = part.assign_coords(static)
        write_dataset(tmp, part, chunk, append=first > 0)
        bar.update(len(data))
    bar.close()
    dropped = words.loc[~keep, "word_idx"].astype(int).tolist()
    return {
        "sfreq": geo.sfreq,
        "window_samples": geo.window,
        "lags_ms": list(geo.lags),
        "lag_starts": [geo.lag_start(i) for i in range(len(geo.lags))],
        "dropped_words": dropped,
        "n_words_total": int(len(words)),
    }
