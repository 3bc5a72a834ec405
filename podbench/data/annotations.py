"""Word annotations of the dataset's stimuli: spaCy tags of the syntactic transcript and GPT-2
XL surprisal of the GPT-2 transcript (one row per word, joined on word_idx); and the reference's
word table (processed_data/df_word_onset_with_pos_class.csv of hassonlab/podcast-benchmark),
matched to the transcript's words by onset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.data.dataset import SYNTACTIC, Dataset, read_table, word_table
from podbench.errors import DataError

ONSET_TOLERANCE = 1e-3  # s: a table word matches the transcript word starting this close


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



def word_surprisal(dataset: Dataset) -> pd.DataFrame:
    """word_idx, word (first token row's word), value = sum over tokens of -log(true_prob)."""
    tokens = dataset.token_table()
    path = dataset.transcript_path
    if "true_prob" not in tokens.columns:
        raise DataError(f"{path}: no column 'true_prob' (GPT-2 probability of each token)")
    prob = pd.to_numeric(tokens["true_prob"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(prob) & (prob > 0) & (prob <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: true_prob of token row {tokens.index[i]} is "
                        f"{tokens['true_prob'].iloc[i]!r}; expected a probability in (0, 1]")
    table = (tokens.assign(surprisal=-np.log(prob))
             .groupby("word_idx", sort=True)
             .agg(word=("word", "first"), value=("surprisal", "sum")).reset_index())
    return table


def table_word_labels(dataset: Dataset, path: Path, column: str,
                      values: range) -> pd.DataFrame:
    """One row per transcript word that the reference's word table (columns onset and
    `column`, an integer in `values`) labels: word_idx, word (the transcript's), value.

    A table row labels the transcript word whose start is within ONSET_TOLERANCE of its
    onset (the table's words are the reference's own tokens, not always the transcript's
    text). The returned frame's attrs["note"] says in one line how many words matched, how
    many transcript words have no label and how many table rows match no transcript word.
    """
    from podbench.data.dataset import seconds_column

    table = read_table(path, ("onset", column), sep=",")
    onset = seconds_column(table, "onset", path)
    label = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isin(label, list(values)))
    if len(bad):
        found = table[column].astype(str).iloc[bad[0]]
        raise DataError(f"{path}: column {column} row {bad[0] + 2} is {found!r}, expected one "
                        f"of {list(values)}")
    words = word_table(dataset)
    start = words["start"].to_numpy(dtype=np.float64)
    right = np.clip(np.searchsorted(start, onset), 1, len(start) - 1)
    nearest = np.where(np.abs(start[right - 1] - onset) <= np.abs(start[right] - onset),
                       right - 1, right)
    matched = np.abs(start[nearest] - onset) <= ONSET_TOLERANCE
    rows = np.flatnonzero(matched)
    rows = rows[np.unique(nearest[rows], return_index=True)[1]]  # a word labelled twice: first row
    out = pd.DataFrame({"word_idx": words["word_idx"].to_numpy()[nearest[rows]].astype(np.int64),
                        "word": words["word"].astype(str).to_numpy()[nearest[rows]],
                        "value": label[rows]})
    out.attrs["note"] = (f"{path.name}: {len(rows)} of {len(table)} table words matched by "
                         f"onset; {len(words) - len(rows)} transcript words without a label, "
                         f"{len(table) - len(rows)} table words at no transcript word's onset")
    return out
