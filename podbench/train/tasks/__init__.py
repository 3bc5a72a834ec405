"""Registered tasks. A task is one module here (or in a plugin) with one registered class."""

from podbench.train.tasks import word_embedding  # noqa: F401  (registration)
from podbench.train.tasks.base import Task, task_for

__all__ = ["Task", "task_for"]
