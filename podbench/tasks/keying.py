"""A task's keying: what of a task the store layer hashes, apart from the task's science.

A task (`podbench.tasks.base.Task`) is the science: its events, targets, head, loss, metrics,
stopping rule and chance. What of it enters the keys is asked of its keying object alone,
`task.keying` (a `TaskKeying`, or the subclass its class names in `keying_class`):

- `events(cfg)`: what defines its events; enters the epochs key (all word tasks share one);
- `targets(cfg, dataset)`: what its targets store depends on besides the files it reads
  (fingerprinted from `Task.target_sources`); targets fitted inside training folds
  (`Task.per_fold`) also depend on the folds, which podbench.features.keys adds;
- `training(cfg, fingerprint)`: the task and model settings of the training key (a results
  folder's id), files named by settings by their content;
- `program(cfg)`: what a compiled program takes from the task: tasks with equal program keys
  (and equal events) train as lanes of one program (podbench.train.run.program_signature).

Which config fields enter which key is declared on the config fields themselves
(`podbench.config.Keyed`); this object says what of the task's own settings and files does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podbench.config import Config
from podbench.data.dataset import Dataset

if TYPE_CHECKING:
    from podbench.tasks.base import Task

Fingerprint = Callable[[list[Path]], Any]  # files -> their content digests


class TaskKeying:
    """What of a task enters the stage keys and the program signature.

    Parameters
    ----------
    task : podbench.tasks.base.Task
        The task it keys; its methods read the task's science (head, loss, classes, the
        target source) from it.
    """

    def __init__(self, task: Task) -> None:
        self.task = task

    def events(self, cfg: Config) -> dict:
        """What defines the events (enters the epochs key; equal for all word tasks).

        Parameters
        ----------
        cfg : podbench.config.Config
            The config of one task.

        Returns
        -------
        dict
            By default the transcript's words, ``{"kind": "words"}``.
        """
        return {"kind": "words"}

    def targets(self, cfg: Config, dataset: Dataset) -> dict:
        """What the targets store depends on besides the files it reads and the folds.

        Parameters
        ----------
        cfg : podbench.config.Config
            The config of one task.
        dataset : podbench.data.dataset.Dataset
            The dataset read.

        Returns
        -------
        dict
            The targets key's fragment (a task with targets of its own overrides it).
        """
        raise NotImplementedError(f"{type(self).__name__} keys no targets")

    def training(self, cfg: Config, fingerprint: Fingerprint) -> dict:
        """The task and model settings of the training key (a results folder's id).

        Parameters
        ----------
        cfg : podbench.config.Config
            The config of one task.
        fingerprint : callable
            ``paths -> digests``: files' content digests, for settings that name files.

        Returns
        -------
        dict
            By default ``task_params`` and the ``model`` section as they are.
        """
        return {"task_params": cfg.task_params, "model": dataclasses.asdict(cfg.model)}

    def program(self, cfg: Config) -> dict:
        """What a compiled program takes from the task.

        Parameters
        ----------
        cfg : podbench.config.Config
            The config of one task.

        Returns
        -------
        dict
            Its head, loss, early stopping rule and direction; subclasses add what fixes the
            targets' shape.
        """
        kind = type(self.task)
        return {
            "head": self.task.head,
            "loss": f"{kind.loss.__module__}.{kind.loss.__qualname__}",
            "stop": f"{kind.stop_value.__module__}.{kind.stop_value.__qualname__}",
            "stop_mode": self.task.stop_mode,
        }
