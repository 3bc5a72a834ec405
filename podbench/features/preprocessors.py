"""Built-in preprocessors: epochs lag slice [word, channel, time] -> model input per word.

A preprocessor is registered with `@register_preprocessor(name, params=Schema, dims=...)` as a
factory `(params, context) -> transform`; `transform(x)` maps one lag slice of a word chunk,
float32 [word, channel, time], to [word, *dims]. The keywords are the fields of its spec
(podbench.specs.PreprocessorSpec); optional ones:

- `sources(cfg) -> list[Path]`: files it reads (fingerprinted);
- `depends(cfg) -> dict`: extra inputs that enter the latents key (e.g. a checkpoint digest);
- `standardise(params) -> None | "all" | "train"`: per-channel z-scoring of the output, with
  statistics over all words (stored with the latents) or over each training fold (applied by
  the trainer, so no test statistics leak into training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from podbench.config import opt
from podbench.errors import ConfigError
from podbench.registry import register_preprocessor


@dataclass
class EpochsContext:
    """What a preprocessor may need to know about the epochs it transforms."""

    sfreq: float
    window: int  # samples per lag window
    channels: list[str]  # "sub-XX:NAME"
    subjects: list[int]  # per channel
    root: str  # dataset root (e.g. for electrode coordinates)
    overrides: tuple[str, ...] = ()  # the command line's --set values (see Config.overrides)


def block_average(x: np.ndarray, size: int) -> np.ndarray:
    """Means over consecutive blocks of `size` samples (a trailing partial block is dropped)."""
    n = x.shape[-1] // size
    if n == 0:
        raise ConfigError(
            f"preprocess.params.num_average_samples = {size}: larger than the "
            f"window ({x.shape[-1]} samples)"
        )
    return (
        x[..., : n * size]
        .reshape(*x.shape[:-1], n, size)
        .mean(-1, dtype=np.float64)
        .astype(np.float32)
    )


@dataclass
class WindowAverageParams:
    num_average_samples: int = opt(32, ge=1, doc="samples per averaged bin")


@register_preprocessor("window_average", params=WindowAverageParams, dims=("channel", "bin"))
def window_average(params: dict, ctx: EpochsContext):
    """The reference's: means over blocks of 32 samples (10 bins of 62.5 ms at 512 Hz)."""
    size = params["num_average_samples"]
    return lambda x: block_average(x, size)


@dataclass
class ZscoreParams:
    num_average_samples: int = opt(32, ge=1, doc="samples per averaged bin")
    fit: Literal["all", "train"] = "all"


@register_preprocessor(
    "zscore", params=ZscoreParams, dims=("channel", "bin"), standardise=lambda p: p["fit"]
)
def zscore(params: dict, ctx: EpochsContext):
    """Block means, then per-channel z-scores (statistics over all words or the training fold)."""
    return window_average(params, ctx)


@dataclass
class WindowRmsParams:
    num_average_samples: int | None = opt(
        None, ge=1, doc="samples per RMS bin; null: one RMS over the whole window"
    )


@register_preprocessor("window_rms", params=WindowRmsParams, dims=("channel", "bin"))
def window_rms(params: dict, ctx: EpochsContext):
    """The reference's: root mean square per channel over the whole window (one bin), or over
    blocks of `num_average_samples` samples (a trailing partial block is dropped)."""
    size = params["num_average_samples"]

    def transform(x: np.ndarray) -> np.ndarray:
        squares = x.astype(np.float64) ** 2
        mean = squares.mean(-1, keepdims=True) if size is None else block_average(squares, size)
        return np.sqrt(mean).astype(np.float32)

    return transform


@register_preprocessor("identity", params=None, dims=("channel", "time"))
def identity(params: dict, ctx: EpochsContext):
    """The raw samples of each lag window."""
    return lambda x: x
