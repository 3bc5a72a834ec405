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

`task_params.parity: reference` (binary and class tasks) gives the reference's protocol where
podbench differs on purpose: a joint ensemble is trained, stopped and scored on its members'
mean probability (not on the mean of their logits); early stopping runs on the reference's
metric, a mean over validation batches of `training.batch_size` rows (`reference_stop`: ROC-AUC,
macro ROC-AUC; sentence_onset: weighted F1); class logits pass through PITOM's LayerNorm as in
the reference's head; and the per-batch-mean AUC is written beside the whole-split one
(`test_roc_auc_batch_mean`, `test_macro_roc_auc_batch_mean`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, opt
from podbench.data.dataset import SYNTACTIC, TRANSCRIPT, Dataset
from podbench.errors import ConfigError
from podbench.tasks import metrics
from podbench.tasks.base import Task
from podbench.tasks.folds import folds_for
from podbench.tasks.keying import Fingerprint, TaskKeying

if TYPE_CHECKING:
    from jax import Array


def the_words(cfg: Config) -> list[str]:
    """The dataset files of a task that reads only the words (`TaskSpec.dataset_files`)."""
    return [TRANSCRIPT]


def words_and_tags(cfg: Config) -> list[str]:
    """The dataset files of a word-class task: the words, and their spaCy tags unless
    task_params.labels_csv gives the labels."""
    return [TRANSCRIPT] if cfg.task_params.get("labels_csv") else [TRANSCRIPT, SYNTACTIC]


PARITY_DOC = (
    "podbench: podbench's protocol; reference: the reference's where podbench "
    "differs on purpose (docs/user_guide/parity.md)"
)


@dataclass
class ClassWeightParams:
    """Parameters of the classification tasks."""

    class_weight: Literal["none", "balanced"] = opt(
        "none",
        doc="weight examples in the loss by n / (n_classes * n_class), counted on "
        "each training fold (sklearn's 'balanced'); none: every example 1",
    )
    parity: Literal["podbench", "reference"] = opt("podbench", doc=PARITY_DOC)


@dataclass
class WordClassParams(ClassWeightParams):
    """Parameters of the syntactic word tasks (content_word, part_of_speech)."""

    labels_csv: str | None = opt(
        None,
        doc="the reference's word table (df_word_onset_with_pos_class.csv: onset, "
        "is_content, pos_class), matched to the transcript by onset; null: spaCy "
        "tags of stimuli/syntactic/transcript.tsv",
    )


def task_file(cfg: Config, name: str) -> Path:
    """The file task_params.<name> names (absolute or from the working directory)."""
    spec = cfg.task_params[name]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"task_params.{name} = {spec!r}: no such file")
    return path


def batch_mean(score: Callable, pred: Array, y: Array, mask: Array, size: int) -> Array:
    """The reference's epoch metric (traced): `score(pred, y, mask)` on consecutive batches
    of `size` rows, averaged over the batches holding a valid row (each batch counts once)."""
    import jax
    import jax.numpy as jnp

    pad = (-pred.shape[0]) % size
    batches = [
        jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(-1, size, *a.shape[1:])
        for a in (pred, y, mask)
    ]
    values = jax.vmap(score)(*batches)
    has = (batches[2].sum(axis=1) > 0).astype(values.dtype)
    return jnp.sum(values * has) / jnp.maximum(has.sum(), 1.0)


def host_batch_mean(
    score: Callable, pred: np.ndarray, y: np.ndarray, size: int, one_class: float = 0.5
) -> float:
    """`score(pred, y)` on consecutive batches of `size` rows, averaged over batches; a batch
    where the score is undefined (nan: one class) counts `one_class`, as in the reference."""
    values = [score(pred[i : i + size], y[i : i + size]) for i in range(0, len(pred), size)]
    return float(np.mean([one_class if np.isnan(v) else v for v in values]))


class EventTargetsKeying(TaskKeying):
    """The targets by the task and its parameters, a file a parameter names by its content;
    the program by the classes, the class weights and the parity mode."""

    task: EventTargetsTask

    def params(self, cfg: Config) -> dict:
        """task_params for stage keys: a file of `file_params` by its content, not its path."""
        from podbench.data.recordings import file_digest

        params = dict(cfg.task_params)
        for name in self.task.file_params:
            if params.get(name):
                params[name] = {"sha256": file_digest(task_file(cfg, name))}
        return params

    def targets(self, cfg: Config, dataset: Dataset) -> dict:
        return {"task": cfg.task, "params": self.params(cfg)}

    def training(self, cfg: Config, fingerprint: Fingerprint) -> dict:
        return {**super().training(cfg, fingerprint), "task_params": self.params(cfg)}

    def program(self, cfg: Config) -> dict:
        """Plus the classes, whether a weight column follows the label, and the parity mode."""
        return {
            **super().program(cfg),
            "classes": list(getattr(self.task, "class_names", ())),
            "class_weight": cfg.task_params.get("class_weight", "none"),
            "parity": self.task.parity(cfg),
        }


class EventTargetsTask(Task):
    """A task with one target number per event; targets fitted per training fold if needed."""

    word_events = True  # events are the transcript's words (False: the task's own events)
    file_params: tuple[str, ...] = ()  # task_params naming files (see task_file)
    batch_mean_metric: str | None = None  # the AUC that parity: reference also writes per batch
    keying_class: type[TaskKeying] = EventTargetsKeying

    def validate(self, cfg: Config) -> None:
        for name in self.file_params:
            if cfg.task_params.get(name):
                task_file(cfg, name)
        if cfg.training.loss != "mse":
            raise ConfigError(
                f"training.loss = {cfg.training.loss!r}: task {cfg.task!r} has its "
                "own loss; training.loss applies to embedding tasks only"
            )
        if not self.word_events and cfg.training.fold_type == "zero_shot":
            raise ConfigError(
                f"training.fold_type = 'zero_shot': task {cfg.task!r} has no word "
                "types to fold over; use sequential"
            )
        decoder = registry.models.spec(cfg.model.name, "model.name")
        if decoder.closed_form and not decoder.classifier and self.head == "classes":
            raise ConfigError(
                f"model.name = {cfg.model.name!r}: a closed-form regression cannot "
                f"give task {cfg.task!r} one logit per class; use linear (logistic "
                "regression) or a trained model (pitom, mlp)"
            )

    def describe(self, cfg: Config) -> str:
        return cast(str, cfg.task)  # a task's config names one task

    # ---------------------------------------------------------------- parity: reference

    def parity(self, cfg: Config) -> str:
        return cfg.task_params.get("parity", "podbench")

    def reference_stop(self, pred: Array, y: Array, mask: Array) -> Array:
        """The reference's early-stopping metric on one validation batch (traced)."""
        return self.stop_value(pred, y, mask)

    def stopping(self, cfg: Config) -> Callable:
        if self.parity(cfg) != "reference":
            return self.stop_value
        size = cfg.training.batch_size
        return lambda pred, y, mask: batch_mean(self.reference_stop, pred, y, mask, size)

    def traced_ensemble(self, member_preds: Array) -> Array:
        """`ensemble` inside the compiled program (JAX), for parity: reference."""
        raise NotImplementedError

    def group_combine(self, cfg: Config) -> Callable:
        if self.parity(cfg) == "reference":
            return self.traced_ensemble
        return super().group_combine(cfg)

    def joint_ensemble(self, member_preds: np.ndarray, cfg: Config) -> np.ndarray:
        if self.parity(cfg) == "reference":
            return self.ensemble(member_preds)
        return super().joint_ensemble(member_preds, cfg)

    def fold_metrics(
        self,
        member_preds: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray,
        train_labels: np.ndarray,
        cfg: Config,
        split: str,
    ) -> dict[str, float]:
        """parity: reference adds the reference's per-batch-mean AUC of the test and
        validation splits (batches of training.batch_size rows in time order)."""
        if self.parity(cfg) != "reference" or not self.batch_mean_metric:
            return {}
        score = registry.metrics.get(self.batch_mean_metric)
        value = host_batch_mean(score, self.ensemble(member_preds), y, cfg.training.batch_size)
        return {f"{split}_{self.batch_mean_metric}_batch_mean": value}

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

    def fold_columns(
        self, cfg: Config, values: np.ndarray, train: np.ndarray
    ) -> tuple[np.ndarray, dict]:
        """Target columns [N, D] fitted on the training rows `train`, and what was fitted."""
        return self.columns(cfg, values), {}

    # ---------------------------------------------------------------- the targets store

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_events):
        import xarray as xr

        from podbench.tasks.word_embedding import fold_rows

        table = self.values(cfg, dataset)
        word_idx = table["word_idx"].to_numpy().astype(np.int64)
        words = table["word"].astype(str).to_numpy()
        values = table["value"].to_numpy(dtype=np.float64)
        attrs: dict = {"n_events": len(table), **table.attrs}  # a "note" shows in the build report
        if self.per_fold(cfg):
            rows, labels = fold_rows(cfg, word_idx, words, epoch_events)
            slices, fitted = [], []
            for fold in folds_for(cfg, labels):
                cols, info = self.fold_columns(cfg, values, rows[fold.train])
                slices.append(cols)
                fitted.append(info)
            target: tuple[tuple[str, ...], np.ndarray] = (
                ("fold", "word", "dim"),
                np.stack(slices).astype(np.float32),
            )
            attrs["fitted_per_fold"] = fitted
        else:
            target = (("word", "dim"), self.columns(cfg, values).astype(np.float32))
        ds = xr.Dataset(
            {"target": target}, coords={"word": word_idx, "label": ("word", words.astype(object))}
        )
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
    batch_mean_metric = "roc_auc"

    def fold_columns(self, cfg, values, train):
        labels = np.rint(values).astype(np.int64)
        weights = balanced_weights(labels, train, 2)
        return np.stack([values, weights], axis=1), {
            "positive_weight": float(weights[labels == 1][0]) if (labels == 1).any() else 1.0,
            "negative_weight": float(weights[labels == 0][0]) if (labels == 0).any() else 1.0,
        }

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
        as_two = [
            (lag, fold, np.concatenate([np.zeros_like(pred[:, :1]), pred[:, :1]], axis=1), y)
            for lag, fold, pred, y in test
        ]
        return {"confusion_matrix.csv": confusion_table(as_two, ("negative", "positive"))}

    def traced_ensemble(self, member_preds: Array) -> Array:
        from podbench.tasks.scoring import mean_probability_logit

        return mean_probability_logit(member_preds)

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
    split_metric_names = (
        "cross_entropy",
        "macro_roc_auc",
        "macro_f1",
        "balanced_accuracy",
        "accuracy",
    )
    headline = "test_macro_roc_auc"
    chance = 0.5
    class_names: tuple[str, ...] = ()
    batch_mean_metric = "macro_roc_auc"

    def fold_columns(self, cfg, values, train):
        labels = np.rint(values).astype(np.int64)
        weights = balanced_weights(labels, train, len(self.class_names))
        per_class = {
            name: float(weights[labels == c][0]) if (labels == c).any() else 1.0
            for c, name in enumerate(self.class_names)
        }
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

    def model_head(self, cfg: Config) -> str:
        """parity: reference puts the class logits through a LayerNorm (the reference's
        PITOM normalises every output wider than 1)."""
        return "classes_norm" if self.parity(cfg) == "reference" else self.head

    def traced_ensemble(self, member_preds: Array) -> Array:
        from podbench.tasks.scoring import mean_probability_log

        return mean_probability_log(member_preds)

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
        by_lag[lag] = by_lag.get(lag, np.zeros((k, k), np.int64)) + metrics.confusion_counts(
            pred, y, k
        )
    rows = []
    for lag in sorted(by_lag):
        for t, name in enumerate(class_names):
            rows.append(
                {
                    "lags": lag,
                    "true": name,
                    **{f"pred_{p}": int(by_lag[lag][t, i]) for i, p in enumerate(class_names)},
                }
            )
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
