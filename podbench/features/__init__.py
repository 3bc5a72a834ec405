"""The feature store: epochs, targets and latents stages, each a content-keyed zarr store."""
