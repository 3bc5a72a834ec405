"""The targets stage: the task's target table written as a store (one chunk: targets are small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from podbench.config import Config
from podbench.data.dataset import Dataset
from podbench.features.store import write_dataset
from podbench.tasks import Task


def build_targets(
    cfg: Config, task: Task, dataset: Dataset, epoch_events: np.ndarray | None, tmp: Path
) -> dict:
    """Write the targets store of `cfg` at `tmp`; return the task's provenance attributes."""
    ds, attrs = task.target_dataset(cfg, dataset, epoch_events)
    write_dataset(tmp, ds, chunk_words=max(1, ds.sizes["word"]))
    return attrs
