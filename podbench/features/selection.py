"""The selection stage: electrodes chosen by a cross-validated encoding model, per fold or not.

Per candidate electrode, the response to each event is its mean signal in a window after the
event's onset (`data.electrodes.start`..`stop` ms). A closed-form ridge from the task's
targets (standardised on each inner training block) to every electrode's response at once is
fitted on all but one of `folds` contiguous inner blocks; its predictions' correlation with
the responses inside the held-out block, averaged over blocks, is the electrode's r. The
permutation p is (1 + #{r_null >= r}) / (1 + P) over P circular shifts of the targets
against the responses (autocorrelation kept; the responses are first high-passed,
`detrend`), then Benjamini-Hochberg q across electrodes; an electrode is selected when q (or
p, `correction: none`) <= alpha.

`fit: all` selects once on every event (the usual practice: the test events take part);
`fit: train` selects inside each training fold from that fold's training events only (the
rows of `podbench.tasks.folds`, made over the words a run trains on exactly as the trainer
makes them). The store holds r, p, q and selected per (fold, electrode), fold 0 standing for
"all events"; the epochs then hold the selected electrodes (their union over folds), and the
trainer masks each fold's others (`selection_mask`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from podbench.config import Config, ElectrodeSelection
from podbench.data.dataset import channel_coordinates, normalise_label, sub_label
from podbench.data.recordings import RESPONSIVE_FOLDER, Recording, open_recordings
from podbench.errors import ConfigError, DataError, StoreError
from podbench.features.context import Resolved
from podbench.features.epochs import geometry, valid_words
from podbench.features.store import write_dataset
from podbench.tasks.folds import folds_for
from podbench.tasks.nulls import repairings

PAIRINGS_BYTES = 2e8  # circular shifts scored at once: their cross-products and weights (bytes)


# ---------------------------------------------------------------- the encoding model


def shifted_correlations(
    x: np.ndarray, y: np.ndarray, shifts: np.ndarray, ridge: float, folds: int
) -> np.ndarray:
    """Held-out r [S, C] of a ridge from the targets x [n, D] shifted circularly by each of
    `shifts` (event i paired with target (i - s) mod n; 0: the real pairing) to the responses
    y [n, C]: fitted on all but one of `folds` contiguous blocks of y's rows (centred on its
    rows), correlated with the responses inside the block it predicts (slow drifts between
    blocks do not count), averaged over the blocks.

    Every sum comes from cross-products: a shift leaves x'x and x's sums over all rows as
    they are, and moves each block onto a contiguous (wrapped) run of x's rows, whose x'x and
    sums are differences of running sums; only each block's x'y is computed per shift, as one
    matrix product for all the shifts of a chunk."""
    n, d, c = x.shape[0], x.shape[1], y.shape[1]
    x64 = x.astype(np.float64)
    running_xx = np.concatenate([np.zeros((1, d, d)), np.cumsum(x64[:, :, None] * x64[:, None], 0)])
    running_x = np.concatenate([np.zeros((1, d)), np.cumsum(x64, axis=0)])
    xx_all, sx_all, sy_all = running_xx[n], running_x[n], y.sum(axis=0, dtype=np.float64)
    blocks = np.array_split(np.arange(n), folds)
    shifts = np.asarray(shifts, np.int64)
    xy_te = np.empty((folds, len(shifts), d, c), np.float32)
    for b, test in enumerate(blocks):
        rows = (test[:, None] - shifts[None, :]) % n  # [n_te, S]: x's rows paired with the block
        xy_te[b] = (x[rows].reshape(len(test), -1).T @ y[test]).reshape(len(shifts), d, c)
    xy_all = xy_te.sum(axis=0)
    total = np.zeros((len(shifts), c), np.float64)
    eye = np.eye(d)
    with threadpool_limits(1, user_api="blas"):  # small products: threads only contend
        for b, test in enumerate(blocks):
            n_te, n_tr = len(test), n - len(test)
            first = (test[0] - shifts) % n  # x's row paired with the block's first row
            wrap = np.maximum(first + n_te - n, 0)
            end = np.minimum(first + n_te, n)
            xx_te = running_xx[end] - running_xx[first] + running_xx[wrap]
            sx_te = running_x[end] - running_x[first] + running_x[wrap]
            sy_te = y[test].sum(axis=0, dtype=np.float64)
            mx, my = (sx_all - sx_te) / n_tr, (sy_all - sy_te) / n_tr
            cxy = xy_all - xy_te[b] - (n_tr * mx[:, :, None] * my).astype(np.float32)
            cxx = xx_all - xx_te - n_tr * mx[:, :, None] * mx[:, None, :]
            inverse = np.linalg.inv(cxx + ridge * n_tr * eye).astype(np.float32)
            weights = np.einsum("sde,sec->sdc", inverse, cxy)  # [S, D, C]
            mxt, myt = sx_te / n_te, sy_te / n_te
            sxy = xy_te[b] - (n_te * mxt[:, :, None] * myt).astype(np.float32)
            sxx = (xx_te - n_te * mxt[:, :, None] * mxt[:, None, :]).astype(np.float32)
            cov = np.einsum("sdc,sdc->sc", weights, sxy)
            spread = np.einsum("sdc,sdc->sc", weights, np.einsum("sde,sec->sdc", sxx, weights))
            yy = ((y[test] - myt) ** 2).sum(axis=0)
            den = np.sqrt(np.maximum(spread, 0) * yy)
            total += np.where(den > 1e-12, cov / np.where(den > 1e-12, den, 1.0), 0.0)
    return total / folds


def highpass(y: np.ndarray, events: int) -> np.ndarray:
    """Responses [n, C] minus their running mean over `events` neighbouring events (of these
    rows only): slow drifts, which circular shifts of autocorrelated targets do not make
    exchangeable, are removed (0: unchanged)."""
    from scipy.ndimage import uniform_filter1d

    if events == 0:
        return y
    return y - uniform_filter1d(y.astype(np.float64), events, axis=0, mode="nearest")


def standardise(a: np.ndarray) -> np.ndarray:
    """Columns of `a` with mean 0 and sd 1 (a constant column: 0), float32 (the sums of
    `shifted_correlations` over standardised columns need no more)."""
    a = a.astype(np.float64)
    sd = a.std(axis=0)
    return ((a - a.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)).astype(np.float32)


def encoding_test(
    x: np.ndarray, y: np.ndarray, sel: ElectrodeSelection, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out r [C] of the encoding model from targets x [n, D] to responses y [n, C] (rows
    in time order) and its permutation p [C] over circular shifts of x against y."""
    y, x = standardise(highpass(y, sel.detrend)), standardise(x)  # a shift keeps x's statistics
    r = shifted_correlations(x, y, np.zeros(1, np.int64), sel.ridge, sel.folds)[0]
    shifts = repairings(len(x), sel.permutations, "circular", rng)[:, 0]  # row 0 is -s mod n
    at_once = max(1, int(PAIRINGS_BYTES // (4 * x.shape[1] * y.shape[1] * (sel.folds + 4))))
    exceed = np.zeros(y.shape[1], np.int64)
    for first in range(0, len(shifts), at_once):
        chunk = (-shifts[first : first + at_once]) % len(x)
        null = shifted_correlations(x, y, chunk, sel.ridge, sel.folds)
        exceed += (null >= r).sum(axis=0)
    return r, (1 + exceed) / (1 + len(shifts))


def choose(p: np.ndarray, sel: ElectrodeSelection) -> tuple[np.ndarray, np.ndarray]:
    """q (Benjamini-Hochberg across electrodes, or p itself for `correction: none`) and the
    electrodes selected (q <= alpha)."""
    from scipy.stats import false_discovery_control

    q = false_discovery_control(p) if sel.correction == "bh" else p
    return q, q <= sel.alpha


# ---------------------------------------------------------------- events and fits


def event_rows(ctx: Resolved, recordings: list[Recording], target_words: np.ndarray):
    """The words a run trains on (events fitting the lag grid, with a target), in time order,
    with their normalised labels and onset times (s)."""
    cfg = ctx.cfg
    events = ctx.task.events(cfg, ctx.dataset)
    kept = events[valid_words(events, recordings, cfg, geometry(cfg, recordings[0].sfreq))]
    kept = kept[kept["word_idx"].isin(target_words)].sort_values("word_idx")
    if kept.empty:
        raise DataError("data.electrodes: no event with a target fits the lag grid")
    labels = np.array(
        [normalise_label(str(w), cfg.data.label_normalisation) for w in kept["word"]], dtype=object
    )
    return kept["word_idx"].to_numpy(np.int64), labels, kept["start"].to_numpy()


def responses(
    recordings: list[Recording], onsets_s: np.ndarray, sel: ElectrodeSelection
) -> np.ndarray:
    """Every candidate electrode's mean signal in the window after each event: [event,
    channel], NaN where the window leaves a recording."""
    sfreq = recordings[0].sfreq
    onsets = np.rint(onsets_s * sfreq).astype(np.int64)
    start, stop = (int(round(ms / 1000 * sfreq)) for ms in (sel.start, sel.stop))
    return np.concatenate(
        [r.window_means(onsets, start, max(stop, start + 1)) for r in recordings], axis=1
    )


def selection_of(cfg: Config) -> ElectrodeSelection:
    """The config's electrode selection (only called where it has one)."""
    selection = cfg.data.selection
    if selection is None:
        raise ConfigError(
            f"data.electrodes = {cfg.data.electrodes!r}: not a selection "
            "({select: encoding, ...})"
        )
    return selection


def fit_rows(cfg: Config, labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(fold number, rows) of each fit: (0, every row) for fit: all; each training fold's
    training rows for fit: train."""
    if selection_of(cfg).fit == "all":
        return [(0, np.arange(len(labels)))]
    return [(fold.number, fold.train) for fold in folds_for(cfg, labels)]


# ---------------------------------------------------------------- the store


def build_selection(ctx: Resolved, targets, tmp: Path) -> dict:
    """Write the selection store of a resolved config (targets: its targets Dataset) at
    `tmp`, and its figures beside it; return provenance extras."""
    import xarray as xr

    cfg, sel = ctx.cfg, selection_of(ctx.cfg)
    recordings = open_recordings(ctx.dataset, ctx.subjects, ctx.electrodes, cfg.data.signal)
    words, labels, onsets = event_rows(ctx, recordings, targets["word"].values)
    y = responses(recordings, onsets, sel)
    x = targets["target"].sel(word=words).values
    usable = np.isfinite(y).all(axis=1)
    fits = fit_rows(cfg, labels)
    stats = [
        encoding_test(
            x[rows[usable[rows]]],
            y[rows[usable[rows]]],
            sel,
            np.random.default_rng([sel.seed, number]),
        )
        for number, rows in fits
    ]
    r = np.stack([s[0] for s in stats])
    p = np.stack([s[1] for s in stats])
    q, selected = zip(*(choose(row, sel) for row in p))
    channels = [f"{sub_label(rec.subject)}:{n}" for rec in recordings for n in rec.channels]
    xyz, _ = channel_coordinates(ctx.dataset.root, channels)
    ds = xr.Dataset(
        {
            "r": (("fold", "channel"), r.astype(np.float32)),
            "p": (("fold", "channel"), p),
            "q": (("fold", "channel"), np.stack(q)),
            "selected": (("fold", "channel"), np.stack(selected)),
        },
        coords={
            "fold": [n for n, _ in fits],
            "channel": np.array(channels, dtype=object),
            "subject": ("channel", [rec.subject for rec in recordings for _ in rec.channels]),
            "name": (
                "channel",
                np.array([n for rec in recordings for n in rec.channels], dtype=object),
            ),
            "mni": (("channel", "axis"), xyz),
            "axis": np.array(list("xyz"), dtype=object),
            "word": words,
        },
    )
    write_dataset(tmp, ds, chunk_words=max(1, len(words)))
    plot_selection(ds, tmp.parent / "electrodes")
    plot_correlations(ds, tmp.parent / "correlations")
    counts = ds["selected"].sum("channel").values.tolist()
    return {
        "fit": sel.fit,
        "selected_per_fold": counts,
        "note": f"{'/'.join(map(str, counts))} of {len(channels)} electrodes selected",
    }


def union(ds) -> np.ndarray:
    """Channels selected in any fold (the epochs' electrodes)."""
    return ds["channel"].values[ds["selected"].values.any(axis=0)]


def electrode_table(ds, nyu_ids: dict[int, int]) -> pd.DataFrame:
    """The reference's CSV format for the electrodes selected in any fold: subject (NYU id),
    elec, and the folds that selected each (`all` for fit: all)."""
    chosen = ds["selected"].values.any(axis=0)
    folds = [
        " ".join(
            "all" if f == 0 else str(f) for f in ds["fold"].values[ds["selected"].values[:, c]]
        )
        for c in np.flatnonzero(chosen)
    ]
    return pd.DataFrame(
        {
            "subject": [nyu_ids[int(s)] for s in ds["subject"].values[chosen]],
            "elec": [str(n) for n in ds["name"].values[chosen]],
            "selected_in": folds,
        }
    )


def write_csv(ds, nyu_ids: dict[int, int], path: Path) -> pd.DataFrame:
    """Write `electrode_table` at `path` (a DataError when nothing is selected)."""
    table = electrode_table(ds, nyu_ids)
    if table.empty:
        raise DataError(
            f"data.electrodes: the encoding selection selected no electrode of "
            f"{ds.sizes['channel']} (every fold); raise alpha, use correction: none "
            "or check the response window"
        )
    table.to_csv(path, index=False)
    return table


def selected_csv(stores_root: Path, key: str) -> Path:
    """Where the epochs' electrode CSV of a selection store lives (under output.stores)."""
    return Path(stores_root) / RESPONSIVE_FOLDER / f"selected-{key[:16]}.csv"


def selection_mask(selection, channels: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Each fold's selected electrodes among the latents' `channels`: bool [fold, channel]. The
    selection's words must be the run's (else its folds are not the run's)."""
    if not np.array_equal(selection["word"].values, words):
        raise StoreError(
            f"selection store {selection.encoding.get('source', '')}: its "
            f"{selection.sizes['word']} events differ from the run's {len(words)}; "
            "rebuild it (podbench stores gc, then build-features)"
        )
    return selection["selected"].sel(channel=channels).values


# ---------------------------------------------------------------- figures


def plot_selection(ds, path: Path) -> list[Path]:
    """Every candidate electrode of each subject on MNI y (anterior) and z (superior), the
    selected ones coloured by the share of fits that chose them."""
    from podbench.plotting import figure, save

    subjects = sorted(set(ds["subject"].values.tolist()))
    share = ds["selected"].values.mean(axis=0)
    xyz = ds["mni"].values
    cols = min(3, len(subjects))
    rows = -(-len(subjects) // cols)
    with figure(height=2.2 * rows, nrows=rows, ncols=cols, squeeze=False) as (fig, axes):
        for ax, sub in zip(axes.flat, subjects):
            mine = ds["subject"].values == sub
            on = mine & (share > 0)
            ax.scatter(xyz[mine, 1], xyz[mine, 2], s=6, c="lightgrey", label="candidate")
            dots = ax.scatter(
                xyz[on, 1],
                xyz[on, 2],
                s=14,
                c=share[on],
                cmap="viridis",
                vmin=0,
                vmax=1,
                label="selected",
            )
            ax.set_title(f"{sub_label(sub)}: {int(on.sum())} of {int(mine.sum())}")
            ax.set_xlabel("MNI y (mm)")
            ax.set_ylabel("MNI z (mm)")
        for ax in list(axes.flat)[len(subjects) :]:
            ax.set_visible(False)
        fig.colorbar(dots, ax=axes, label="share of fits selecting it", shrink=0.8)
        return save(fig, path)


def plot_correlations(ds, path: Path) -> list[Path]:
    """Each electrode's held-out encoding r (mean over fits), subjects side by side, the
    selected ones marked."""
    from podbench.plotting import figure, save

    r = ds["r"].values.mean(axis=0)
    chosen = ds["selected"].values.any(axis=0)
    index = np.arange(len(r))
    with figure(height=2.6) as (fig, ax):
        ax.scatter(index[~chosen], r[~chosen], s=5, c="lightgrey", label="not selected")
        ax.scatter(index[chosen], r[chosen], s=9, c="C3", label="selected (any fit)")
        for sub in sorted(set(ds["subject"].values.tolist())):
            first = int(np.flatnonzero(ds["subject"].values == sub)[0])
            ax.axvline(first - 0.5, color="grey", lw=0.5)
            ax.text(first, ax.get_ylim()[1], sub_label(sub), fontsize=7, va="top")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("electrode (subjects in order)")
        ax.set_ylabel("held-out encoding r")
        ax.legend(loc="lower right")
        return save(fig, path)
