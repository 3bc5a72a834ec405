"""part_of_speech: 5 classes (noun, verb, adjective, adverb, other) per word.

The tag of a word is that of content_word (first non-punctuation spaCy token of
`stimuli/syntactic/transcript.tsv`): NN* noun, VB* verb, JJ* adjective, RB* adverb, anything
else other. One logit per class and one softmax inside the cross-entropy (the reference applied
a softmax before its cross-entropy, i.e. two). Metrics over whole splits: one-vs-rest macro
ROC-AUC (headline), macro F1, balanced accuracy, accuracy; `confusion_matrix.csv` in the results
folder (test counts per lag, summed over folds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.dataset import Dataset
from podbench.registry import register_task
from podbench.tasks.common import ClassesTask, ClassWeightParams
from podbench.data.annotations import syntactic_path, word_tags

CLASSES = ("noun", "verb", "adjective", "adverb", "other")
PREFIX_CLASS = {"NN": 0, "VB": 1, "JJ": 2, "RB": 3}


def pos_class(tag: str) -> int:
    """Class index of a Penn Treebank tag (CLASSES order)."""
    return PREFIX_CLASS.get(tag[:2], len(CLASSES) - 1)


@register_task("part_of_speech", params=ClassWeightParams)
class PartOfSpeech(ClassesTask):
    """Noun / verb / adjective / adverb / other, from the syntactic transcript."""

    class_names = CLASSES

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path, syntactic_path(dataset)]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        tags = word_tags(dataset)
        value = tags["tag"].map(pos_class).astype(np.float64)
        return tags[["word_idx", "word"]].assign(value=value)
