"""The podcast's loudness (dB re full scale) from stimuli/podcast.wav, as the reference's
volume task computes it (see podbench/tasks/loudness.py for the steps)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from podbench.errors import DataError

BLOCK_S = 60.0  # seconds of audio per block
CONTEXT_S = 1.0  # context on each side of a block (discarded)
FILTER_ORDER = 4


def open_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, memory-mapped samples [n] or [n, channels])."""
    from scipy.io import wavfile

    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # "Chunk (non-data) not understood"
            sr, data = wavfile.read(path, mmap=True)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read it as a PCM wav file ({exc})") from exc
    return int(sr), data


def _full_scale(dtype: np.dtype) -> tuple[float, float]:
    """(offset, scale) turning samples of `dtype` into [-1, 1]."""
    if np.issubdtype(dtype, np.floating):
        return 0.0, 1.0
    if dtype == np.uint8:
        return 128.0, 128.0
    return 0.0, float(2 ** (8 * dtype.itemsize - 1))


def envelope_at_rate(data: np.ndarray, sr: int, rate: int,
                     block_s: float = BLOCK_S, context_s: float = CONTEXT_S) -> np.ndarray:
    """|hilbert(mono mix)| resampled from `sr` to `rate` Hz, computed block by block."""
    from scipy.fft import next_fast_len
    from scipy.signal import hilbert, resample_poly

    g = math.gcd(rate, sr)
    up, down = rate // g, sr // g
    n = data.shape[0]
    block = max(1, round(block_s * sr / down)) * down
    context = max(1, math.ceil(context_s * sr / down)) * down
    offset, scale = _full_scale(data.dtype)
    out = np.empty(math.ceil(n * up / down))
    for a in range(0, n, block):
        b = min(a + block, n)
        lo, hi = max(0, a - context), min(n, b + context)
        x = np.asarray(data[lo:hi], dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        x = (x - offset) / scale
        env = np.abs(hilbert(x, N=next_fast_len(len(x)))[:len(x)])
        res = resample_poly(env, up, down)
        first, j0, j1 = (a - lo) * up // down, a * up // down, math.ceil(b * up / down)
        out[j0:j1] = res[first:first + j1 - j0]
    return out


def loudness_db(path: Path, rate: int = 512, lowpass_hz: float = 8.0, eps: float = 1e-6,
                block_s: float = BLOCK_S) -> np.ndarray:
    """The loudness series (dB re full scale) of a wav file at `rate` Hz (module docstring)."""
    from scipy.signal import butter, sosfiltfilt

    sr, data = open_wav(path)
    env = envelope_at_rate(data, sr, rate, block_s=block_s)
    sos = butter(FILTER_ORDER, lowpass_hz, btype="low", fs=rate, output="sos")
    smooth = sosfiltfilt(sos, env)
    return 20.0 * np.log10(np.maximum(smooth, 0.0) + eps)


def audio_duration(path: Path) -> float:
    sr, data = open_wav(path)
    return data.shape[0] / sr
