"""Registered tasks. A task is one module here (or in a plugin) with one registered class."""

from podbench.tasks import (  # noqa: F401  (registration)
    content_word,
    iu_boundary,
    llm_decoding,
    loudness,
    part_of_speech,
    sentence_onset,
    surprisal,
    whisper_embedding,
    word_embedding,
)
from podbench.tasks.base import Task, task_for

__all__ = ["Task", "task_for"]
