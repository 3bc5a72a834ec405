"""A config resolved once per command: its dataset, subjects, electrodes and task.

`resolve(cfg)` reads the dataset layer once; the stage keys, the store builds, the epochs and
the latents receive the `Resolved` instead of re-reading participants, electrode CSVs and
recordings' presence from the config each time.
"""

from __future__ import annotations

from dataclasses import dataclass

from podbench.config import Config
from podbench.data.dataset import Dataset
from podbench.data.recordings import resolve_electrodes, resolve_subjects
from podbench.features.fingerprints import Fingerprints
from podbench.tasks import Task, task_for


@dataclass
class Resolved:
    """A config with what it selects resolved."""

    cfg: Config
    dataset: Dataset
    subjects: list[int]
    electrodes: str | None  # a regex, an absolute electrode CSV path, or None (all)
    task: Task
    fingerprints: Fingerprints


def resolve(cfg: Config | Resolved) -> Resolved:
    """Resolve `cfg` (a Resolved is returned as it is)."""
    if isinstance(cfg, Resolved):
        return cfg
    dataset = Dataset(cfg.data.root)
    electrodes = resolve_electrodes(dataset, cfg.data.picks, cfg.output.stores)
    subjects = resolve_subjects(dataset, cfg.data.subjects, electrodes, cfg.data.signal)
    return Resolved(
        cfg,
        dataset,
        subjects,
        electrodes,
        task_for(cfg),
        Fingerprints(cfg.output.stores, dataset.root),
    )
