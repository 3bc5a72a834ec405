"""loudness: regress the podcast's loudness (dB) from the ECoG around a moment.

Loudness of `stimuli/podcast.wav` (44.1 kHz stereo int16 in ds005574, 317 MB), as the
reference's volume task computes it:
1. mono mix (mean of the channels), in units of full scale;
2. amplitude envelope |scipy.signal.hilbert(x)|;
3. resampled to `rate` Hz (the derivatives' 512 Hz) with scipy.signal.resample_poly;
4. zero-phase 4th-order Butterworth low-pass at `lowpass_hz` (8 Hz): butter(output="sos") +
   sosfiltfilt;
5. 20 * log10(max(envelope, 0) + eps) dB re full scale (the zero-phase filter can ring
   slightly below zero in silence; the clip keeps the log defined).
Steps 2-3 run over 60-s blocks read from a memory map with 1 s of context on each side
(discarded), so memory stays bounded; the block edges fall on the resampler's grid, so the
blocks join seamlessly. Steps 3 and 4 are linear and the resampler's anti-alias filter passes
everything below 8 Hz, so low-passing after resampling equals low-passing before it.

Events: a regular grid t = 0, step, 2 step, ... (`step`, default 0.25 s) up to the end of the
audio, instead of word onsets (event ids 0, 1, ...; label "grid"); windows are cut around
them like word windows. Target: the dB loudness at the event time (the sample nearest t), or
with `target_window` > 0 the mean dB over [t - w/2, t + w/2]. Standardised with each training
fold's mean and sd; squared error; Pearson r (headline), R2, MSE; early stopping on validation
MSE ("min").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config, opt
from podbench.data.audio import audio_duration, loudness_db
from podbench.data.dataset import AUDIO, Dataset
from podbench.errors import ConfigError
from podbench.registry import register_task
from podbench.tasks.common import EventTargetsKeying, RegressionTask


@dataclass
class LoudnessParams:
    step: float = opt(0.25, gt=0, doc="spacing (s) of the event grid")
    rate: int = opt(512, gt=0, doc="rate (Hz) of the loudness series (the derivatives' rate)")
    lowpass_hz: float = opt(8.0, gt=0, doc="zero-phase Butterworth low-pass of the envelope")
    eps: float = opt(1e-6, gt=0, doc="added to the envelope (full scale = 1) before the dB")
    target_window: float = opt(
        0.0,
        ge=0,
        doc="0: loudness at the event time; > 0: mean dB over this window (s) centred on it",
    )


class LoudnessKeying(EventTargetsKeying):
    """Its events by the grid's step, up to the audio's end."""

    def events(self, cfg: Config) -> dict:
        return {"kind": "grid", "step": cfg.task_params["step"], "until": str(AUDIO)}


@register_task("loudness", params=LoudnessParams, dataset_files=lambda cfg: [AUDIO])
class Loudness(RegressionTask):
    """Loudness (dB) of the podcast on a regular time grid."""

    word_events = False
    keying_class = LoudnessKeying

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        p = cfg.task_params
        if p["lowpass_hz"] >= p["rate"] / 2:
            raise ConfigError(
                f"task_params.lowpass_hz = {p['lowpass_hz']}: must be below half of "
                f"task_params.rate = {p['rate']}"
            )

    def describe(self, cfg: Config) -> str:
        return "loudness"

    def audio(self, dataset: Dataset) -> Path:
        return dataset.root / AUDIO

    def events(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        step = cfg.task_params["step"]
        n = math.ceil(audio_duration(self.audio(dataset)) / step - 1e-9)
        start = np.arange(n) * step
        return pd.DataFrame(
            {
                "word_idx": np.arange(n, dtype=np.int64),
                "word": "grid",
                "start": start,
                "end": start + step,
            }
        )

    def event_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [self.audio(dataset)]

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [self.audio(dataset)]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        p = cfg.task_params
        events = self.events(cfg, dataset)
        db = loudness_db(self.audio(dataset), p["rate"], p["lowpass_hz"], p["eps"])
        t = events["start"].to_numpy()
        if p["target_window"] > 0:
            half = p["target_window"] / 2
            csum = np.r_[0.0, np.cumsum(db)]
            lo = np.clip(np.ceil((t - half) * p["rate"] - 1e-9).astype(np.int64), 0, len(db))
            hi = np.clip(np.floor((t + half) * p["rate"] + 1e-9).astype(np.int64) + 1, 0, len(db))
            ok = hi > lo
            value = np.full(len(t), np.nan)
            value[ok] = (csum[hi[ok]] - csum[lo[ok]]) / (hi[ok] - lo[ok])
        else:
            i = np.rint(t * p["rate"]).astype(np.int64)
            ok = i < len(db)
            value = np.full(len(t), np.nan)
            value[ok] = db[i[ok]]
        return events.loc[ok, ["word_idx", "word"]].assign(value=value[ok])
