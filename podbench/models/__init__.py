"""Registered decoders (Flax NNX modules and closed-form models)."""

from podbench.models import llm_prefix, mlp, pitom, ridge  # noqa: F401  (registration)
