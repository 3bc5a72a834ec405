"""Shared machinery of the scalar, binary and class tasks.

Such a task has one number per event (a word, or a task event such as a sentence onset): a
value to regress, a 0/1 label or a class index. `EventTargetsTask` writes it to the targets
store as `target` (word, dim) or, when something is fitted on training data (a standardisation,
class thresholds, class weights), as (fold, word, dim) with one slice per training fold, made
over exactly the words and folds the trainer will use (as `pca_fit: train` does for
embeddings). A subclass says where the values come from (`values`) and, if needed, how a
training fold turns them into target columns (`fold_columns`).

Target columns: column 0 is the value, label or class index (stored as a float, cast inside
the loss); an optional column 1 is the example's weight in the loss (class weights). Metrics
read column 0 only.

Heads and losses (JAX, per example; the trainer averages over valid rows):
- binary: one logit, binary cross-entropy on the logit (never on a probability),
- classes: one logit per class, one softmax inside the cross-entropy (never two),
- scalar: the value itself, squared error on targets standardised with the training fold's
  mean and sd.
Early stopping runs on the whole validation split: ROC-AUC (binary), macro one-vs-rest
ROC-AUC (classes), both "max"; mean squared error (scalar), "min".
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, opt
from podbench.data.dataset import Dataset
from podbench.errors import ConfigError
from podbench.tasks.folds import folds_fragment
from podbench.tasks import metrics
from podbench.tasks.folds import folds_for
from podbench.tasks.base import Task


@dataclass
class ClassWeightParams:
    """Parameters of the classification tasks."""

    class_weight: Literal["none", "balanced"] = opt(
        "none", doc="weight examples in the loss by n / (n_classes * n_class), counted on "
                    "each training fold (sklearn's 'balanced'); none: every example 1")


class EventTargetsTask(Task):
    """A task with one target number per event; targets fitted per training fold if needed."""

    word_events = True  # events are the transcript's words (False: the task's own events)

    def validate(self, cfg: Config) -> None:
        if cfg.training.loss != "mse":
            raise ConfigError(f"training.loss = {cfg.training.loss!r}: task {cfg.task!r} has its "
                              "own loss; training.loss applies to embedding tasks only")
        if not self.word_events and cfg.training.fold_type == "zero_shot":
            raise ConfigError(f"training.fold_type = 'zero_shot': task {cfg.task!r} has no word "
                              "types to fold over; use sequential")
        meta = registry.models.entry(cfg.model.name, "model.name").meta
        if meta.get("closed_form", False) and not meta.get("classifier", False) \
                and self.head == "classes":
            raise ConfigError(f"model.name = {cfg.model.name!r}: a closed-form regression cannot "
                              f"give task {cfg.task!r} one logit per class; use linear (logistic "
                              "regression) or a trained model (pitom, mlp)")

    def describe(self, cfg: Config) -> str:
        return cfg.task

    def program_key(self, cfg: Config) -> dict:
        """Plus the classes and whether a weight column follows the label."""
        return {**super().program_key(cfg), "classes": list(getattr(self, "class_names", ())),
                "class_weight": cfg.task_params.get("class_weight", "none")}

    # ---------------------------------------------------------------- what subclasses give

    @abstractmethod
    def values(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        """One row per event: word_idx (event id), word (label), value."""
        raise NotImplementedError

    def per_fold(self, cfg: Config) -> bool:
        """Whether the targets are fitted on each training fold."""
        return cfg.task_params.get("class_weight", "none") == "balanced"

    def columns(self, cfg: Config, values: np.ndarray) -> np.ndarray:
        """Target columns [N, D] when nothing is fitted."""
        return values[:, None]

    def fold_columns(self, cfg: Config, values: np.ndarray,
                     train: np.ndarray) -> tuple[np.ndarray, dict]:
        """Target columns [N, D] fitted on the training rows `train`, and what was fitted."""
        return self.columns(cfg, values), {}

    # ---------------------------------------------------------------- the targets store

    def targets_fragment(self, cfg: Config, dataset: Dataset) -> tuple[dict, bool]:
        frag = {"task": cfg.task, "params": cfg.task_params}
        per_fold = self.per_fold(cfg)
        if per_fold:
            frag["folds"] = folds_fragment(cfg)
            frag["label_normalisation"] = cfg.data.label_normalisation
        return frag, per_fold

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_words):
        import xarray as xr

        from podbench.tasks.word_embedding import fold_rows

        table = self.values(cfg, dataset)
        word_idx = table["word_idx"].to_numpy().astype(np.int64)
        words = table["word"].astype(str).to_numpy()
        values = table["value"].to_numpy(dtype=np.float64)
        attrs: dict = {"n_events": len(table)}
        if self.per_fold(cfg):
            rows, labels = fold_rows(cfg, word_idx, words, epoch_words)
            slices, fitted = [], []
            for fold in folds_for(cfg, labels):
                cols, info = self.fold_columns(cfg, values, rows[fold.train])
                slices.append(cols)
                fitted.append(info)
            target = (("fold", "word", "dim"), np.stack(slices).astype(np.float32))
            attrs["fitted_per_fold"] = fitted
        else:
            target = (("word", "dim"), self.columns(cfg, values).astype(np.float32))
        ds = xr.Dataset({"target": target},
                        coords={"word": word_idx, "label": ("word", words.astype(object))})
        return ds, attrs


def _weights(y):
    return y[:, 1] if y.shape[-1] > 1 else 1.0


def balanced_weights(labels: np.ndarray, train: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example weights n / (n_present_classes * n_c) from the training rows' class counts
    (sklearn compute_class_weight('balanced')); a class absent from training gets 1."""
    counts = np.bincount(labels[train], minlength=n_classes).astype(np.float64)
    present = counts > 0
    weight = np.ones(n_classes)
    weight[present] = len(train) / (present.sum() * counts[present])
    return weight[labels]


# -------------------------------------------------------------------- task kinds

class BinaryTask(EventTargetsTask):
    """Binary targets: one logit, BCE on the logit; ROC-AUC, F1, balanced accuracy."""

    head = "binary"
    stop_mode = "max"
    split_metric_names = ("bce", "roc_auc", "f1", "balanced_accuracy")
    headline = "test_roc_auc"
    chance = 0.5

    def fold_columns(self, cfg, values, train):
        labels = np.rint(values).astype(np.int64)
        weights = balanced_weights(labels, train, 2)
        return np.stack([values, weights], axis=1), {
            "positive_weight": float(weights[labels == 1][0]) if (labels == 1).any() else 1.0,
            "negative_weight": float(weights[labels == 0][0]) if (labels == 0).any() else 1.0}

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        return 1

    def loss(self, pred, y, cfg: Config):
        import optax

        return optax.sigmoid_binary_cross_entropy(pred[:, 0], y[:, 0]) * _weights(y)

    def stop_value(self, pred, y, mask):
        from podbench.tasks.scoring import masked_auc

        return masked_auc(pred[:, 0], y[:, 0], mask)

    def extra_results(self, cfg, test):
        """confusion_matrix.csv as for class tasks: a logit > 0 predicts "positive"."""
        as_two = [(lag, fold, np.concatenate([np.zeros_like(pred[:, :1]), pred[:, :1]], axis=1), y)
                  for lag, fold, pred, y in test]
        return {"confusion_matrix.csv": confusion_table(as_two, ("negative", "positive"))}

    def ensemble(self, member_preds: np.ndarray) -> np.ndarray:
        """The logit of the members' mean probability (one member: its logit)."""
        if len(member_preds) == 1:
            return member_preds[0]
        from scipy.special import log_expit, logsumexp

        x = member_preds.astype(np.float64)
        log_p = logsumexp(log_expit(x), axis=0)
        log_q = logsumexp(log_expit(-x), axis=0)
        return (log_p - log_q).astype(member_preds.dtype)


class ClassesTask(EventTargetsTask):
    """k classes: one logit per class, softmax cross-entropy; macro AUC and F1, confusion."""

    head = "classes"
    stop_mode = "max"
    split_metric_names = ("cross_entropy", "macro_roc_auc", "macro_f1", "balanced_accuracy",
                          "accuracy")
    headline = "test_macro_roc_auc"
    chance = 0.5
    class_names: tuple[str, ...] = ()

    def fold_columns(self, cfg, values, train):
        labels = np.rint(values).astype(np.int64)
        weights = balanced_weights(labels, train, len(self.class_names))
        per_class = {name: float(weights[labels == c][0]) if (labels == c).any() else 1.0
                     for c, name in enumerate(self.class_names)}
        return np.stack([values, weights], axis=1), {"class_weights": per_class}

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        return len(self.class_names)

    def loss(self, pred, y, cfg: Config):
        import optax

        labels = y[:, 0].astype("int32")
        return optax.softmax_cross_entropy_with_integer_labels(pred, labels) * _weights(y)

    def stop_value(self, pred, y, mask):
        from podbench.tasks.scoring import masked_macro_auc

        return masked_macro_auc(pred, y[:, 0], mask)

    def ensemble(self, member_preds: np.ndarray) -> np.ndarray:
        """The log of the members' mean class probabilities (one member: its logits)."""
        if len(member_preds) == 1:
            return member_preds[0]
        from scipy.special import log_softmax, logsumexp

        log_p = log_softmax(member_preds.astype(np.float64), axis=-1)
        return (logsumexp(log_p, axis=0) - np.log(len(member_preds))).astype(member_preds.dtype)

    def extra_results(self, cfg, test):
        """confusion_matrix.csv (see `confusion_table`)."""
        return {"confusion_matrix.csv": confusion_table(test, self.class_names)}


def confusion_table(test, class_names) -> pd.DataFrame:
    """Per lag, test-split counts summed over folds (every event is tested once per lag) of
    the argmax of the logits; rows = true class, columns = predicted class."""
    k = len(class_names)
    by_lag: dict[int, np.ndarray] = {}
    for lag, _fold, pred, y in test:
        by_lag[lag] = by_lag.get(lag, np.zeros((k, k), np.int64)) + \
            metrics.confusion_counts(pred, y, k)
    rows = []
    for lag in sorted(by_lag):
        for t, name in enumerate(class_names):
            rows.append({"lags": lag, "true": name,
                         **{f"pred_{p}": int(by_lag[lag][t, i]) for i, p in enumerate(class_names)}})
    return pd.DataFrame(rows)


class RegressionTask(EventTargetsTask):
    """A scalar target, standardised with each training fold's mean and sd; squared error;
    Pearson r, R2, MSE (in units of the training fold's variance); stops on validation MSE."""

    head = "scalar"
    stop_mode = "min"
    split_metric_names = ("mse", "pearson_r", "r2")
    headline = "test_pearson_r"
    chance = 0.0

    def per_fold(self, cfg: Config) -> bool:
        return True

    def fold_columns(self, cfg, values, train):
        mean, sd = float(values[train].mean()), float(values[train].std())
        sd = sd if sd > 0 else 1.0
        return ((values - mean) / sd)[:, None], {"mean": mean, "sd": sd}

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        return 1

    def loss(self, pred, y, cfg: Config):
        return (pred[:, 0] - y[:, 0]) ** 2

    def stop_value(self, pred, y, mask):
        from podbench.tasks.scoring import masked_mean

        return masked_mean((pred[:, 0] - y[:, 0]) ** 2, mask)
