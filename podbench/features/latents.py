"""The latents stage: the configured preprocessor applied to every lag slice of the epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from podbench import registry
from podbench.errors import StoreError
from podbench.features.context import Resolved
from podbench.features.keys import StageSpec
from podbench.features.preprocessors import EpochsContext
from podbench.features.store import reading, write_dataset
from podbench.progress import progress


def epochs_context(epochs, ctx: Resolved) -> EpochsContext:
    return EpochsContext(
        sfreq=float(epochs.attrs["sfreq"]),
        window=int(epochs.attrs["window_samples"]),
        channels=[str(c) for c in epochs["channel"].values],
        subjects=[int(s) for s in epochs["subject"].values],
        root=str(ctx.dataset.root),
        overrides=ctx.cfg.overrides,
    )


def build_latents(ctx: Resolved, spec: StageSpec, epochs, tmp: Path) -> dict:
    """Write the latents of a resolved config computed from the epochs Dataset; return
    provenance extras."""
    import xarray as xr

    cfg = ctx.cfg
    entry = registry.preprocessors.entry(cfg.preprocess.name)
    params = cfg.preprocess.params
    epochs_ctx = epochs_context(epochs, ctx)
    transform = entry.obj(params, epochs_ctx)
    dims = entry.spec.dims
    standardise = entry.spec.standardise(params)
    window = epochs_ctx.window
    starts = [int(s) for s in epochs.attrs["lag_starts"]]
    lags = np.array(epochs.attrs["lags_ms"], dtype=np.int64)
    n_words = epochs.sizes["word"]
    source = Path(epochs.encoding.get("source", "(epochs)"))
    word_chunk = int(epochs["ecog"].encoding.get("chunks", (n_words,))[0])
    sums = sq = count = None
    bar = progress(n_words * len(starts), f"latents ({cfg.preprocess.name})", unit="window")
    for lo in range(0, n_words, word_chunk):
        block = epochs.isel(word=slice(lo, lo + word_chunk))
        with reading(source):
            x = block["ecog"].values
        if not np.isfinite(x).all():
            raise StoreError(
                f"epochs store {source}: words {lo}..{lo + len(x)} hold non-finite "
                "samples (a missing or damaged chunk?); no latents were published; "
                "run `podbench stores verify`"
            )
        slices = []
        for s in starts:
            slices.append(transform(x[..., s : s + window]))
            bar.update(len(x))
        out = np.stack(slices, axis=1)
        if standardise == "all":
            axes = (0, 3) if out.ndim == 4 else (0,)
            s64 = out.astype(np.float64)
            sums = s64.sum(axes) if sums is None else sums + s64.sum(axes)
            sq = (s64**2).sum(axes) if sq is None else sq + (s64**2).sum(axes)
            count = (0 if count is None else count) + out.shape[0] * (
                out.shape[3] if out.ndim == 4 else 1
            )
        coords = {
            "word": block["word"].values,
            "label": ("word", block["label"].values.astype(object)),
            "onset": ("word", block["onset"].values, {"units": "s"}),
        }
        part = xr.Dataset({"latent": (("word", "lag", *dims), out)}, coords=coords)
        if lo == 0:
            part = part.assign_coords(
                lag=("lag", lags, {"units": "ms", "long_name": "lag relative to the event onset"})
            )
            if "channel" in dims:
                part = part.assign_coords(
                    channel=epochs["channel"].values.astype(object),
                    subject=("channel", epochs["subject"].values),
                )
        # Same word chunks as the epochs, so every append fills whole zarr chunks.
        write_dataset(tmp, part, word_chunk, append=lo > 0)
    bar.close()
    if standardise == "all":
        assert sums is not None and sq is not None and count is not None  # (words were read)
        mean = sums / count
        std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
        std[std < 1e-12] = 1.0
        stats = xr.Dataset(
            {
                "norm_mean": (("lag", dims[0]), mean.astype(np.float32)),
                "norm_std": (("lag", dims[0]), std.astype(np.float32)),
            }
        )
        stats.to_zarr(tmp, zarr_format=3, consolidated=False, mode="a")
    extras = {"standardise": standardise, "dims": ["word", "lag", *dims]}
    if hasattr(transform, "note"):  # e.g. the foundation preprocessor's forward-pass count
        extras["note"] = transform.note()
    return extras
