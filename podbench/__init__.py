"""podbench: word decoding from the Podcast ECoG dataset (OpenNeuro ds005574).

A cached zarr/xarray feature store (epochs, targets, latents keyed by config hashes) and a
JAX/Flax lane trainer that trains every (lag, fold, member) of a run in one compiled program.
"""

__version__ = "0.1.0"
