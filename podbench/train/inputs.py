"""A program's inputs: latents and targets loaded from the stores, aligned on their common
words, with folds, standardisation statistics and (electrodes selected per fold) each fold's
electrode mask; several configs' inputs merged on the union
of their words; and the per-lane index arrays the compiled program reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from podbench.config import Config
from podbench.data.dataset import normalise_label
from podbench.errors import ConfigError
from podbench.features.build import Features
from podbench.features.selection import selection_mask
from podbench.tasks.folds import Fold, folds_for
from podbench.tasks.nulls import null_targets
from podbench.train.lanes import LaneTable, key_data, padded


@dataclass
class RunInputs:
    """Host arrays of a run, aligned on the events present in both latents and targets
    (`words`, `labels`: named like the stores' event dimension, `word`, whatever the events)."""

    words: np.ndarray  # the events' ids (word_idx for word tasks), time order
    labels: np.ndarray  # normalised event labels
    x: np.ndarray  # [N, n_lag, *input_shape] float32
    y: np.ndarray  # [n_yfold, N, D] float32
    lags: list[int]
    folds: list[Fold]
    norm_mean: np.ndarray  # [n_nfold, n_lag, *stat_shape]
    norm_std: np.ndarray
    standardise: str | None
    keep: np.ndarray | None = None  # [n_nfold, n_lag, *stat_shape] 1/0: each fold's electrodes


def _fold_standardisation(x: np.ndarray, folds: list[Fold]) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold, per-lag, per-channel statistics over the training rows (and time bins)."""
    means, stds = [], []
    for fold in folds:
        xt = x[fold.train].astype(np.float64)
        axes = (0, 3) if xt.ndim == 4 else (0,)
        mean = xt.mean(axis=axes)
        std = xt.std(axis=axes)
        std[std < 1e-12] = 1.0
        means.append(mean)
        stds.append(std)
    return np.stack(means), np.stack(stds)


def permutation_seed(cfg: Config) -> int:
    t = cfg.training
    return t.seed if t.permutation_seed is None else t.permutation_seed


def prepare(cfg: Config, features: Features) -> RunInputs:
    """Load latents and targets, align them, make folds and standardisation statistics."""
    latents = features.load("latents")
    targets = features.load("targets")
    common = np.intersect1d(latents["word"].values, targets["word"].values)
    if len(common) == 0:
        raise ConfigError("the latents and targets stores share no word")
    lat = latents.sel(word=common)
    x = lat["latent"].values.astype(np.float32)
    tg = targets["target"].sel(word=common)
    y = tg.values.astype(np.float32)
    y = y[None] if "fold" not in tg.dims else y
    labels = np.array(
        [normalise_label(str(w), cfg.data.label_normalisation) for w in lat["label"].values],
        dtype=object,
    )
    folds = folds_for(cfg, labels)
    if cfg.training.shuffle_targets:
        y = null_targets(y, folds, cfg.training.shuffle_mode, permutation_seed(cfg))
    standardise = latents.attrs.get("standardise")
    stat_shape = (1,) * (x.ndim - 3)
    if standardise == "all":
        mean = latents["norm_mean"].values[None]
        std = latents["norm_std"].values[None]
    elif standardise == "train":
        mean, std = _fold_standardisation(x, folds)
    else:
        mean = np.zeros((1, x.shape[1], *x.shape[2:3]))
        std = np.ones_like(mean)
    mean = mean.reshape(*mean.shape, *stat_shape).astype(np.float32)
    std = std.reshape(*std.shape, *stat_shape).astype(np.float32)
    inputs = RunInputs(
        common, labels, x, y, [int(v) for v in lat["lag"].values], folds, mean, std, standardise
    )
    if "selection" in features.keys:
        mask = selection_mask(features.load("selection"), lat["channel"].values, common)
        return with_electrode_masks(inputs, mask)
    return inputs


def with_electrode_masks(inputs: RunInputs, mask: np.ndarray) -> RunInputs:
    """`inputs` whose lanes see only their fold's electrodes (mask [n_fit, channel]: one fit
    for all folds, or one per fold): the statistics get one set per fold and `keep` zeroes
    the others after standardisation. None where every fold keeps every electrode."""
    if mask.all():
        return inputs
    sets = max(mask.shape[0], inputs.norm_mean.shape[0])
    shape = (sets, *inputs.norm_mean.shape[1:])
    keep = np.broadcast_to(
        mask.reshape(mask.shape[0], 1, mask.shape[1], *inputs.norm_mean.shape[3:]), shape
    )
    return dataclasses.replace(
        inputs,
        norm_mean=np.ascontiguousarray(np.broadcast_to(inputs.norm_mean, shape)),
        norm_std=np.ascontiguousarray(np.broadcast_to(inputs.norm_std, shape)),
        keep=keep.astype(np.float32),
    )


@dataclass
class ProgramInputs:
    """A program's inputs, what its compiled program trains on: its points' inputs merged on
    the union of their words. Points of one targets store share an entry; several entries
    arise when tasks (or target settings) with equal program shapes train together."""

    x: np.ndarray  # [N, n_lag, *input_shape] latents of the union of the entries' words
    y: np.ndarray  # [n_sets, N, D] every entry's target sets (zeros where it has no target)
    norm_mean: np.ndarray  # [n_stats, n_lag, *stat_shape]
    norm_std: np.ndarray
    entries: list[RunInputs]
    rows: list[np.ndarray]  # per entry: the rows of its words in x
    y_base: list[int]  # per entry: index of its first target set in y
    norm_base: list[int]  # per entry: index of its first statistics set
    entry_of: list[int] | None = None  # per point: its entry (None: entry 0 for all)
    keep: np.ndarray | None = None  # [n_stats, n_lag, *stat_shape] electrode masks, or None

    def entry(self, point: int) -> int:
        return 0 if self.entry_of is None else self.entry_of[point]


def merge_inputs(entries: list[RunInputs], entry_of: list[int] | None = None) -> ProgramInputs:
    """One program's arrays from its entries' inputs (shared, not copied, for one entry)."""
    if len(entries) == 1:
        only = entries[0]
        return ProgramInputs(
            only.x,
            only.y,
            only.norm_mean,
            only.norm_std,
            entries,
            [np.arange(len(only.words))],
            [0],
            [0],
            entry_of,
            only.keep,
        )
    if len({tuple(e.lags) for e in entries}) > 1 or len({e.y.shape[-1] for e in entries}) > 1:
        raise ConfigError("tasks packed in one program need the same lags and target width")
    words = entries[0].words
    for e in entries[1:]:
        words = np.union1d(words, e.words)
    rows = [np.searchsorted(words, e.words) for e in entries]
    x = np.empty((len(words), *entries[0].x.shape[1:]), np.float32)
    y = np.zeros(
        (sum(e.y.shape[0] for e in entries), len(words), entries[0].y.shape[-1]), np.float32
    )
    y_base = np.cumsum([0] + [e.y.shape[0] for e in entries])[:-1].tolist()
    for e, r, base in zip(entries, rows, y_base):
        x[r] = e.x
        y[base : base + e.y.shape[0], r] = e.y
    norm_base = np.cumsum([0] + [e.norm_mean.shape[0] for e in entries])[:-1].tolist()
    keep = None if entries[0].keep is None else np.concatenate([e.keep for e in entries])
    return ProgramInputs(
        x,
        y,
        np.concatenate([e.norm_mean for e in entries]),
        np.concatenate([e.norm_std for e in entries]),
        entries,
        rows,
        y_base,
        norm_base,
        entry_of,
        keep,
    )


def as_program_inputs(inputs: RunInputs | ProgramInputs) -> ProgramInputs:
    return inputs if isinstance(inputs, ProgramInputs) else merge_inputs([inputs])


def lane_inputs(table: LaneTable, inputs: RunInputs | ProgramInputs):
    """The trainer's per-lane arrays (numpy) for a lane table: each lane's training and
    validation rows, target set and statistics set come from its point's entry."""
    from podbench.train.program import Lanes

    merged = as_program_inputs(inputs)
    folds = [{f.number: f for f in e.folds} for e in merged.entries]
    train, val, yset, nset = [], [], [], []
    for point, number in zip(table.point.tolist(), table.fold.tolist()):
        e = merged.entry(point)
        entry, fold = merged.entries[e], folds[e][number]
        train.append(merged.rows[e][fold.train])
        val.append(merged.rows[e][fold.val])
        yset.append(merged.y_base[e] + (number - 1 if entry.y.shape[0] > 1 else 0))
        nset.append(merged.norm_base[e] + (number - 1 if entry.norm_mean.shape[0] > 1 else 0))
    train_idx, train_n = padded(train)
    val_idx, val_n = padded(val)
    return Lanes(
        key=np.stack([key_data(int(s)) for s in table.seed]),
        lag=table.lag_index.astype(np.int32),
        yfold=np.asarray(yset, np.int32),
        nfold=np.asarray(nset, np.int32),
        lr=table.lr,
        weight_decay=table.weight_decay,
        dropout=table.dropout,
        train_idx=train_idx,
        train_n=train_n,
        val_idx=val_idx,
        val_n=val_n,
    )
