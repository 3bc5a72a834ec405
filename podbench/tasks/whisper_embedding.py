"""whisper_embedding: decode each word's Whisper-medium vector; scored as word embeddings.

The vectors are `stimuli/whisper-medium/features.hdf5` (dataset `vectors`, one row per row of
`stimuli/whisper-medium/transcript.tsv`). That transcript numbers its words with the GPT-2
transcript's word_idx (same word text; it lacks 2 of the 5,136 words, word_idx 1561 and 4314
in ds005574, and a few onsets differ by tens of ms), so rows join the GPT-2 words on word_idx;
words without a vector are dropped (listed in the targets store's `dropped_words`). Onsets, as
for every word task, are the GPT-2 transcript's, so this task shares the word epochs.

Everything else is the word-embedding task (a subclass): PCA (`targets.pca_dim`, `pca_fit`
all | train), MSE or cosine loss, early stopping on validation cosine, cosine / pairwise /
nll split metrics and the reference's word-level AUC and top-k. The headline is the test
pairwise accuracy (the reference's Whisper number; `podbench multimodal` combines it with a
word run's). The source is also registered as `targets.kind: whisper` for `word_embedding`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config
from podbench.data.dataset import WHISPER_FEATURES, WHISPER_TRANSCRIPT, Dataset, read_table
from podbench.errors import DataError
from podbench.registry import register_target_source, register_task
from podbench.tasks.sources import SourceResult
from podbench.tasks.word_embedding import WordEmbedding, source_files

WHISPER_DATASET = "vectors"


def whisper_paths(dataset: Dataset) -> tuple[Path, Path]:
    return dataset.root / WHISPER_TRANSCRIPT, dataset.root / WHISPER_FEATURES


@register_target_source(
    "whisper",
    fields=(),
    sources=lambda cfg, ds: [ds.transcript_path, *whisper_paths(ds)],
    dataset_files=(WHISPER_TRANSCRIPT, WHISPER_FEATURES),
)
def whisper(cfg: Config, dataset: Dataset, words: pd.DataFrame) -> SourceResult:
    """Whisper-medium word vectors joined to the GPT-2 words on word_idx."""
    import h5py

    transcript, features = whisper_paths(dataset)
    rows = read_table(transcript, ("word_idx", "word"), index_col=0, dtype={"word": str})
    if not features.is_file():
        raise DataError(f"missing file: {features}")
    with h5py.File(features, "r") as f:
        if WHISPER_DATASET not in f:
            raise DataError(
                f"{features}: no dataset {WHISPER_DATASET!r}; it has {sorted(f.keys())}"
            )
        vectors = f[WHISPER_DATASET][()]
    if vectors.ndim != 2 or vectors.shape[0] != len(rows):
        raise DataError(
            f"{features}: {WHISPER_DATASET} has shape {vectors.shape} but {transcript} "
            f"has {len(rows)} rows (expected one vector per row)"
        )
    word_idx = rows["word_idx"].to_numpy().astype(np.int64)
    if len(np.unique(word_idx)) != len(word_idx):
        raise DataError(f"{transcript}: word_idx is not unique")
    by_idx = words.set_index("word_idx")["word"]
    known = np.isin(word_idx, by_idx.index)
    text = rows["word"].astype(str).to_numpy()[known]
    differ = np.flatnonzero(text != by_idx.loc[word_idx[known]].to_numpy())
    if len(differ):
        i = differ[0]
        raise DataError(
            f"{transcript}: word_idx {word_idx[known][i]} is {text[i]!r} but "
            f"{dataset.transcript_path} has {by_idx.loc[word_idx[known][i]]!r}"
        )
    dropped = np.setdiff1d(words["word_idx"].to_numpy(), word_idx[known]).astype(int).tolist()
    return SourceResult(
        word_idx[known],
        vectors[known].astype(np.float32),
        dropped=dropped,
        info={"whisper_dataset": WHISPER_DATASET, "whisper_source_dim": int(vectors.shape[1])},
    )


@register_task("whisper_embedding", dataset_files=lambda cfg: source_files("whisper"))
class WhisperEmbedding(WordEmbedding):
    """Whisper-medium word vectors (PCA as for GPT-2); word-embedding metrics."""

    headline = "test_pairwise_accuracy"

    def source(self, cfg: Config):
        """Always the Whisper vectors (targets.kind is not read)."""
        return registry.target_sources.entry("whisper")

    def describe(self, cfg: Config) -> str:
        return "whisper"
