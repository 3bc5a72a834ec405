"""The word-embedding task: decode a word's embedding; score words as the reference does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, build_params
from podbench.data.dataset import TRANSCRIPT, Dataset, normalise_label, word_table
from podbench.errors import ConfigError
from podbench.registry import register_task
from podbench.tasks import metrics
from podbench.tasks.base import Task, config_value
from podbench.tasks.folds import folds_for
from podbench.tasks.keying import TaskKeying
from podbench.tasks.sources import fit_pca


def source_files(kind: str) -> list[str]:
    """Dataset files read with the target source `kind`: the words and those it declares."""
    declared = registry.target_sources.spec(kind, "targets.kind").dataset_files
    if declared is None:
        raise ConfigError(
            f"targets.kind = {kind!r}: podbench download does not know which "
            "files it reads (it declares no dataset_files); use --what stimuli"
        )
    return [TRANSCRIPT, *declared]


class WordEmbeddingKeying(TaskKeying):
    """The targets by their source, the config fields it reads and the PCA; the program by
    the targets' width."""

    task: WordEmbedding

    def source_identity(self, cfg: Config) -> dict:
        """The target source, the config fields it reads and its parameters (none: left
        out, so keys made before `targets.params` existed hold)."""
        source = self.task.source(cfg)
        identity = {
            "kind": source.name,
            "fields": {f: config_value(cfg, f) for f in source.spec.fields},
        }
        if cfg.targets.params:
            identity["params"] = cfg.targets.params
        return identity

    def targets(self, cfg: Config, dataset: Dataset) -> dict:
        return {
            **self.source_identity(cfg),
            "pca_dim": cfg.targets.pca_dim,
            "pca_fit": cfg.targets.pca_fit,
        }

    def program(self, cfg: Config) -> dict:
        """Plus the target dimension: the PCA's, or (without PCA) the source's identity."""
        dim: int | dict | None = cfg.targets.pca_dim
        if dim is None:
            dim = self.source_identity(cfg)
        return {**super().program(cfg), "dim": dim}


@register_task("word_embedding", dataset_files=lambda cfg: source_files(cfg.targets.kind))
class WordEmbedding(Task):
    """Decode a word's embedding (GPT-2, GloVe, arbitrary, a Hugging Face model); score words."""

    head = "vector"
    stop_mode = "max"
    split_metric_names = ("mse", "nll_embedding", "cosine_sim", "pairwise_accuracy")
    headline = "test_word_avg_auc_roc"
    chance = 0.5
    keying_class = WordEmbeddingKeying

    def validate(self, cfg: Config) -> None:
        """Its target source's parameters (`targets.params`, validated against the ones the
        source declares, defaults filled in) and the config paths the source requires."""
        spec = self.source(cfg).spec
        cfg.targets.params = build_params(spec.params, cfg.targets.params, "targets.params")
        for dotted in spec.required:
            if not config_value(cfg, dotted):
                raise ConfigError(f"{dotted} is required for targets.kind: {cfg.targets.kind}")

    def check_data(self, cfg: Config, dataset: Dataset, events: pd.DataFrame) -> None:
        """Plus: the source's own checks (e.g. the GPT-2 layer exists) and the PCA dimension
        against the source's dimensions and the words it is fitted on."""
        super().check_data(cfg, dataset, events)
        dims = self.source(cfg).spec.dims(cfg, dataset)
        dim = cfg.targets.pca_dim
        if dim is None:
            return
        if dims is not None and dim > dims:
            raise ConfigError(
                f"targets.pca_dim = {dim}: larger than the {dims} dimensions of "
                f"targets.kind {cfg.targets.kind}"
            )
        n_fit = (
            len(events)
            if cfg.targets.pca_fit == "all"
            else len(events) * (1 - 1 / cfg.training.n_folds) * (1 - cfg.training.val_fraction)
        )
        if dim > n_fit:
            raise ConfigError(
                f"targets.pca_dim = {dim}: larger than the {int(n_fit)} words it "
                f"would be fitted on (targets.pca_fit: {cfg.targets.pca_fit})"
            )

    def source(self, cfg: Config):
        """The registered target source it reads (targets.kind)."""
        return registry.target_sources.entry(cfg.targets.kind, "targets.kind")

    def per_fold(self, cfg: Config) -> bool:
        """With a PCA fitted inside each training fold."""
        return cfg.targets.pca_dim is not None and cfg.targets.pca_fit == "train"

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return self.source(cfg).spec.sources(cfg, dataset)

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_events):
        import xarray as xr

        words = word_table(dataset)
        result = self.source(cfg).obj(cfg, dataset, words)
        table = words.set_index("word_idx").loc[result.word_idx]
        vectors = result.vectors
        attrs = {
            "source_dim": int(vectors.shape[1]),
            "dropped_words": result.dropped,
            **result.info,
        }
        dim = cfg.targets.pca_dim
        if dim is None:
            target: tuple[tuple[str, ...], np.ndarray] = (
                ("word", "dim"),
                vectors.astype(np.float32),
            )
        elif cfg.targets.pca_fit == "all":
            reduced, evr = fit_pca(vectors, dim, np.arange(len(vectors)))
            target = (("word", "dim"), reduced)
            attrs["explained_variance_ratio"] = evr
        else:
            rows, labels = fold_rows(cfg, result.word_idx, table["word"].to_numpy(), epoch_events)
            per_fold, evrs = [], []
            for fold in folds_for(cfg, labels):
                reduced, evr = fit_pca(vectors, dim, rows[fold.train])
                per_fold.append(reduced)
                evrs.append(evr)
            target = (("fold", "word", "dim"), np.stack(per_fold))
            attrs["explained_variance_ratio"] = evrs
        ds = xr.Dataset(
            {"target": target},
            coords={
                "word": result.word_idx,
                "label": ("word", table["word"].to_numpy().astype(object)),
            },
        )
        return ds, attrs

    def loss(self, pred, y, cfg: Config):
        from podbench.tasks.scoring import cosine_rows

        if cfg.training.loss == "cosine":
            return 1.0 - cosine_rows(pred, y)
        return ((pred - y) ** 2).mean(axis=-1)

    def stop_value(self, pred, y, mask):
        from podbench.tasks.scoring import cosine_rows, masked_mean

        return masked_mean(cosine_rows(pred, y), mask)

    def fold_metrics(self, member_preds, y, labels, train_labels, cfg: Config, split: str):
        return metrics.word_metrics(
            member_preds, y, labels, train_labels, cfg.targets.min_train_freq, split=split
        )

    def repaired_headline(self, cfg):
        """The word ROC-AUC from the members' distances, as `fold_metrics` scores it."""
        if self.headline != "test_word_avg_auc_roc":
            return super().repaired_headline(cfg)
        return lambda held, perms: metrics.repaired_word_avg_auc_roc(
            held.members, held.y, held.labels, held.train_labels, cfg.targets.min_train_freq, perms
        )


def fold_rows(
    cfg: Config, target_events: np.ndarray, raw_labels: np.ndarray, epoch_events: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (into the targets) and labels of the events a run trains on, in time order.

    The run's events are those present in both the epochs and the targets; folds are made over
    them exactly as the trainer makes them.
    """
    position = pd.Index(target_events)
    common = np.intersect1d(epoch_events, target_events)
    rows = position.get_indexer(common)
    labels = np.array(
        [normalise_label(w, cfg.data.label_normalisation) for w in raw_labels[rows]], dtype=object
    )
    if len(common) == 0:
        raise ConfigError("no event is in both the epochs and the targets")
    return rows, labels
