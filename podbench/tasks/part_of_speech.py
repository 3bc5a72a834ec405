"""part_of_speech: 5 classes (noun, verb, adjective, adverb, other) per word.

The tag of a word is that of content_word (first non-punctuation spaCy token of
`stimuli/syntactic/transcript.tsv`): NN* noun, VB* verb, JJ* adjective, RB* adverb, anything
else other. One logit per class and one softmax inside the cross-entropy (the reference applied
a softmax before its cross-entropy, i.e. two). Metrics over whole splits: one-vs-rest macro
ROC-AUC (headline), macro F1, balanced accuracy, accuracy; `confusion_matrix.csv` in the results
folder (test counts per lag, summed over folds).

`labels_csv`: the reference's labels instead, column pos_class (0 noun, 1 verb, 2 adjective,
3 adverb, 4 other) of its df_word_onset_with_pos_class.csv, matched to the transcript by onset
as for content_word; on the real words its class agrees with the spaCy one for 87.1 % of the
4,990 words both label. `parity: reference` gives the reference's protocol (tasks/common.py),
including the LayerNorm its PITOM puts before the class softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.annotations import syntactic_path, table_word_labels, word_tags
from podbench.data.dataset import Dataset
from podbench.registry import register_task
from podbench.tasks.common import ClassesTask, WordClassParams, task_file, words_and_tags

CLASSES = ("noun", "verb", "adjective", "adverb", "other")
PREFIX_CLASS = {"NN": 0, "VB": 1, "JJ": 2, "RB": 3}


def pos_class(tag: str) -> int:
    """Class index of a Penn Treebank tag (CLASSES order)."""
    return PREFIX_CLASS.get(tag[:2], len(CLASSES) - 1)


@register_task("part_of_speech", params=WordClassParams, dataset_files=words_and_tags)
class PartOfSpeech(ClassesTask):
    """Noun / verb / adjective / adverb / other, from the syntactic transcript (or the
    reference's word table)."""

    class_names = CLASSES
    file_params = ("labels_csv",)

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        if cfg.task_params["labels_csv"]:
            return [dataset.transcript_path, task_file(cfg, "labels_csv")]
        return [dataset.transcript_path, syntactic_path(dataset)]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        if cfg.task_params["labels_csv"]:
            return table_word_labels(
                dataset, task_file(cfg, "labels_csv"), "pos_class", range(len(CLASSES))
            )
        tags = word_tags(dataset)
        value = tags["tag"].map(pos_class).astype(np.float64)
        return tags[["word_idx", "word"]].assign(value=value)
