"""Synthetic stand-in of OpenNeuro ds005574 (the "Podcast" ECoG dataset).

The real text metadata shipped in ``podbench/data/ds005574`` is copied verbatim; only the signals
and the GPT-2 XL features are simulated:

* ``stimuli/gpt2-xl/features.hdf5``: per token, a fixed vector per ``hftoken`` string mixed with a
  leaky random walk over token position (the "context"); deeper layers carry more context.
* ``stimuli/whisper-medium/features.hdf5``: dataset ``vectors``, one 1024-d float32 row per row of the
  Whisper transcript: a fixed random projection of the word's layer-24 stand-in embedding (so it
  shares GPT-2's word-type and context components and is decodable where those are) mixed with a
  vector of its own per word type.
* ``stimuli/podcast.wav``: 44.1 kHz stereo int16, speech-like: Gaussian noise whose amplitude is a
  burst per word (its own level, 10-ms ramps) over a quiet floor, times a slow loudness
  modulation; written in blocks with the ``wave`` module (memory stays bounded).
* ``derivatives/ecogprep``: a high-gamma envelope per good ECoG channel,
  ``baseline * exp(drift + response + noise)``. On a minority of "responsive" channels (grid
  contacts favoured) every word adds a Gaussian bump peaking ``latency_ms`` after its onset, whose
  height is a generic onset response plus a fixed random projection of the word's layer-24
  stand-in embedding. Two random halves of the responsive channels (drawn independently) carry
  more: "content" channels add ``content_gain * (is_content - 1/2)`` to every word's height
  (content = first non-punctuation spaCy tag of the syntactic transcript is NN*, VB*, JJ* or RB*),
  and "loudness" channels add ``loudness_gain`` times the z-scored loudness of podcast.wav (dB of
  its 8-Hz low-passed amplitude) delayed by ``latency_ms``. Another random half, "boundary"
  channels, adds a bump of height ``boundary_gain`` peaking ``latency_ms`` after every
  intonation-unit boundary. Channels outside the sets are unchanged.
* ``derivatives/podbench-synth/iu_boundaries.csv``: stand-in intonation-unit boundaries (column
  ``start``, s), the table the ``iu_boundary`` task reads: IUs of 3 + Poisson(2) consecutive words,
  each boundary at the middle of the pause between two words (the end of the first where they touch).
* ``derivatives/podbench-synth/glove.50d.txt``: a GloVe-format file over the stand-in's words
  (key = the glove source's lookup of the word; vector = a fixed random 50-d projection of the
  mean stand-in embedding of its occurrences), for the ``glove`` target source.
* optionally the raw EDF: 1/f^2 background, 60 Hz line noise and harmonics, and a 70-200 Hz noise
  carrier whose amplitude is the envelope above, so a high-gamma pipeline recovers it.

``derivatives/podbench-synth/ground_truth.json`` is written last and marks the stand-in complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import h5py
import mne
import numpy as np
import pandas as pd
from edfio import Edf, EdfSignal
from mne_bids import BIDSPath
from scipy import ndimage, sparse

from podbench import __version__
from podbench.data.dataset import AUDIO, GPT2_FEATURES, SYNTACTIC, TRANSCRIPT, WHISPER_FEATURES, \
    WHISPER_TRANSCRIPT, glove_key
from podbench.errors import DataError

SOURCE = Path(__file__).parent / "ds005574"
SUBJECTS = tuple(range(1, 10))
FULL_DURATION = 1800.0  # seconds recorded in the real dataset
SFREQ = 512.0  # derivative sampling rate (Hz) for every subject
LAYERS = (0, 12, 24, 36, 48)  # GPT-2 XL layers written to features.hdf5
EMBEDDING_LAYER = 24  # layer whose word embedding drives the responses
TRANSCRIPT_SETS = ("gpt2-xl", "whisper-medium", "en_core_web_lg", "syntactic", "phonetic", "spectral")
GROUND_TRUTH = Path("derivatives/podbench-synth/ground_truth.json")
ELECTRODE_CSV = Path("derivatives/podbench-synth/responsive_electrodes.csv")
IU_BOUNDARIES = Path("derivatives/podbench-synth/iu_boundaries.csv")
GLOVE = Path("derivatives/podbench-synth/glove.50d.txt")
GLOVE_DIM = 50
GENERATOR_NAME = "podbench synth"

# Stand-in GPT-2 features.
CONTEXT_SHARE = (0.05, 0.8)  # variance share of the context component at layer 0 and layer 48
CONTEXT_MEMORY_TOKENS = 20.0  # time constant of the context random walk (tokens)

# High-gamma envelope; amplitudes below are in natural-log units of the envelope.
BASELINE_V = 2e-6  # median envelope level (V)
BASELINE_SPREAD = 0.3  # sd across channels of the log baseline
DRIFT_SD = 0.2  # sd of the slow drift
DRIFT_TIMESCALE_S = 20.0  # Gaussian smoothing (sd, s) of the drift
NOISE_SD = 0.5  # sd of the fast noise
NOISE_SMOOTH_MS = 10.0  # Gaussian smoothing (sd, ms) of the noise: content stays below ~30 Hz
RESPONSIVE_FRACTION = 0.12  # share of each subject's good channels that respond to words
GRID_WEIGHT = 3.0  # selection weight of grid contacts (G, EG) relative to strips and depths (S, D)
GENERIC_GAIN = 0.15  # response to every word onset (times snr)
WORD_GAIN = 0.3  # sd over words of the embedding-driven response (times snr)
KERNEL_SD_MS = 80.0  # width (sd) of the Gaussian response kernel
GAUSSIAN_TRUNCATE = 4.0  # Gaussian kernels (response and smoothing) are cut at this many sd
BLOCK_CHANNELS = 32  # channels simulated at once (bounds memory)
CONTENT_FRACTION = 0.5  # share of each subject's responsive channels that respond to content words
CONTENT_GAIN = 0.4  # content - function word difference of the response height (times snr)
LOUDNESS_FRACTION = 0.5  # share of each subject's responsive channels that track loudness
LOUDNESS_GAIN = 0.25  # response per sd of loudness (dB) (times snr)
CONTENT_PREFIXES = ("NN", "VB", "JJ", "RB")  # Penn tags of content words
BOUNDARY_FRACTION = 0.5  # share of each subject's responsive channels that respond to IU boundaries
BOUNDARY_GAIN = 0.25  # response to every intonation-unit boundary (times snr)
IU_MIN_WORDS = 3  # words per intonation unit: IU_MIN_WORDS + Poisson(IU_EXTRA_WORDS)
IU_EXTRA_WORDS = 2.0

# Whisper stand-in features.
WHISPER_DIM = 1024
WHISPER_SHARED = 0.64  # variance share of the projected GPT-2 stand-in embedding

# Audio.
AUDIO_SFREQ = 44100
AUDIO_BLOCK_S = 10.0  # seconds written at once
AUDIO_LEVEL = 0.05  # noise sd (full scale) at a word of level 1 and no modulation
AUDIO_FLOOR = 0.2  # level between words (room tone), relative to a word of level 1
WORD_LEVEL_SD = 0.3  # sd of the log level of each word
SLOW_SD = 0.35  # sd of the slow log-amplitude modulation
SLOW_TIMESCALE_S = 1.5  # Gaussian smoothing (sd, s) of the slow modulation
RAMP_MS = 10.0  # Gaussian smoothing (sd, ms) of the word bursts' edges
LOUDNESS_LOWPASS_HZ = 8.0  # low-pass of the amplitude before the dB (as the loudness task)

# Raw EDF.
RAW_BACKGROUND_V = 20e-6  # sd of each channel's 1/f^2 background
RAW_COMMON_V = 10e-6  # sd of the 1/f^2 background shared by all channels (removed by a CAR)
LINE_NOISE_V = {60.0: 10e-6, 120.0: 3e-6, 180.0: 1.5e-6}  # line-noise amplitude per harmonic
HIGH_GAMMA_BAND = (70.0, 200.0)  # band of the envelope-modulated carrier (Hz)
PHYSIOLOGICAL_LEVELS = {"bpm": 72.0, "%": 97.0}  # level of channels recorded in these units
EDF_ANNOTATIONS = "EDF Annotations"


class _Stream(IntEnum):
    """Random streams; each is seeded by (seed, stream[, subject]) so subjects stay independent."""

    TOKEN_TYPE = 0
    CONTEXT = 1
    SELECT = 2
    PROJECTION = 3
    BASELINE = 4
    DRIFT = 5
    NOISE = 6
    RAW = 7
    CONTENT = 8
    LOUDNESS = 9
    AUDIO = 10
    WHISPER = 11
    IU = 12
    BOUNDARY = 13
    GLOVE = 14


def _rng(seed: int, stream: _Stream, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(stream), *key])


@dataclass(frozen=True)
class _Subject:
    """One subject's real channel metadata."""

    number: int
    channels: pd.DataFrame  # every channels.tsv row
    good: list[str]  # good ECOG channels, in channels.tsv order
    positions: dict[str, np.ndarray]  # MNI position (m) of each localized good channel
    groups: list[str]  # electrodes.tsv group of each good channel ("" when not localized)
    raw_sfreq: float

    @property
    def label(self) -> str:
        return f"sub-{self.number:02d}"


@dataclass(frozen=True)
class _Words:
    """Word onsets and z-scored stand-in embeddings of the kept transcript."""

    onsets: np.ndarray  # (n_words,) seconds
    embeddings: np.ndarray  # (n_words, dim)
    word_idx: np.ndarray  # (n_words,)
    ends: np.ndarray | None = None  # (n_words,) seconds (last token's end)
    is_content: np.ndarray | None = None  # (n_words,) bool


def synthesize(
    out: str | Path,
    subjects: list[int] | None = None,
    duration: float = 1800.0,
    seed: int = 0,
    dim: int = 1600,
    raw: bool = False,
    latency_ms: float = 250.0,
    snr: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a stand-in of ds005574 under `out`; returns out. subjects None = all nine."""
    out = Path(out)
    subjects = _check_subjects(subjects)
    n_times = _check_duration(duration, raw)
    if not (isinstance(seed, int) and seed >= 0):
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(dim, int) and dim >= 1):
        raise DataError(f"dim must be a positive integer, got {dim!r}")
    if not snr >= 0:
        raise DataError(f"snr must be a non-negative number, got {snr!r}")
    if not math.isfinite(latency_ms):
        raise DataError(f"latency_ms must be a finite number, got {latency_ms!r}")
    duration, snr, latency_ms = float(duration), float(snr), float(latency_ms)
    report = progress or (lambda message: None)
    _prepare_out(out)

    report(f"copying metadata to {out}")
    _write_top_level(out)
    for number in subjects:
        _copy_sidecars(out, number, n_times)
    words, n_tokens = _write_stimuli(out, duration, seed, dim)
    report(f"stimuli: {n_tokens} tokens, {len(words.onsets)} words before {duration:g} s")
    loudness = _write_audio(out / AUDIO, words, duration, n_times, seed)
    report(f"audio: {out / AUDIO}")
    boundaries = _write_iu_boundaries(out / IU_BOUNDARIES, words, seed)
    report(f"intonation units: {len(boundaries)} boundaries -> {out / IU_BOUNDARIES}")

    responsive, content, tracking, bounding, n_channels = [], [], [], [], {}
    for number in subjects:
        subject = _load_subject(number)
        envelope, chosen, sets = _simulate_subject(subject, words, seed, n_times, latency_ms, snr,
                                                   loudness, boundaries)
        path = _write_highgamma(out, subject, envelope)
        report(f"{subject.label}: {len(subject.good)} channels, {len(chosen)} responsive -> {path}")
        if raw:
            path = _write_raw_edf(out, subject, envelope, seed)
            report(f"{subject.label}: raw EDF -> {path}")
        responsive += [f"{subject.label}:{subject.good[c]}" for c in chosen]
        content += [f"{subject.label}:{subject.good[c]}" for c in sets["content"]]
        tracking += [f"{subject.label}:{subject.good[c]}" for c in sets["loudness"]]
        bounding += [f"{subject.label}:{subject.good[c]}" for c in sets["boundary"]]
        n_channels[subject.label] = len(subject.good)
        del envelope  # free it before the next subject is simulated

    assert words.is_content is not None  # _write_stimuli marks the content words
    ground_truth = {
        "generator": GENERATOR_NAME,
        "podbench_version": __version__,
        "seed": seed,
        "subjects": subjects,
        "duration_s": duration,
        "sfreq": SFREQ,
        "n_times": n_times,
        "dim": dim,
        "raw": raw,
        "snr": snr,
        "latency_ms": latency_ms,
        "kernel": {
            "shape": "gaussian",
            "peak_ms": latency_ms,
            "sd_ms": KERNEL_SD_MS,
            "truncated_at_sd": GAUSSIAN_TRUNCATE,
        },
        "model": {
            "envelope": "baseline * exp(drift + response + noise)",
            "baseline_v": BASELINE_V,
            "drift_sd": DRIFT_SD,
            "noise_sd": NOISE_SD,
            "generic_gain": GENERIC_GAIN * snr,
            "word_gain": WORD_GAIN * snr,
            "embedding_layer": EMBEDDING_LAYER,
            "responsive_fraction": RESPONSIVE_FRACTION,
            "content": "content_gain * (is_content - 0.5) added to each word's height on content_channels; "
            "is_content: first non-punctuation token of stimuli/syntactic/transcript.tsv tagged NN*, VB*, JJ*, RB*",
            "content_gain": CONTENT_GAIN * snr,
            "content_fraction": CONTENT_FRACTION,
            "loudness": "loudness_gain * z(loudness dB)(t - latency_ms) added on loudness_channels",
            "loudness_gain": LOUDNESS_GAIN * snr,
            "loudness_latency_ms": latency_ms,
            "loudness_fraction": LOUDNESS_FRACTION,
            "boundary": "boundary_gain * kernel(t - boundary - latency_ms) added on boundary_channels "
            "for every intonation-unit boundary of iu_boundaries.file",
            "boundary_gain": BOUNDARY_GAIN * snr,
            "boundary_fraction": BOUNDARY_FRACTION,
        },
        "iu_boundaries": {
            "file": str(IU_BOUNDARIES),
            "n_boundaries": len(boundaries),
            "model": f"IUs of {IU_MIN_WORDS} + Poisson({IU_EXTRA_WORDS:g}) consecutive words (word_idx "
            "order); a boundary at the middle of the pause between two words, or the end of the "
            "first where they touch",
        },
        "audio": {
            "file": str(AUDIO),
            "sfreq": AUDIO_SFREQ,
            "channels": 2,
            "model": "AUDIO_LEVEL * slow(t) * (floor + word bursts(t)) * gaussian noise; right = 0.9 * left",
            "floor": AUDIO_FLOOR,
            "word_level_sd": WORD_LEVEL_SD,
            "slow_sd": SLOW_SD,
            "slow_timescale_s": SLOW_TIMESCALE_S,
            "loudness_lowpass_hz": LOUDNESS_LOWPASS_HZ,
        },
        "whisper": {"dim": WHISPER_DIM, "shared_variance": WHISPER_SHARED, "dataset": "vectors"},
        "layers": list(LAYERS),
        "n_tokens": n_tokens,
        "n_words": len(words.onsets),
        "n_content_words": int(words.is_content.sum()),
        "n_channels": n_channels,
        "responsive_channels": responsive,
        "content_channels": content,
        "loudness_channels": tracking,
        "boundary_channels": bounding,
    }
    _write_json(out / GROUND_TRUTH, ground_truth, indent=2)
    report(f"done: {out / GROUND_TRUTH}")
    return out


def _check_subjects(subjects: list[int] | None) -> list[int]:
    if subjects is None:
        return list(SUBJECTS)
    try:
        chosen = sorted({operator.index(s) for s in subjects})
    except TypeError:
        chosen = []
    if not chosen or any(s not in SUBJECTS for s in chosen):
        raise DataError(f"subjects must be a non-empty list of subject numbers 1-9, got {subjects!r}")
    return chosen


def _check_duration(duration: float, raw: bool) -> int:
    """Validate the duration and return the number of 512-Hz samples."""
    if not 0 < duration <= FULL_DURATION:
        raise DataError(f"duration must be in (0, {FULL_DURATION:g}] seconds, got {duration!r}")
    n_times = round(duration * SFREQ)
    if n_times < 2:
        raise DataError(f"duration {duration!r} s is shorter than two samples at {SFREQ:g} Hz")
    if raw and n_times % int(SFREQ):
        raise DataError(f"the raw EDF has 1-s data records: duration must be whole seconds, got {duration!r}")
    return n_times


def _is_standin(out: Path) -> bool:
    try:
        description = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    generated = description.get("GeneratedBy") if isinstance(description, dict) else None
    return isinstance(generated, list) and any(
        isinstance(g, dict) and g.get("Name") == GENERATOR_NAME for g in generated
    )


def _prepare_out(out: Path) -> None:
    """Refuse foreign content; clear what a previous stand-in generated (completion marker first)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not _is_standin(out):
            raise DataError(
                f"output {out} is not empty and is not a podbench stand-in (its dataset_description.json "
                f"is not generated by {GENERATOR_NAME!r}); choose an empty or new directory"
            )
        (out / GROUND_TRUTH).unlink(missing_ok=True)
        generated = [out / "stimuli", out / "derivatives/ecogprep", out / GROUND_TRUTH.parent]
        for stale in [*out.glob("sub-*"), *generated]:
            if stale.is_dir():
                shutil.rmtree(stale)
    out.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, content: dict, indent: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=indent, ensure_ascii=False), encoding="utf-8")


def _copy(relative: str, out: Path) -> None:
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE / relative, out / relative)


def _write_top_level(out: Path) -> None:
    """dataset_description.json first (it marks the folder as a stand-in), then the verbatim copies."""
    description = json.loads((SOURCE / "dataset_description.json").read_text(encoding="utf-8"))
    description["Name"] = (
        'Synthetic stand-in of OpenNeuro ds005574 (The "Podcast" ECoG dataset), generated by podbench; '
        "the signals are simulated"
    )
    description["GeneratedBy"] = [{"Name": GENERATOR_NAME, "Version": __version__}]
    _write_json(out / "dataset_description.json", description, indent=4)
    for name in ("participants.tsv", "participants.json", "README", "CHANGES"):
        _copy(name, out)


def _copy_sidecars(out: Path, number: int, n_times: int) -> None:
    """Copy a subject's sidecars verbatim; a shortened recording gets its RecordingDuration rewritten."""
    label = f"sub-{number:02d}"
    for suffix in (
        "task-podcast_channels.tsv",
        "space-MNI152NLin2009aSym_electrodes.tsv",
        "space-MNI152NLin2009aSym_coordsystem.json",
        "space-Other_electrodes.tsv",
        "space-Other_coordsystem.json",
    ):
        _copy(f"{label}/ieeg/{label}_{suffix}", out)
    sidecar = f"{label}/ieeg/{label}_task-podcast_ieeg.json"
    if n_times == round(FULL_DURATION * SFREQ):
        _copy(sidecar, out)
        return
    content = json.loads((SOURCE / sidecar).read_text(encoding="utf-8"))
    sfreq = content["SamplingFrequency"]
    content["RecordingDuration"] = (n_times * round(sfreq / SFREQ) - 1) / sfreq
    _write_json(out / sidecar, content, indent=2)


def _read_rows(path: Path) -> tuple[bytes, list[bytes]]:
    """Header line and row lines of a tsv, as bytes without line ends."""
    header, *rows = path.read_bytes().split(b"\n")
    return header, rows[:-1] if rows and rows[-1] == b"" else rows


def _column(header: bytes, rows: list[bytes], name: str) -> list[str]:
    index = header.decode("utf-8").split("\t").index(name)
    return [row.decode("utf-8").split("\t")[index] for row in rows]


def _write_transcript(name: str, out: Path, duration: float) -> np.ndarray:
    """Copy the header and the rows starting before `duration` verbatim; return the kept-row mask."""
    relative = f"stimuli/{name}/transcript.tsv"
    header, rows = _read_rows(SOURCE / relative)
    keep = np.array([float(s) < duration for s in _column(header, rows, "start")], dtype=bool)
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    kept_rows = [row for row, k in zip(rows, keep) if k]
    (out / relative).write_bytes(b"".join(line + b"\n" for line in [header, *kept_rows]))
    return keep


def _write_stimuli(out: Path, duration: float, seed: int, dim: int) -> tuple[_Words, int]:
    """Filtered transcripts, performance.json and features.hdf5; return the words that drive responses."""
    keep = {name: _write_transcript(name, out, duration) for name in TRANSCRIPT_SETS}
    _copy("stimuli/gpt2-xl/performance.json", out)
    header, rows = _read_rows(SOURCE / TRANSCRIPT)
    tokens = _column(header, rows, "hftoken")
    kept = keep["gpt2-xl"]
    layer = _write_features(out / GPT2_FEATURES, tokens, kept, seed, dim)
    word_idx = np.array(_column(header, rows, "word_idx"), dtype=int)[kept]
    start = np.array(_column(header, rows, "start"), dtype=float)[kept]
    end = np.array(_column(header, rows, "end"), dtype=float)[kept]
    words = _word_table(word_idx, start, layer, end)
    words = _with_content(words, keep["syntactic"])
    _write_whisper(out, keep["whisper-medium"], words, seed)
    first_rows = np.unique(word_idx, return_index=True)[1]
    text = np.array(_column(header, rows, "word"), dtype=object)[kept][first_rows]
    _write_glove(out / GLOVE, text, words.embeddings, seed)
    return words, int(kept.sum())


def _write_glove(path: Path, text: np.ndarray, embeddings: np.ndarray, seed: int) -> None:
    """A GloVe-format text file (one `key v1 ... v50` line per type) over the stand-in's words,
    keyed as the glove source looks words up: each type's vector is a fixed random projection
    of the mean of its occurrences' stand-in embeddings (a static embedding of the words the
    responses carry)."""
    keys = np.array([glove_key(str(w)) for w in text], dtype=object)
    projection = _rng(seed, _Stream.GLOVE).standard_normal((embeddings.shape[1], GLOVE_DIM))
    projected = embeddings @ projection / math.sqrt(embeddings.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for key in sorted(set(keys.tolist()) - {""}):
            vector = projected[keys == key].mean(axis=0)
            f.write(key + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")


def _token_type_vector(token: str, seed: int, dim: int) -> np.ndarray:
    """Fixed random vector of a token string (a stable hash, so identical across runs and processes)."""
    digest = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return _rng(seed, _Stream.TOKEN_TYPE, digest).standard_normal(dim)


def _context_walk(n_tokens: int, seed: int, dim: int) -> np.ndarray:
    """Unit-variance leaky random walk over token positions: the slowly drifting context."""
    rho = math.exp(-1.0 / CONTEXT_MEMORY_TOKENS)
    steps = _rng(seed, _Stream.CONTEXT).standard_normal((n_tokens, dim))
    walk = np.empty_like(steps)
    state = np.zeros(dim)
    scale = math.sqrt(1 - rho**2)
    for i, step in enumerate(steps):
        state = rho * state + scale * step if i else step
        walk[i] = state
    return walk


def _write_features(path: Path, tokens: list[str], kept: np.ndarray, seed: int, dim: int) -> np.ndarray:
    """Write layer-{i} (kept tokens x dim, float32) and return the EMBEDDING_LAYER array."""
    kept_tokens = [t for t, k in zip(tokens, kept) if k]
    vectors = {t: _token_type_vector(t, seed, dim) for t in sorted(set(kept_tokens))}
    types = np.array([vectors[t] for t in kept_tokens]).reshape(len(kept_tokens), dim)
    context = _context_walk(len(tokens), seed, dim)[kept]
    first, last = CONTEXT_SHARE
    with h5py.File(path, "w") as f:
        for layer in LAYERS:
            share = first + (last - first) * layer / LAYERS[-1]
            values = (math.sqrt(1 - share) * types + math.sqrt(share) * context).astype(np.float32)
            f.create_dataset(f"layer-{layer}", data=values, track_times=False)
            if layer == EMBEDDING_LAYER:
                embedding_layer = values
    return embedding_layer


def _zscore(x: np.ndarray) -> np.ndarray:
    """Z-score the columns of x (columns with no spread are only centred)."""
    if len(x) == 0:
        return x
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _word_table(word_idx: np.ndarray, start: np.ndarray, layer: np.ndarray,
                end: np.ndarray | None = None) -> _Words:
    """Onset = first start of each word; embedding = mean of its token rows, z-scored over words."""
    order, first, inverse = np.unique(word_idx, return_index=True, return_inverse=True)
    sums = np.zeros((len(first), layer.shape[1]))
    np.add.at(sums, inverse, layer)
    counts = np.bincount(inverse, minlength=len(first))
    ends = None
    if end is not None:
        ends = np.full(len(first), -np.inf)
        np.maximum.at(ends, inverse, end)
    return _Words(onsets=start[first], embeddings=_zscore(sums / counts[:, None]), word_idx=order,
                  ends=ends)


def _with_content(words: _Words, kept: np.ndarray) -> _Words:
    """Mark content words: the first non-punctuation token of each word in the syntactic
    transcript (kept rows) has a Penn tag NN*, VB*, JJ* or RB* (podbench's content_word rule)."""
    header, rows = _read_rows(SOURCE / SYNTACTIC)
    rows = [r for r, k in zip(rows, kept) if k]
    word_idx = np.array(_column(header, rows, "word_idx"), dtype=int)
    tokens = _column(header, rows, "token")
    tags = _column(header, rows, "pos")
    tag_of: dict[int, str] = {}
    fallback: dict[int, str] = {}
    for w, token, tag in zip(word_idx.tolist(), tokens, tags):
        fallback.setdefault(w, tag)
        if w not in tag_of and any(ch.isalnum() for ch in token):
            tag_of[w] = tag
    content = np.array([tag_of.get(w, fallback.get(w, "")).startswith(CONTENT_PREFIXES)
                        for w in words.word_idx.tolist()], dtype=np.bool_)
    return _Words(words.onsets, words.embeddings, words.word_idx, words.ends, content)


def _write_whisper(out: Path, kept: np.ndarray, words: _Words, seed: int) -> None:
    """stimuli/whisper-medium/features.hdf5: `vectors`, one row per kept Whisper transcript row."""
    header, rows = _read_rows(SOURCE / WHISPER_TRANSCRIPT)
    rows = [r for r, k in zip(rows, kept) if k]
    word_idx = np.array(_column(header, rows, "word_idx"), dtype=int)
    texts = _column(header, rows, "word")
    rng = _rng(seed, _Stream.WHISPER)
    dim = words.embeddings.shape[1]
    projection = rng.standard_normal((dim, WHISPER_DIM)) / math.sqrt(dim)
    position = {int(w): i for i, w in enumerate(words.word_idx.tolist())}
    shared = np.zeros((len(rows), WHISPER_DIM))
    has = np.array([int(w) in position for w in word_idx], dtype=bool)
    if has.any():
        shared[has] = words.embeddings[[position[int(w)] for w in word_idx[has]]] @ projection
    own = np.array([_token_type_vector(f"whisper\0{t}", seed, WHISPER_DIM) for t in texts]).reshape(
        len(rows), WHISPER_DIM)
    share = np.where(has, WHISPER_SHARED, 0.0)[:, None]
    vectors = (np.sqrt(share) * shared + np.sqrt(1 - share) * own).astype(np.float32)
    with h5py.File(out / WHISPER_FEATURES, "w") as f:
        f.create_dataset("vectors", data=vectors, track_times=False)


def _amplitude(words: _Words, n_times: int, seed: int) -> np.ndarray:
    """Audio amplitude (noise sd, full scale) at SFREQ: slow modulation x (floor + word bursts)."""
    rng = _rng(seed, _Stream.AUDIO)
    levels = np.exp(WORD_LEVEL_SD * rng.standard_normal(len(words.onsets)))
    bursts = np.zeros(n_times)
    assert words.ends is not None  # _word_table was given the tokens' ends
    first = np.clip(np.round(words.onsets * SFREQ).astype(int), 0, n_times)
    last = np.clip(np.round(words.ends * SFREQ).astype(int), 0, n_times)
    for a, b, level in zip(first.tolist(), last.tolist(), levels.tolist()):
        if b > a:
            np.maximum(bursts[a:b], level, out=bursts[a:b])
    _, ramp = _gaussian(RAMP_MS / 1000.0 * SFREQ)
    bursts = ndimage.convolve1d(bursts, ramp / ramp.sum(), mode="constant")
    knots = np.arange(math.ceil(n_times / SFREQ) + 1)
    slow = SLOW_SD * _smooth_noise(rng, (1, len(knots)), SLOW_TIMESCALE_S)[0]
    modulation = np.exp(np.interp(np.arange(n_times) / SFREQ, knots, slow))
    return AUDIO_LEVEL * modulation * (AUDIO_FLOOR + bursts)


def _write_audio(path: Path, words: _Words, duration: float, n_times: int, seed: int) -> np.ndarray:
    """Write podcast.wav block by block; return the planted loudness regressor: the z-scored dB of
    the amplitude low-passed at 8 Hz, at SFREQ (n_times samples)."""
    import wave

    from scipy.signal import butter, sosfiltfilt

    amplitude = _amplitude(words, n_times, seed)
    grid = np.arange(n_times) / SFREQ
    n_frames = round(duration * AUDIO_SFREQ)
    block = int(AUDIO_BLOCK_S * AUDIO_SFREQ)
    rng = _rng(seed, _Stream.AUDIO, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(AUDIO_SFREQ)
        for a in range(0, n_frames, block):
            b = min(a + block, n_frames)
            level = np.interp(np.arange(a, b) / AUDIO_SFREQ, grid, amplitude).astype(np.float32)
            left = level * rng.standard_normal(b - a, dtype=np.float32)
            frames = np.empty((b - a, 2), np.int16)
            frames[:, 0] = np.clip(np.rint(left * 32767), -32768, 32767)
            frames[:, 1] = np.clip(np.rint(0.9 * left * 32767), -32768, 32767)
            w.writeframes(frames.tobytes())
    sos = butter(4, LOUDNESS_LOWPASS_HZ, btype="low", fs=SFREQ, output="sos")
    db = 20 * np.log10(np.maximum(sosfiltfilt(sos, amplitude), 1e-9))
    return _zscore(db)


def _iu_boundaries(words: _Words, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in intonation units: runs of IU_MIN_WORDS + Poisson(IU_EXTRA_WORDS) consecutive words.
    Returns each boundary's time (the middle of the pause before the IU's first word, or the
    previous word's end where the words touch) and the position of that first word."""
    n = len(words.onsets)
    lengths = IU_MIN_WORDS + _rng(seed, _Stream.IU).poisson(IU_EXTRA_WORDS, n // IU_MIN_WORDS + 1)
    first = np.cumsum(lengths)
    first = first[first < n]
    assert words.ends is not None  # _word_table was given the tokens' ends
    prev_end, next_start = words.ends[first - 1], words.onsets[first]
    times = np.where(next_start > prev_end, (prev_end + next_start) / 2, prev_end)
    return times, first


def _write_iu_boundaries(path: Path, words: _Words, seed: int) -> np.ndarray:
    """Write the boundary table (start s, and the word_idx on either side); return the times."""
    times, first = _iu_boundaries(words, seed)
    times = np.round(times, 6)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"start": times, "prev_word_idx": words.word_idx[first - 1],
                  "next_word_idx": words.word_idx[first]}).to_csv(path, index=False)
    return times


def _load_subject(number: int) -> _Subject:
    label = f"sub-{number:02d}"
    folder = SOURCE / label / "ieeg"
    channels = pd.read_csv(
        folder / f"{label}_task-podcast_channels.tsv",
        sep="\t",
        encoding="utf-8-sig",
        dtype=str,
        keep_default_na=False,
    )
    electrodes = pd.read_csv(
        folder / f"{label}_space-MNI152NLin2009aSym_electrodes.tsv",
        sep="\t",
        na_values=["n/a"],
        keep_default_na=False,
    ).set_index("name")
    good = channels.loc[(channels["type"] == "ECOG") & (channels["status"] == "good"), "name"].tolist()
    positions = {
        name: electrodes.loc[name, ["x", "y", "z"]].to_numpy(dtype=float) / 1000.0
        for name in good
        if name in electrodes.index and electrodes.loc[name, ["x", "y", "z"]].notna().all()
    }
    groups = [str(electrodes.loc[name, "group"]) if name in electrodes.index else "" for name in good]
    sidecar = json.loads((folder / f"{label}_task-podcast_ieeg.json").read_text(encoding="utf-8"))
    return _Subject(number, channels, good, positions, groups, float(sidecar["SamplingFrequency"]))


def _choose_responsive(subject: _Subject, seed: int) -> np.ndarray:
    """Indices (sorted) of responsive good channels; grid contacts are GRID_WEIGHT times as likely."""
    weights = np.array([GRID_WEIGHT if group in ("G", "EG") else 1.0 for group in subject.groups])
    n = max(1, round(RESPONSIVE_FRACTION * len(weights)))
    rng = _rng(seed, _Stream.SELECT, subject.number)
    return np.sort(rng.choice(len(weights), n, replace=False, p=weights / weights.sum()))


def _gaussian(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer lags and the peak-1 Gaussian of `sigma` samples on them."""
    half = math.ceil(GAUSSIAN_TRUNCATE * sigma)
    lags = np.arange(-half, half + 1)
    return lags, np.exp(-0.5 * (lags / sigma) ** 2)


def _kernel_matrix(onsets: np.ndarray, n_times: int, latency_ms: float) -> sparse.csr_matrix:
    """(n_times, n_words) matrix whose column w is the response kernel of word w."""
    lags, taps = _gaussian(KERNEL_SD_MS / 1000.0 * SFREQ)
    peaks = np.round((onsets + latency_ms / 1000.0) * SFREQ).astype(int)
    rows = peaks[:, None] + lags[None, :]
    cols = np.broadcast_to(np.arange(len(onsets))[:, None], rows.shape)
    values = np.broadcast_to(taps[None, :], rows.shape)
    inside = (rows >= 0) & (rows < n_times)
    return sparse.csr_matrix((values[inside], (rows[inside], cols[inside])), shape=(n_times, len(onsets)))


def _responses(
    subject: _Subject,
    chosen: np.ndarray,
    words: _Words,
    seed: int,
    n_times: int,
    latency_ms: float,
    snr: float,
    content: np.ndarray | None = None,
) -> np.ndarray:
    """(n_responsive, n_times) log-envelope response: per word, generic + projected-embedding height
    (+ the content-word term on the `content` columns)."""
    rng = _rng(seed, _Stream.PROJECTION, subject.number)
    projection = rng.standard_normal((words.embeddings.shape[1], len(chosen)))
    heights = snr * (GENERIC_GAIN + WORD_GAIN * _zscore(words.embeddings @ projection))
    if content is not None and words.is_content is not None and content.any():
        heights[:, content] += snr * CONTENT_GAIN * (words.is_content.astype(float) - 0.5)[:, None]
    return np.ascontiguousarray((_kernel_matrix(words.onsets, n_times, latency_ms) @ heights).T)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed along the last axis by a Gaussian of `sigma` samples."""
    _, kernel = _gaussian(sigma)
    kernel /= np.sqrt(np.sum(kernel**2))
    return ndimage.convolve1d(rng.standard_normal(shape), kernel, axis=-1, mode="reflect")


def _choose_subset(chosen: np.ndarray, fraction: float, seed: int, stream: _Stream, number: int) -> np.ndarray:
    """A random `fraction` (at least one) of the responsive channels, sorted."""
    n = max(1, round(fraction * len(chosen)))
    return np.sort(_rng(seed, stream, number).choice(chosen, n, replace=False))


def _simulate_subject(
    subject: _Subject,
    words: _Words,
    seed: int,
    n_times: int,
    latency_ms: float,
    snr: float,
    loudness: np.ndarray | None = None,
    boundaries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """High-gamma envelope (n_good, n_times) in volts, the responsive channel indices and the
    content, loudness and boundary channel sets (subsets of them)."""
    n_channels = len(subject.good)
    chosen = _choose_responsive(subject, seed)
    content = _choose_subset(chosen, CONTENT_FRACTION, seed, _Stream.CONTENT, subject.number)
    tracking = _choose_subset(chosen, LOUDNESS_FRACTION, seed, _Stream.LOUDNESS, subject.number)
    bounding = _choose_subset(chosen, BOUNDARY_FRACTION, seed, _Stream.BOUNDARY, subject.number)
    response = _responses(subject, chosen, words, seed, n_times, latency_ms, snr, np.isin(chosen, content))
    response_row = {int(c): i for i, c in enumerate(chosen)}
    tracks = set(tracking.tolist()) if loudness is not None and snr > 0 else set()
    if tracks and loudness is not None:  # (tracks is empty without loudness)
        shift = round(latency_ms / 1000.0 * SFREQ)
        delayed = np.roll(loudness, shift)
        delayed[: max(shift, 0)] = loudness[0]
        if shift < 0:
            delayed[shift:] = loudness[-1]
        loudness_term = snr * LOUDNESS_GAIN * delayed
    bounds = set(bounding.tolist()) if boundaries is not None and len(boundaries) and snr > 0 else set()
    if bounds and boundaries is not None:  # (bounds is empty without boundaries)
        kernels = _kernel_matrix(boundaries, n_times, latency_ms)
        boundary_term = snr * BOUNDARY_GAIN * np.asarray(kernels.sum(axis=1)).ravel()
    baseline_rng = _rng(seed, _Stream.BASELINE, subject.number)
    baseline = BASELINE_V * np.exp(BASELINE_SPREAD * baseline_rng.standard_normal(n_channels))
    knot_times = np.arange(math.ceil(n_times / SFREQ) + 1)  # drift knots, one per second
    drift_rng = _rng(seed, _Stream.DRIFT, subject.number)
    drift = DRIFT_SD * _smooth_noise(drift_rng, (n_channels, len(knot_times)), DRIFT_TIMESCALE_S)
    times = np.arange(n_times) / SFREQ
    noise_rng = _rng(seed, _Stream.NOISE, subject.number)
    envelope = np.empty((n_channels, n_times))
    for start in range(0, n_channels, BLOCK_CHANNELS):
        stop = min(start + BLOCK_CHANNELS, n_channels)
        block = NOISE_SD * _smooth_noise(noise_rng, (stop - start, n_times), NOISE_SMOOTH_MS / 1000.0 * SFREQ)
        for c in range(start, stop):
            block[c - start] += np.interp(times, knot_times, drift[c])
            if c in response_row:
                block[c - start] += response[response_row[c]]
            if c in tracks:
                block[c - start] += loudness_term
            if c in bounds:
                block[c - start] += boundary_term
        np.exp(block, out=block)
        envelope[start:stop] = block * baseline[start:stop, None]
    return envelope, chosen, {"content": content, "loudness": tracking, "boundary": bounding}


def _write_highgamma(out: Path, subject: _Subject, envelope: np.ndarray) -> Path:
    """Save the envelope as the ecogprep high-gamma derivative (float32 fif, MNI locations in metres)."""
    info = mne.create_info(subject.good, SFREQ, ch_types="ecog")
    raw = mne.io.RawArray(envelope, info, verbose="error")
    montage = mne.channels.make_dig_montage(ch_pos=subject.positions, coord_frame="head")
    raw.set_montage(montage, on_missing="ignore", verbose="error")
    raw.info["line_freq"] = 60.0
    raw.info["description"] = "podbench synthetic stand-in: simulated high-gamma envelope"
    with raw.info._unlock():
        raw.info["highpass"], raw.info["lowpass"] = HIGH_GAMMA_BAND
    bids_path = BIDSPath(
        root=out / "derivatives/ecogprep",
        subject=f"{subject.number:02d}",
        task="podcast",
        datatype="ieeg",
        description="highgamma",
        suffix="ieeg",
        extension=".fif",
        check=False,
    )
    bids_path.mkdir()
    raw.save(bids_path.fpath, fmt="single", overwrite=True, verbose="error")
    return bids_path.fpath


def _spectral_noise(
    rng: np.random.Generator, n: int, sfreq: float, gain: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Unit-variance Gaussian noise with amplitude spectrum `gain(frequency)`."""
    spectrum = np.fft.rfft(rng.standard_normal(n)) * gain(np.fft.rfftfreq(n, 1.0 / sfreq))
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def _one_over_f(frequency: np.ndarray) -> np.ndarray:
    return 1.0 / np.maximum(frequency, 0.5)


def _high_gamma_band(frequency: np.ndarray) -> np.ndarray:
    return ((frequency >= HIGH_GAMMA_BAND[0]) & (frequency <= HIGH_GAMMA_BAND[1])).astype(float)


def _write_raw_edf(out: Path, subject: _Subject, envelope: np.ndarray, seed: int) -> Path:
    """Write every channels.tsv signal (not the EDF Annotations row) as a 16-bit EDF with 1-s records."""
    sfreq = subject.raw_sfreq
    n = envelope.shape[1] * round(sfreq / SFREQ)
    times = np.arange(n) / sfreq
    rng = _rng(seed, _Stream.RAW, subject.number)
    common = RAW_COMMON_V * _spectral_noise(rng, n, sfreq, _one_over_f)
    line = sum(a * np.sin(2 * np.pi * f * times + rng.uniform(0, 2 * np.pi)) for f, a in LINE_NOISE_V.items())
    row_of = {name: i for i, name in enumerate(subject.good)}
    # mean Rayleigh envelope of unit-variance narrow-band noise is sqrt(pi/2)
    carrier_scale = 1.0 / math.sqrt(math.pi / 2)
    signals = []
    for name, units in zip(subject.channels["name"], subject.channels["units"]):
        if name == EDF_ANNOTATIONS:
            continue
        if units in PHYSIOLOGICAL_LEVELS:
            data = PHYSIOLOGICAL_LEVELS[units] + 0.5 * _spectral_noise(rng, n, sfreq, _one_over_f)
            signals.append(EdfSignal(data, sfreq, label=name, physical_dimension=units))
            continue
        if name in row_of:
            amplitude = np.interp(times, np.arange(envelope.shape[1]) / SFREQ, envelope[row_of[name]])
        else:
            amplitude = BASELINE_V
        volts = (
            RAW_BACKGROUND_V * _spectral_noise(rng, n, sfreq, _one_over_f)
            + common
            + rng.uniform(0.5, 1.5) * line
            + carrier_scale * amplitude * _spectral_noise(rng, n, sfreq, _high_gamma_band)
        )
        signals.append(EdfSignal(volts * 1e6, sfreq, label=name, physical_dimension="uV"))
    path = out / subject.label / "ieeg" / f"{subject.label}_task-podcast_ieeg.edf"
    Edf(signals, data_record_duration=1.0).write(path)
    return path


def responsive_electrode_csv(root: str | Path, out: str | Path | None = None) -> Path:
    """The ground truth's responsive channels as a reference-format CSV (subject=NYU id, elec).

    This is how researchers pass "significant electrodes"; the default path is beside the
    ground truth.
    """
    from podbench.data.dataset import Dataset

    root = Path(root)
    truth = json.loads((root / GROUND_TRUTH).read_text())
    nyu = {s: n for n, s in Dataset(root).nyu_to_subject().items()}
    rows = []
    for item in truth["responsive_channels"]:
        sub, name = item.split(":", 1)
        rows.append({"subject": nyu[int(sub[4:])], "elec": name})
    out = Path(out) if out else root / ELECTRODE_CSV
    pd.DataFrame(rows).to_csv(out, index=False)
    return out
