"""A config's runs (`podbench train`, `podbench.api.train`): build or reuse the feature stores,
train every lane, evaluate, write results.

A config with several tasks trains them over one epochs/latents build; tasks whose compiled
programs have equal shapes train as lanes of one program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from podbench.config import Config
from podbench.experiments.engines import Engine, LocalEngine
from podbench.features.preflight import preflight
from podbench.train.run import RunResult, programs_of


def train_config(
    cfg: Config,
    force: bool = False,
    log: Callable[[str], None] = print,
    engine: Engine | None = None,
) -> RunResult | list[RunResult]:
    """Build or reuse the stores, train all lanes, evaluate, write results/<trial>/<run-id>,
    on `engine` (default: in this process).

    A config that lists several tasks gives one result per task, in its order; tasks whose
    programs have equal shapes train as lanes of one program, over one epochs/latents build.
    Every task's inputs and both output roots are checked before anything is built.
    """
    configs = cfg.task_configs()
    preflight(configs, results=True)
    programs = programs_of(configs)
    if cfg.several_tasks:
        log(
            f"{len(configs)} tasks in {len(programs)} program(s): "
            + "; ".join(" + ".join(cast(str, c.task) for c in p.configs) for p in programs)
        )
    with engine or LocalEngine(log) as chosen:
        results = chosen.run_programs(programs, force)
    out = [results[i] for i in range(len(configs))]
    return out if cfg.several_tasks else out[0]
