"""Reading the ds005574 layout: participants, channel tables, electrodes, derivatives, words.

The same code reads the real dataset and the stand-in written by `podbench synth`.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.errors import DataError

TASK = "podcast"
MNI_SPACE = "MNI152NLin2009aSym"
# The stimulus files podbench reads, by their path inside the dataset.
TRANSCRIPT = "stimuli/gpt2-xl/transcript.tsv"  # the words every word task is centred on
GPT2_FEATURES = "stimuli/gpt2-xl/features.hdf5"
WHISPER_TRANSCRIPT = "stimuli/whisper-medium/transcript.tsv"
WHISPER_FEATURES = "stimuli/whisper-medium/features.hdf5"
SYNTACTIC = "stimuli/syntactic/transcript.tsv"
AUDIO = "stimuli/podcast.wav"


def read_table(path: Path, required: tuple[str, ...], sep: str = "\t", **kwargs) -> pd.DataFrame:
    """Read a TSV/CSV (with or without a UTF-8 BOM); check its required columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        table = pd.read_csv(path, sep=sep, encoding="utf-8-sig", keep_default_na=False,
                            na_values=["n/a", ""], **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse it as a table ({exc})") from exc
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table


def seconds_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column of finite numbers (times in seconds) of a table read from `path`."""
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(f"{path}: column {column} row {bad[0] + 2} is "
                        f"{table[column].astype(str).iloc[bad[0]]!r}, expected a time in seconds")
    return values


def sub_label(sub: int) -> str:
    return f"sub-{sub:02d}"


def podbench_highgamma_path(root: Path, sub: int) -> Path:
    """Where `podbench highgamma` writes a subject's recomputed high gamma under a BIDS root."""
    return (root / "derivatives" / "podbench-highgamma" / sub_label(sub) / "ieeg"
            / f"{sub_label(sub)}_task-{TASK}_desc-highgamma_ieeg.fif")


class Dataset:
    """A ds005574-layout BIDS root (real or stand-in)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DataError(f"data.root {str(root)!r}: no such directory "
                            "(make a stand-in with `podbench synth --out DIR` or download ds005574)")

    @cached_property
    def participants(self) -> pd.DataFrame:
        table = read_table(self.root / "participants.tsv", ("participant_id", "nyu_id"))
        bad = ~table["participant_id"].astype(str).str.fullmatch(r"sub-\d+")
        if bad.any():
            raise DataError(f"{self.root / 'participants.tsv'}: participant_id "
                            f"{table['participant_id'][bad].iloc[0]!r} is not of the form sub-NN")
        table["subject"] = table["participant_id"].str[4:].astype(int)
        return table

    @property
    def subjects(self) -> list[int]:
        return sorted(self.participants["subject"])

    def check_subjects(self, spec: list[int]) -> list[int]:
        """A list of subject numbers, checked against participants.tsv ("all" is resolved by
        podbench.data.recordings.resolve_subjects)."""
        for sub in spec:
            if sub not in self.subjects:
                raise DataError(f"data.subjects: subject {sub} is not in "
                                f"{self.root / 'participants.tsv'} (has {self.subjects})")
        if len(set(spec)) != len(spec):
            raise DataError(f"data.subjects = {spec}: a subject is listed twice")
        return list(spec)

    def nyu_to_subject(self) -> dict[int, int]:
        return dict(zip(self.participants["nyu_id"].astype(int), self.participants["subject"]))

    def ieeg_dir(self, sub: int) -> Path:
        return self.root / sub_label(sub) / "ieeg"

    def channels_path(self, sub: int) -> Path:
        return self.ieeg_dir(sub) / f"{sub_label(sub)}_task-{TASK}_channels.tsv"

    def sidecar_path(self, sub: int) -> Path:
        """The recording's JSON sidecar (SamplingFrequency, RecordingDuration)."""
        return self.ieeg_dir(sub) / f"{sub_label(sub)}_task-{TASK}_ieeg.json"

    def channels(self, sub: int) -> pd.DataFrame:
        """The subject's channels.tsv (name, type, status, ...)."""
        path = self.channels_path(sub)
        table = read_table(path, ("name", "type", "status"))
        statuses = set(table["status"].dropna())
        if not statuses <= {"good", "bad"}:
            raise DataError(f"{path}: column status has {sorted(statuses - {'good', 'bad'})}; "
                            "expected good or bad")
        table["name"] = table["name"].astype(str)
        return table

    def electrodes(self, sub: int, space: str = MNI_SPACE) -> pd.DataFrame:
        """The subject's electrodes.tsv in `space` (name, x, y, z, size, group)."""
        path = self.ieeg_dir(sub) / f"{sub_label(sub)}_space-{space}_electrodes.tsv"
        table = read_table(path, ("name", "x", "y", "z"))
        table["name"] = table["name"].astype(str)
        return table

    def derivative_path(self, sub: int, signal: str = "highgamma") -> Path:
        """Path of a subject's .fif recording for `data.signal`: the ecogprep derivatives
        (desc-highgamma, or the broadband one) or podbench's recomputed high gamma."""
        from mne_bids import BIDSPath

        if signal == "podbench_highgamma":
            fpath = podbench_highgamma_path(self.root, sub)
            if not fpath.is_file():
                raise DataError(f"missing podbench_highgamma recording of {sub_label(sub)}: "
                                f"{fpath} (run `podbench highgamma --root {self.root}`)")
            return fpath
        path = BIDSPath(root=self.root / "derivatives" / "ecogprep", subject=f"{sub:02d}",
                        task=TASK, datatype="ieeg", suffix="ieeg", extension=".fif",
                        description="highgamma" if signal == "highgamma" else None, check=False)
        if not path.fpath.is_file():
            raise DataError(f"missing {signal} recording of {sub_label(sub)}: {path.fpath}")
        return path.fpath

    def edf_path(self, sub: int) -> Path:
        return self.ieeg_dir(sub) / f"{sub_label(sub)}_task-{TASK}_ieeg.edf"

    @property
    def transcript_path(self) -> Path:
        return self.root / TRANSCRIPT

    @property
    def gpt2_features_path(self) -> Path:
        return self.root / GPT2_FEATURES

    def token_table(self) -> pd.DataFrame:
        """stimuli/gpt2-xl/transcript.tsv: one row per GPT-2 token, in order."""
        table = read_table(self.transcript_path, ("word_idx", "word", "start", "end"), index_col=0)
        for col in ("start", "end"):
            if not pd.api.types.is_numeric_dtype(table[col]) or table[col].isna().any():
                raise DataError(f"{self.transcript_path}: column {col!r} must be numeric and "
                                "complete")
        table["word"] = table["word"].astype(str)
        return table


_OUTER_PUNCT = re.compile(r"^[^\w\s]+|[^\w\s]+$")


def normalise_label(word: str, mode: str) -> str:
    """raw: unchanged; lower: lowercase; strip: lowercase and strip outer punctuation."""
    if mode == "raw":
        return word
    if mode == "lower":
        return word.lower()
    if mode == "strip":
        return _OUTER_PUNCT.sub("", word.lower())
    raise ValueError(f"unknown label normalisation {mode!r}")


_GLOVE_STRIP = re.compile(r"\b[^\w\s]+|[^\w\s]+\b")


def glove_key(word: str) -> str:
    """The reference's GloVe lookup: lowercase, punctuation at word boundaries removed."""
    return _GLOVE_STRIP.sub("", word.lower())


def word_table(dataset: Dataset) -> pd.DataFrame:
    """Words: transcript tokens grouped by word_idx (first word and start, last end).

    Columns word_idx, word (raw transcript text), start, end; one row per word, in time order.
    """
    tokens = dataset.token_table()
    words = (tokens.groupby("word_idx", sort=True)
             .agg(word=("word", "first"), start=("start", "first"), end=("end", "last"))
             .reset_index())
    return words


def channel_coordinates(root: str | Path, channels: list[str]) -> tuple[np.ndarray, list[str]]:
    """MNI x, y, z (mm) of "sub-XX:NAME" channels, float32 [channel, 3], and the channels
    without coordinates (given the mean of their subject's, or the origin if it has none)."""
    dataset = Dataset(root)
    tables: dict[str, dict[str, np.ndarray]] = {}
    out = np.zeros((len(channels), 3), np.float32)
    missing = []
    for i, channel in enumerate(channels):
        sub, name = channel.split(":", 1)
        if sub not in tables:
            table = dataset.electrodes(int(sub[4:]))
            xyz = table[["x", "y", "z"]].to_numpy(np.float64)
            tables[sub] = {n: p for n, p in zip(table["name"], xyz) if np.isfinite(p).all()}
        found = tables[sub].get(name)
        if found is None:
            known = list(tables[sub].values())
            found = np.mean(known, axis=0) if known else np.zeros(3)
            missing.append(channel)
        out[i] = found
    return out, missing
