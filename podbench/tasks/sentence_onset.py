"""sentence_onset: is a moment a sentence onset (1) or a point inside a sentence (0)?

Sentences (from the transcript's words, in word_idx order):
- `boundaries: punctuation`: a word ending in ".", "?" or "!" (closing quotes and brackets
  ignored) ends a sentence; the next word starts one; the first word starts one.
- `boundaries: capitals` (default): the punctuation rule, plus every capitalised word that is
  not a proper noun and not the pronoun "I" starts a sentence (its first non-punctuation spaCy
  token of `stimuli/syntactic/transcript.tsv` starts with an upper-case letter, is not tagged
  NNP/NNPS and is not "I"). The ds005574 transcripts keep almost no sentence punctuation (two
  words end in "."), so the punctuation rule alone finds 3 sentences in 30 minutes; the
  capitals rule finds 373, close to the 366 of the reference's sentence table.
- `sentences_csv`: a table of sentences (columns onset, offset in seconds, or start, end),
  e.g. the reference's processed_data/all_sentences_podcast.csv; it replaces the rules above.

A sentence runs from its first word's start to the latest end of its words. Events:
- positives: every sentence onset (label "onset");
- negatives (label "inside"): `negatives_per_positive` x the number of positives, drawn
  uniformly over the union of the allowed intervals [onset + margin, end - margin] of all
  sentences (end capped at the next sentence's onset) minus `margin` around every sentence
  onset (word onsets are not always in order), by rejection sampling; deterministic from
  `seed`. Sentences shorter than 2 x margin get none.
  (The reference drew 5 per sentence, in [onset + margin, offset - window - 1 ms].)

Events are numbered 0, 1, ... in time order (word_idx) and windows are cut around them like
word windows. These parameters define the epochs (the events), so `seed` is the task's own,
not training.seed: training seeds never rebuild epochs. Binary head (BCE on one logit),
ROC-AUC (headline), F1, balanced accuracy; `class_weight: balanced` offsets the 1:5 prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from podbench.config import Config, opt
from podbench.data.dataset import Dataset, read_table, word_table
from podbench.errors import ConfigError, DataError
from podbench.registry import register_task
from podbench.tasks.common import BinaryTask
from podbench.tasks.negatives import draw_inside, numbered_events
from podbench.data.annotations import is_punctuation, syntactic_path, word_tags

SENTENCE_END = (".", "?", "!")
CLOSERS = "\"')]}”’"


@dataclass
class SentenceOnsetParams:
    negatives_per_positive: int = opt(5, ge=1, doc="negatives drawn per sentence onset")
    margin: float = opt(0.75, ge=0, doc="negatives lie at least this far (s) from a sentence's "
                                        "onset and end")
    seed: int = opt(0, ge=0, doc="seed of the negative draws (the task's own: it defines epochs)")
    boundaries: Literal["capitals", "punctuation"] = opt(
        "capitals", doc="sentence starts: punctuation only, or also capitalised non-proper words")
    sentences_csv: str | None = opt(
        None, doc="CSV of sentences (onset, offset s); replaces the transcript rules")
    class_weight: Literal["none", "balanced"] = opt(
        "none", doc="balanced: weight the loss by the training fold's class frequencies")


def ends_sentence(word: str) -> bool:
    return word.rstrip(CLOSERS).endswith(SENTENCE_END)


def capitalised_starts(dataset: Dataset, word_idx: np.ndarray) -> np.ndarray:
    """Mask over word_idx of capitalised words that are not proper nouns and not "I"."""
    tags = word_tags(dataset).set_index("word_idx")
    tags = tags.reindex(word_idx)
    token = tags["token"].fillna("").astype(str)
    tag = tags["tag"].fillna("").astype(str)
    upper = token.map(lambda t: bool(t) and t[0].isupper() and not is_punctuation(t))
    return (upper & ~tag.isin(["NNP", "NNPS"]) & (token != "I")).to_numpy()


def sentences(cfg: Config, dataset: Dataset) -> pd.DataFrame:
    """Sentences in time order: columns onset, end (s)."""
    p = cfg.task_params
    if p["sentences_csv"]:
        path = Path(p["sentences_csv"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"task_params.sentences_csv = {p['sentences_csv']!r}: no such file")
        table = read_table(path, (), sep=",")
        cols = [c for c in (("onset", "offset"), ("start", "end")) if set(c) <= set(table.columns)]
        if not cols:
            raise DataError(f"{path}: expected columns onset, offset (or start, end) in seconds; "
                            f"found {list(table.columns)}")
        a, b = cols[0]
        out = pd.DataFrame({"onset": table[a].astype(float), "end": table[b].astype(float)})
        return out.sort_values("onset", kind="stable").reset_index(drop=True)
    words = word_table(dataset)
    idx = words["word_idx"].to_numpy()
    start = np.zeros(len(words), bool)
    start[0] = True
    ends = words["word"].astype(str).map(ends_sentence).to_numpy()
    start[1:] |= ends[:-1]
    if p["boundaries"] == "capitals":
        start |= capitalised_starts(dataset, idx)
    first = np.flatnonzero(start)
    group = np.cumsum(start) - 1
    end = pd.Series(words["end"].to_numpy()).groupby(group).max().to_numpy()
    return pd.DataFrame({"onset": words["start"].to_numpy()[first], "end": end,
                         "first_word_idx": idx[first]})


def sentence_events(cfg: Config, dataset: Dataset) -> pd.DataFrame:
    """Onsets and inside points, numbered in time order (see the module docstring)."""
    p = cfg.task_params
    sent = sentences(cfg, dataset)
    onset = sent["onset"].to_numpy(dtype=np.float64)
    end = sent["end"].to_numpy(dtype=np.float64)
    next_onset = np.r_[onset[1:], np.inf]
    lo = onset + p["margin"]
    hi = np.minimum(end, next_onset) - p["margin"]
    n_neg = p["negatives_per_positive"] * len(onset)
    try:
        t_neg, which = draw_inside(lo, hi, onset, n_neg, p["margin"], p["seed"],
                                   "sentence onset")
    except DataError as exc:
        raise DataError(f"{dataset.root}: {exc}") from None
    events = pd.DataFrame({
        "start": np.r_[onset, t_neg],
        "end": np.r_[end, end[which]],
        "word": ["onset"] * len(onset) + ["inside"] * n_neg,
        "sentence": np.r_[np.arange(len(onset)), which],
    })
    return numbered_events(events)


@register_task("sentence_onset", params=SentenceOnsetParams)
class SentenceOnset(BinaryTask):
    """Sentence onsets vs points inside sentences, windows centred on each."""

    word_events = False

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        csv = cfg.task_params["sentences_csv"]
        if csv and not Path(csv).expanduser().is_file():
            raise ConfigError(f"task_params.sentences_csv = {csv!r}: no such file")

    def events(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        return sentence_events(cfg, dataset)[["word_idx", "word", "start", "end"]]

    def events_fragment(self, cfg: Config) -> dict:
        p = dict(cfg.task_params)
        p.pop("class_weight")
        if p["sentences_csv"]:
            from podbench.data.recordings import file_digest

            p["sentences_csv"] = {"sha256": file_digest(Path(p["sentences_csv"]).expanduser())}
        return {"kind": "sentence_onset", **p}

    def event_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        if cfg.task_params["sentences_csv"]:
            return [Path(cfg.task_params["sentences_csv"]).expanduser()]
        extra = [syntactic_path(dataset)] if cfg.task_params["boundaries"] == "capitals" else []
        return [dataset.transcript_path, *extra]

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return self.event_sources(cfg, dataset)

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        events = self.events(cfg, dataset)
        return events[["word_idx", "word"]].assign(
            value=(events["word"] == "onset").astype(np.float64))
