"""content_word: is a word a content word (noun, verb, adjective, adverb) or a function word?

Tags come from `stimuli/syntactic/transcript.tsv` (spaCy tokens with Penn Treebank tags in
column `pos`; several token rows per word_idx, e.g. "one," -> "one" + ","). A word's tag is the
tag of its first token that is not punctuation (a token without any letter or digit), so
"one," is CD, "didn't" is VBD ("did") and "David's" is NNP ("David"); a word made only of
punctuation takes its first token's tag. Content = tag starting with NN, VB, JJ or RB (so
proper nouns, auxiliaries and comparatives count; WRB, RP, MD do not); everything else is a
function word.

`labels_csv`: the reference's labels instead, its df_word_onset_with_pos_class.csv as it is
(column is_content), matched to the transcript's words by onset (podbench.data.annotations.
table_word_labels); transcript words it does not label are left out, and the build report says
how many. The reference made that table with another tagger: on the real words the two agree
on is_content for 91.3 % of the 4,990 words both label, and 146 transcript words have no row.

Binary head: one logit, BCE on the logit; `class_weight: balanced` weights examples by the
training fold's class frequencies (stored as a second target column per fold).
`parity: reference` gives the reference's protocol (tasks/common.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.annotations import syntactic_path, table_word_labels, word_tags
from podbench.data.dataset import Dataset
from podbench.registry import register_task
from podbench.tasks.common import BinaryTask, WordClassParams, task_file, words_and_tags

CONTENT_PREFIXES = ("NN", "VB", "JJ", "RB")


def is_content_tag(tag: str) -> bool:
    return tag.startswith(CONTENT_PREFIXES)


@register_task("content_word", params=WordClassParams, dataset_files=words_and_tags)
class ContentWord(BinaryTask):
    """Content (NN*, VB*, JJ*, RB*) vs function words, from the syntactic transcript (or the
    reference's word table)."""

    file_params = ("labels_csv",)

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        if cfg.task_params["labels_csv"]:
            return [dataset.transcript_path, task_file(cfg, "labels_csv")]
        return [dataset.transcript_path, syntactic_path(dataset)]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        if cfg.task_params["labels_csv"]:
            return table_word_labels(dataset, task_file(cfg, "labels_csv"), "is_content", range(2))
        tags = word_tags(dataset)
        value = tags["tag"].map(is_content_tag).astype(np.float64)
        return tags[["word_idx", "word"]].assign(value=value)
