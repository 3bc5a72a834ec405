"""content_word: is a word a content word (noun, verb, adjective, adverb) or a function word?

Tags come from `stimuli/syntactic/transcript.tsv` (spaCy tokens with Penn Treebank tags in
column `pos`; several token rows per word_idx, e.g. "one," -> "one" + ","). A word's tag is the
tag of its first token that is not punctuation (a token without any letter or digit), so
"one," is CD, "didn't" is VBD ("did") and "David's" is NNP ("David"); a word made only of
punctuation takes its first token's tag. Content = tag starting with NN, VB, JJ or RB (so
proper nouns, auxiliaries and comparatives count; WRB, RP, MD do not); everything else is a
function word.

Binary head: one logit, BCE on the logit; `class_weight: balanced` weights examples by the
training fold's class frequencies (stored as a second target column per fold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.dataset import Dataset, read_table, word_table
from podbench.errors import DataError
from podbench.registry import register_task
from podbench.train.tasks.common import BinaryTask, ClassWeightParams

SYNTACTIC = Path("stimuli/syntactic/transcript.tsv")
CONTENT_PREFIXES = ("NN", "VB", "JJ", "RB")


def syntactic_path(dataset: Dataset) -> Path:
    return dataset.root / SYNTACTIC


def is_punctuation(token: str) -> bool:
    return not any(ch.isalnum() for ch in token)


def word_tags(dataset: Dataset) -> pd.DataFrame:
    """One row per word of the syntactic transcript: word_idx, word, token, tag.

    The tag is that of the word's first non-punctuation token. The words must be those of
    the GPT-2 transcript with the same word_idx (checked).
    """
    path = syntactic_path(dataset)
    tokens = read_table(path, ("word_idx", "word", "token", "pos"), index_col=0,
                        dtype={"word": str, "token": str, "pos": str})
    tokens["token"] = tokens["token"].fillna("").astype(str)
    tokens["punct"] = tokens["token"].map(is_punctuation)
    # first non-punctuation token per word; a word with none keeps its first token
    order = tokens.assign(_rank=tokens["punct"].astype(int)).reset_index(drop=True)
    order["_row"] = np.arange(len(order))
    first = (order.sort_values(["word_idx", "_rank", "_row"], kind="stable")
             .groupby("word_idx", sort=True).first().reset_index())
    words = word_table(dataset).set_index("word_idx")
    missing = np.setdiff1d(first["word_idx"], words.index)
    first = first[~first["word_idx"].isin(missing)]
    text = words.loc[first["word_idx"], "word"].to_numpy()
    differ = np.flatnonzero(first["word"].astype(str).to_numpy() != text)
    if len(differ):
        i = differ[0]
        raise DataError(f"{path}: word_idx {int(first['word_idx'].iloc[i])} is "
                        f"{first['word'].iloc[i]!r} but {dataset.transcript_path} has {text[i]!r}")
    out = pd.DataFrame({"word_idx": first["word_idx"].to_numpy().astype(np.int64),
                        "word": text.astype(str), "token": first["token"].to_numpy(),
                        "tag": first["pos"].fillna("").astype(str).to_numpy()})
    return out


def is_content_tag(tag: str) -> bool:
    return tag.startswith(CONTENT_PREFIXES)


@register_task("content_word", params=ClassWeightParams)
class ContentWord(BinaryTask):
    """Content (NN*, VB*, JJ*, RB*) vs function words, from the syntactic transcript."""

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path, syntactic_path(dataset)]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        tags = word_tags(dataset)
        value = tags["tag"].map(is_content_tag).astype(np.float64)
        return tags[["word_idx", "word"]].assign(value=value)
