"""sentence_onset: is a moment a sentence onset (1) or a point inside a sentence (0)?

Sentences (from the transcript's words, in word_idx order):
- `boundaries: punctuation`: a word ending in ".", "?" or "!" (closing quotes and brackets
  ignored) ends a sentence; the next word starts one; the first word starts one.
- `boundaries: capitals` (default): the punctuation rule, plus every capitalised word that is
  not a proper noun and not the pronoun "I" starts a sentence (its first non-punctuation spaCy
  token of `stimuli/syntactic/transcript.tsv` starts with an upper-case letter, is not tagged
  NNP/NNPS and is not "I"). The ds005574 transcripts keep almost no sentence punctuation (two
  words end in "."), so the punctuation rule alone finds 3 sentences in 30 minutes; the
  capitals rule finds 374; only 294 of them start within 50 ms of one of the 366 sentences of
  the reference's table (and 293 of those have a podbench onset within 50 ms).
- `sentences_csv`: a table of sentences in seconds, columns sentence_onset, sentence_offset
  (the reference's processed_data/all_sentences_podcast.csv as it is), onset, offset, or
  start, end; it replaces the rules above. On the real data it is the parity choice.

A sentence runs from its first word's start to the latest end of its words. Events:
- positives: every sentence onset (label "onset");
- negatives (label "inside"): `negatives_per_positive` x the number of positives, drawn
  uniformly over the union of the allowed intervals [onset + margin, end - margin] of all
  sentences (end capped at the next sentence's onset) minus `margin` around every sentence
  onset (word onsets are not always in order), by rejection sampling; deterministic from
  `seed`. Sentences shorter than 2 x margin get none.
- `parity: reference`: the reference's negatives instead: `negatives_per_positive` per sentence
  whose interval [onset + margin, offset - data.window_width - 1 ms] is not empty, uniform in
  it, drawn sentence after sentence from one generator seeded with `seed` (fewer negatives
  than the default: 525 instead of 660 for the 132 sentences of the 600-s stand-in, 1,410
  instead of 1,830 for the 366 of the reference's table of the real data); early stopping on
  the mean over validation batches of the weighted F1 (the reference's `f1`); see also
  tasks/common.py.

Events are numbered 0, 1, ... in time order (word_idx) and windows are cut around them like
word windows. These parameters define the epochs (the events), so `seed` is the task's own,
not training.seed: training seeds never rebuild epochs. Binary head (BCE on one logit),
ROC-AUC (headline), F1, balanced accuracy; `class_weight: balanced` offsets the 1:5 prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from podbench.config import Config, opt
from podbench.data.annotations import is_punctuation, syntactic_path, word_tags
from podbench.data.dataset import (
    SYNTACTIC,
    TRANSCRIPT,
    Dataset,
    read_table,
    seconds_column,
    word_table,
)
from podbench.errors import DataError
from podbench.registry import register_task
from podbench.tasks.common import PARITY_DOC, BinaryTask, EventTargetsKeying, task_file
from podbench.tasks.negatives import draw_inside, numbered_events

if TYPE_CHECKING:
    import jax

SENTENCE_END = (".", "?", "!")
CLOSERS = "\"')]}”’"


@dataclass
class SentenceOnsetParams:
    negatives_per_positive: int = opt(5, ge=1, doc="negatives drawn per sentence onset")
    margin: float = opt(
        0.75, ge=0, doc="negatives lie at least this far (s) from a sentence's onset and end"
    )
    seed: int = opt(0, ge=0, doc="seed of the negative draws (the task's own: it defines epochs)")
    boundaries: Literal["capitals", "punctuation"] = opt(
        "capitals", doc="sentence starts: punctuation only, or also capitalised non-proper words"
    )
    sentences_csv: str | None = opt(
        None,
        doc="CSV of sentences (sentence_onset, sentence_offset, or onset, offset, s), "
        "e.g. the reference's all_sentences_podcast.csv; replaces the transcript rules",
    )
    class_weight: Literal["none", "balanced"] = opt(
        "none", doc="balanced: weight the loss by the training fold's class frequencies"
    )
    parity: Literal["podbench", "reference"] = opt("podbench", doc=PARITY_DOC)


SENTENCE_COLUMNS = (("sentence_onset", "sentence_offset"), ("onset", "offset"), ("start", "end"))


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
        path = task_file(cfg, "sentences_csv")
        table = read_table(path, (), sep=",")
        cols = [c for c in SENTENCE_COLUMNS if set(c) <= set(table.columns)]
        if not cols:
            raise DataError(
                f"{path}: expected columns sentence_onset, sentence_offset (or "
                f"onset, offset, or start, end) in seconds; found "
                f"{list(table.columns)}"
            )
        a, b = cols[0]
        out = pd.DataFrame(
            {"onset": seconds_column(table, a, path), "end": seconds_column(table, b, path)}
        )
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
    return pd.DataFrame(
        {"onset": words["start"].to_numpy()[first], "end": end, "first_word_idx": idx[first]}
    )


def sentence_events(cfg: Config, dataset: Dataset) -> pd.DataFrame:
    """Onsets and inside points, numbered in time order (see the module docstring)."""
    p = cfg.task_params
    sent = sentences(cfg, dataset)
    onset = sent["onset"].to_numpy(dtype=np.float64)
    end = sent["end"].to_numpy(dtype=np.float64)
    if p["parity"] == "reference":
        t_neg, which = reference_negatives(
            onset, end, p["negatives_per_positive"], p["margin"], cfg.data.window_width, p["seed"]
        )
    else:
        next_onset = np.r_[onset[1:], np.inf]
        lo = onset + p["margin"]
        hi = np.minimum(end, next_onset) - p["margin"]
        try:
            t_neg, which = draw_inside(
                lo,
                hi,
                onset,
                p["negatives_per_positive"] * len(onset),
                p["margin"],
                p["seed"],
                "sentence onset",
            )
        except DataError as exc:
            raise DataError(f"{dataset.root}: {exc}") from None
    n_neg = len(t_neg)
    events = pd.DataFrame(
        {
            "start": np.r_[onset, t_neg],
            "end": np.r_[end, end[which]],
            "word": ["onset"] * len(onset) + ["inside"] * n_neg,
            "sentence": np.r_[np.arange(len(onset)), which],
        }
    )
    return numbered_events(events)


def reference_negatives(
    onset: np.ndarray, end: np.ndarray, per_sentence: int, margin: float, window: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's negatives: `per_sentence` uniform draws in [onset + margin, end -
    window - 1 ms] for each sentence where that interval is not empty, sentence after sentence
    from one generator. Returns (times, sentence index of each), sorted by time."""
    rng = np.random.default_rng(seed)
    lo = onset + margin
    hi = np.maximum(lo, end - window - 1e-3)
    has_room = np.flatnonzero(hi > lo)
    if len(has_room) == 0:
        raise DataError(
            f"no sentence is longer than task_params.margin + data.window_width + "
            f"1 ms = {margin + window + 1e-3:g} s: no room for negatives"
        )
    times = np.concatenate([rng.uniform(lo[k], hi[k], per_sentence) for k in has_room])
    which = np.repeat(has_room, per_sentence)
    keep = np.argsort(times, kind="stable")
    return times[keep], which[keep]


def sentence_files(cfg: Config) -> list[str]:
    """The dataset files sentence_onset reads: the words, and the spaCy tags with
    `boundaries: capitals` (unless sentences_csv gives the sentences)."""
    p = cfg.task_params
    capitals = p["boundaries"] == "capitals" and not p["sentences_csv"]
    return [TRANSCRIPT, SYNTACTIC] if capitals else [TRANSCRIPT]


class SentenceOnsetKeying(EventTargetsKeying):
    """Its events by the parameters that draw them (all but the class weights)."""

    def events(self, cfg: Config) -> dict:
        p = self.params(cfg)
        p.pop("class_weight")
        return {"kind": "sentence_onset", **p}


@register_task("sentence_onset", params=SentenceOnsetParams, dataset_files=sentence_files)
class SentenceOnset(BinaryTask):
    """Sentence onsets vs points inside sentences, windows centred on each."""

    word_events = False
    file_params = ("sentences_csv",)
    keying_class = SentenceOnsetKeying

    def reference_stop(self, pred: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
        from podbench.tasks.scoring import weighted_f1

        return weighted_f1(pred[:, 0], y[:, 0], mask)

    def events(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        return sentence_events(cfg, dataset)[["word_idx", "word", "start", "end"]]

    def event_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        if cfg.task_params["sentences_csv"]:
            return [task_file(cfg, "sentences_csv")]
        extra = [syntactic_path(dataset)] if cfg.task_params["boundaries"] == "capitals" else []
        return [dataset.transcript_path, *extra]

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return self.event_sources(cfg, dataset)

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        events = self.events(cfg, dataset)
        return events[["word_idx", "word"]].assign(
            value=(events["word"] == "onset").astype(np.float64)
        )
