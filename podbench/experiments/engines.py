"""Engines: where the training programs of a command run.

`podbench train`, `sweep` and `benchmark` pack their points into programs
(`podbench.train.run.programs_of`) and hand them to an `Engine`, chosen by `--engine NAME
[--address ADDR]` through `engine(...)`: `local` trains them one after another in this
process; `ray` (`podbench.experiments.cluster.RayEngine`) builds their stores and trains
them as Ray tasks. Either gives the same results folders and logs the closing table of each
point that is not quiet (`Program.quiet`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from podbench.errors import ConfigError
from podbench.experiments.cluster import RayEngine
from podbench.train.run import Program, ProgramHook, RunResult, train_points


class Engine(Protocol):
    """Runs programs; entered (`with engine:`) around its runs, which may start a cluster."""

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc) -> None: ...

    def run_programs(
        self,
        programs: list[Program],
        force: bool = False,
        before: ProgramHook | None = None,
        after: ProgramHook | None = None,
    ) -> dict[int, RunResult]:
        """Train every point of `programs` without complete results (`force`: every point);
        `before` and `after` are called as each program it trains starts and ends. Returns
        each point's RunResult by its index (`Program.indices`)."""
        ...


@dataclass
class LocalEngine:
    """Trains the programs one after another in this process."""

    log: Callable[[str], None] = print

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run_programs(
        self,
        programs: list[Program],
        force: bool = False,
        before: ProgramHook | None = None,
        after: ProgramHook | None = None,
    ) -> dict[int, RunResult]:
        out: dict[int, RunResult] = {}
        for number, program in enumerate(programs, 1):
            if before is not None:
                before(number, program)
            trained = train_points(program.configs, force, self.log, program.quiet)
            out.update(zip(program.indices, trained))
            if after is not None:
                after(number, program)
        return out


def engine(
    name: str = "local", address: str | None = None, log: Callable[[str], None] = print
) -> Engine:
    """The engine `--engine NAME` names; `address`: the Ray cluster to join (ray only)."""
    if address is not None and name != "ray":
        raise ConfigError("--address needs --engine ray")
    if name == "local":
        return LocalEngine(log)
    if name == "ray":
        return RayEngine(address, log=log)
    raise ConfigError(f"--engine {name}: expected local or ray")
