"""Registered decoders (Flax NNX modules and closed-form models)."""

from podbench.models import linear, mlp, pitom, ridge, time_pool  # noqa: F401  (registration)
