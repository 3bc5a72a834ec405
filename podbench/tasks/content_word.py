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
from podbench.data.annotations import syntactic_path, word_tags
from podbench.data.dataset import Dataset
from podbench.registry import register_task
from podbench.tasks.common import BinaryTask, ClassWeightParams

CONTENT_PREFIXES = ("NN", "VB", "JJ", "RB")


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
