"""surprisal and surprisal_class: how unexpected each word was to GPT-2 XL.

A word's surprisal is -log p(word) in nats = the sum over its GPT-2 sub-tokens of
-log(true_prob), from `stimuli/gpt2-xl/transcript.tsv` (one row per token, column true_prob).

- surprisal: regression. Targets standardised with each training fold's mean and sd; squared
  error; Pearson r (headline), R2, MSE; early stopping on the validation MSE, keeping the epoch
  with the lowest one (the reference early-stopped on MSE as if larger were better, so it kept
  the worst epoch).
- surprisal_class: 3 classes, below mu - sigma ("low"), within ("mid"), above mu + sigma
  ("high"), with mu and sigma of the TRAINING fold (targets per fold); one softmax inside the
  cross-entropy; macro ROC-AUC (headline) and macro F1, confusion matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.annotations import word_surprisal
from podbench.data.dataset import Dataset
from podbench.registry import register_task
from podbench.tasks.common import (
    ClassesTask,
    ClassWeightParams,
    RegressionTask,
    balanced_weights,
    the_words,
)


@register_task("surprisal", dataset_files=the_words)
class Surprisal(RegressionTask):
    """GPT-2 XL surprisal of each word (nats), regression."""

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        return word_surprisal(dataset)


def surprisal_classes(values: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """0 below mean - sd, 2 above mean + sd, 1 in between (bounds inclusive)."""
    return np.where(values < mean - sd, 0, np.where(values > mean + sd, 2, 1)).astype(np.float64)


@register_task("surprisal_class", params=ClassWeightParams, dataset_files=the_words)
class SurprisalClass(ClassesTask):
    """Low / mid / high surprisal relative to the training fold's mean and sd."""

    class_names = ("low", "mid", "high")

    def per_fold(self, cfg: Config) -> bool:
        return True

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path]

    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        return word_surprisal(dataset)

    def fold_columns(self, cfg, values, train):
        mean, sd = float(values[train].mean()), float(values[train].std())
        labels = surprisal_classes(values, mean, sd)
        info = {"mean": mean, "sd": sd}
        if cfg.task_params.get("class_weight") == "balanced":
            weights = balanced_weights(labels.astype(np.int64), train, len(self.class_names))
            return np.stack([labels, weights], axis=1), info
        return labels[:, None], info
