"""`podbench train`: build or reuse the feature stores, train every lane, evaluate, write results.

A config with several tasks trains them over one epochs/latents build; tasks whose compiled
programs have equal shapes train as lanes of one program.
"""

from __future__ import annotations

from typing import Callable

from podbench.config import Config
from podbench.train.run import RunResult, train_points


def train(cfg: Config, force: bool = False,
          log: Callable[[str], None] = print) -> RunResult | list[RunResult]:
    """Build or reuse the stores, train all lanes, evaluate, write results/<trial>/<run-id>.

    A config that lists several tasks gives one result per task, in its order; tasks whose
    programs have equal shapes train as lanes of one program, over one epochs/latents build.
    Every task's inputs and both output roots are checked before anything is built.
    """
    from podbench.features.preflight import preflight

    preflight(cfg.task_configs(), results=True)
    if not cfg.several_tasks:
        return train_points([cfg], force=force, log=log)[0]
    from podbench.train.run import group_points

    configs = cfg.task_configs()
    out: list[RunResult | None] = [None] * len(configs)
    programs = group_points(configs)
    log(f"{len(configs)} tasks in {len(programs)} program(s): " + "; ".join(
        " + ".join(c.task for c in p.configs) for p in programs))
    for program in programs:
        for i, result in zip(program.indices, train_points(program.configs, force, log)):
            out[i] = result
    return out


