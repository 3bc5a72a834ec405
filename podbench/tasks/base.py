"""Tasks: what is decoded, how its targets are built, its loss, metrics and early stopping.

A task is a registered `Task` subclass instance. The trainer only talks to this interface,
so a new task (Whisper embeddings, content words, surprisal, ...) is one module with one
registered class plus a YAML config, not a second trainer:

- events: `events` (what the windows are centred on: the words by default, or e.g. sentence
  onsets, a regular time grid) and `event_sources` (the files they are read from);
- targets: `target_sources` (files it reads), `per_fold` (whether they are fitted inside each
  training fold), `target_dataset` (the targets store's content: variable `target` with dims
  (word, dim) or (fold, word, dim) when fitted per training fold; the feature stage writes it);
- head: `head` ("vector" | "scalar" | "binary" | "classes" | "tokens") and
  `output_dim(y, cfg)`; vector heads end in the model's embedding head (PITOM: LayerNorm,
  tanh), scalar heads in raw values (one per target column), the others in logits;
- loss: `loss(pred, y)` per example (JAX), averaged over valid rows by the trainer;
- early stopping: `stop_value(pred, y, mask)` on the whole validation split (JAX), and
  `stop_mode` "max" or "min";
- metrics: `split_metrics` on train/val/test (whole splits), `fold_metrics` with the
  members' predictions on each fold's test (and validation) split; `headline` names the
  test metric of the lag curve and `headline_mode` its direction ("max": higher is better);
- selection: the headline's `val_` twin (`selection_metric`) chooses the lag and a sweep's
  point, in the headline's direction (`select_lag`), never the test split. It is the
  validation twin of the headline, not of the stopping rule: regression tasks stop on the
  validation MSE but choose the lag on the validation Pearson r;
- results: `ensemble` combines independently trained members (default: mean of outputs),
  `joint_ensemble` / `group_combine` a joint ensemble (on the host / in the program),
  `extra_results` adds tables to the results folder (e.g. a confusion matrix);
- frozen: `frozen(cfg)` gives arrays every lane's model shares and never trains (the LLM
  task's language model), put on the device once and passed to the model in `Call.frozen`.

What of a task enters the store keys and the program signature is not a hook of the task: it
is its keying object, `task.keying` (podbench.tasks.keying.TaskKeying, or the subclass the
task names in `keying_class`), which the store layer alone asks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config
from podbench.data.dataset import Dataset, word_table
from podbench.errors import ConfigError
from podbench.tasks import metrics
from podbench.tasks.keying import TaskKeying


def config_value(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@dataclass(frozen=True)
class HeldOut:
    """One fold's test split as scored: the prediction the metrics score (`ensemble` [n, out]),
    the members' [M, n, out], the targets [n, D], the labels [n] and the training split's
    labels (word-level metrics count types by them)."""

    ensemble: np.ndarray
    members: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    train_labels: np.ndarray


class Task(ABC):
    """Base class of tasks; subclasses fill in the targets and the scoring."""

    head = "vector"
    stop_mode = "max"
    split_metric_names: tuple[str, ...] = ()
    headline = "test_cosine_sim"  # the metric of the lag curve and closing table
    headline_mode = "max"  # "max": a higher headline is better; "min": lower (perplexity)
    chance: float | None = None
    keying_class: type[TaskKeying] = TaskKeying  # what of it enters the keys

    @property
    def keying(self) -> TaskKeying:
        """What of this task enters the stage keys and the program signature."""
        return self.keying_class(self)

    @property
    def selection_metric(self) -> str:
        """The headline's validation twin, which chooses lags and sweep points."""
        return validation_twin(self.headline)

    def select_lag(self, perf: pd.DataFrame):
        """Index of the row of a lag_performance table chosen on validation (the mean over
        folds of `selection_metric`, in the headline's direction)."""
        return best_index(perf[f"{self.selection_metric}_mean"], self.headline_mode)

    def validate(self, cfg: Config) -> None:  # noqa: B027 (optional hook: accepts by default)
        """Raise ConfigError for settings this task cannot use."""

    def check_data(self, cfg: Config, dataset: Dataset, events: pd.DataFrame) -> None:
        """Refuse settings the data cannot satisfy, before anything is built: by default, more
        folds than the events allow (each fold needs at least 3)."""
        n_folds = cfg.training.n_folds
        if len(events) < 3 * n_folds:
            raise ConfigError(
                f"training.n_folds = {n_folds}: task {cfg.task!r} has only "
                f"{len(events)} events in {dataset.root} (at least 3 per fold)"
            )

    def events(self, cfg: Config, dataset: Dataset) -> pd.DataFrame:
        """The events windows are centred on: columns word_idx (event id, increasing in
        time), word (label), start and end (s). Default: the transcript's words."""
        return word_table(dataset)

    def event_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        """Files the events are read from (fingerprinted by the epochs store)."""
        return [dataset.transcript_path]

    def per_fold(self, cfg: Config) -> bool:
        """Whether the targets are fitted inside each training fold (then they depend on the
        folds and on the epochs' events); by default not."""
        return False

    @abstractmethod
    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        raise NotImplementedError

    @abstractmethod
    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_events: np.ndarray | None):
        """The targets store's content: an xarray Dataset with variable `target` (dims (word,
        dim), or (fold, word, dim) when fitted per training fold) and coordinate `label`, plus
        provenance attributes (`word`: the stores' name of the event dimension, whatever the
        events). `epoch_events` are the epochs' events (their ids) when the targets depend on
        the folds (see per_fold), else None."""
        raise NotImplementedError

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        """Outputs of the model's head, from the run's target array [n_fold, N, D]."""
        return int(y.shape[-1])

    @abstractmethod
    def loss(self, pred, y, cfg: Config):
        raise NotImplementedError

    @abstractmethod
    def stop_value(self, pred, y, mask):
        raise NotImplementedError

    def split_metrics(self, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {name: registry.metrics.get(name)(pred, y) for name in self.split_metric_names}

    def fold_metrics(
        self,
        member_preds: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray,
        train_labels: np.ndarray,
        cfg: Config,
        split: str,
    ) -> dict[str, float]:
        """Metrics that need the members' predictions on a whole evaluation split ("test" for
        reporting, "val" for model selection); keys start with the split."""
        return {}

    def repaired_headline(self, cfg: Config) -> Callable[[HeldOut, np.ndarray], np.ndarray] | None:
        """The test headline against re-paired test targets, the score-level permutation null:
        a function of one fold's held-out predictions and perms [P, n] giving [P] scores,
        prediction i scored against the target (and label) of event perms[p, i]. By default
        the headline's split metric in its re-paired form (`metrics.REPAIRED`) on the
        ensemble; None if the headline has no re-paired form."""
        repaired = metrics.REPAIRED.get(self.headline.split("_", 1)[1])
        if repaired is None:
            return None
        return lambda held, perms: repaired(held.ensemble, held.y, perms)

    def ensemble(self, member_preds: np.ndarray) -> np.ndarray:
        """One prediction [n, out] from independently trained members' [M, n, out]: their mean
        (the reference's ensemble); classifiers may average probabilities instead."""
        return member_preds.mean(axis=0)

    def joint_ensemble(self, member_preds: np.ndarray, cfg: Config) -> np.ndarray:
        """A joint ensemble's prediction: what it was trained on (`group_combine`), by default
        the mean of its members' outputs."""
        return member_preds.mean(axis=0)

    def group_combine(self, cfg: Config) -> Callable:
        """What a joint ensemble is trained, stopped and scored on, inside the compiled
        program (JAX): [G, n, out] -> [n, out]; by default the members' mean output."""
        return lambda member_preds: member_preds.mean(axis=0)

    def stopping(self, cfg: Config) -> Callable:
        """The early-stopping score (pred, y, mask) -> scalar: `stop_value` by default."""
        return self.stop_value

    def model_head(self, cfg: Config) -> str:
        """The head the model is built with: `head`, or a variant the config asks for
        ("classes_norm": class logits through a LayerNorm, for the reference's PITOM)."""
        return self.head

    def extra_results(
        self, cfg: Config, test: list[tuple[int, int, np.ndarray, np.ndarray]]
    ) -> dict[str, pd.DataFrame]:
        """Extra tables for the results folder (file name -> table), from each (lag, fold,
        ensemble test predictions, test targets); e.g. a confusion matrix. None by default."""
        return {}

    def describe(self, cfg: Config) -> str:
        """What is decoded, in a few words (the lag curve's title)."""
        return cfg.targets.kind

    def frozen(self, cfg: Config):
        """A pytree (e.g. an nnx Module) shared by every lane's model and never trained, or
        None; the model gets it as `call.frozen` (see podbench.models.layers)."""
        return None


def validation_twin(metric: str) -> str:
    """`test_word_avg_auc_roc` -> `val_word_avg_auc_roc`."""
    return "val_" + metric.split("_", 1)[1]


def best_index(values: pd.Series, mode: str):
    """Index of the best value of a series ("max" or "min"); NaN never wins."""
    if values.isna().all():
        return values.index[0]
    return values.idxmax() if mode == "max" else values.idxmin()


def task_for(cfg: Config) -> Task:
    """The task instance a config selects."""
    if isinstance(cfg.task, list):  # cfg.several_tasks, written out so that mypy narrows
        raise ConfigError(
            f"task = {cfg.task!r}: this needs one task; pick one with "
            "config.task_configs() or --set task=NAME"
        )
    return registry.tasks.get(cfg.task, "task")()
