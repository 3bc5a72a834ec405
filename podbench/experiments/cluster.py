"""The Ray engine: sweeps and feature builds as Ray core tasks on a cluster.

`podbench sweep --engine ray [--address ADDR]` runs the same sweep as the local engine (same
programs, same results folders, same summary.csv and plot), with the work spread over Ray:

- every distinct store the sweep needs is one task, `build_stage(cfg, stage)`, that builds
  it or finds it built (`build_features(cfg, stages=...)`); the targets and latents tasks
  take the epochs task's object ref as an argument, so Ray runs them after it;
- every training program (points sharing a program signature) is one task,
  `train_program(configs)`, that takes the object refs of its store tasks as arguments. It
  asks Ray for one GPU where the cluster has GPUs (else `cpus_per_program` CPUs) and for
  `program_memory(...)` bytes, computed from the real shapes of its stores, so Ray packs
  programs onto nodes; that is why it is submitted once its store tasks have returned.

Each task is a plain function of configs and the data, store and result roots, which every
node must see at the same path (`RayEngine.check_shared_storage` proves it at start).

Faults: a task whose worker process or node dies is retried by Ray (`max_retries`); podbench's
own errors (ConfigError, DataError, ...) are never retried. A retried build finds the store
its predecessor published (stores are published atomically under a per-key lock); a retried
program trains only the points without complete results (each point's folder is renamed into
place when complete), so nothing is duplicated, and an interrupted sweep started again with
the same command resumes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from podbench.config import Config
from podbench.errors import ConfigError, PodbenchError
from podbench.features.keys import run_dir_of, stage_keys
from podbench.train import results
from podbench.train.run import Program, ProgramHook, RunResult, summary_table, train_points

INSTALL_HINT = "pip install 'podbench[cluster]'"
BASE_MEMORY = 1 << 30  # one worker: Python, JAX/XLA runtime, podbench, compiled programs
DATA_COPIES = 4  # host copies of the training arrays (store read, float32, device, padding)
CHECK_TIMEOUT_S = 120
MARKER = ".podbench-shared-"
SYSTEM_ERRORS = (
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ObjectLostError",
    "OwnerDiedError",
    "RaySystemError",
)


def import_ray():
    """The `ray` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def program_memory(latents_shape, targets_shape) -> int:
    """Bytes a program task asks Ray for: BASE_MEMORY + DATA_COPIES x float32 inputs.

    A simple formula, not a bound: lanes' parameters and optimiser state are small next to
    the inputs, and the trainer sizes its lane chunks to the memory it finds.
    """
    data = 4 * (math.prod(latents_shape) + math.prod(targets_shape))
    return int(BASE_MEMORY + DATA_COPIES * data)


# --------------------------------------------------------------------------- task bodies
# Plain functions of configs and paths; Ray runs them on whichever node it picks.


@contextlib.contextmanager
def _in_dir(cwd: str):
    """Run in the driver's working directory (for relative config paths) if this node has it."""
    old = os.getcwd()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old)


def _where() -> dict:
    """The node id, IP and process id of the running task."""
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
    }


def build_stage(cfg: Config, stage: str, cwd: str, *after) -> dict:
    """Build or find the `stage` store of `cfg` (and the epochs store it reads).

    `after` are the results of the tasks it must follow (passed as object refs)."""
    from podbench.features.build import build_features

    stages = ("epochs",) if stage == "epochs" else ("epochs", stage)
    with _in_dir(cwd):
        report = build_features(cfg, log=print, stages=stages).reports[-1]
    return {
        "stage": report.stage,
        "key": report.key,
        "status": report.status,
        "shape": list(report.shape),
        "line": report.line(),
        **_where(),
    }


def train_program(
    configs: list[Config], force: bool, cwd: str, program_fn: Callable | None, *stores
) -> dict:
    """Train one program's points: those without complete results, or all with `force`.

    `program_fn(configs, force=, log=)` defaults to `podbench.train.run.train_points`;
    `stores` are the build tasks' results (passed as object refs, so Ray orders them)."""
    where, t0 = _where(), time.time()
    with _in_dir(cwd):  # its log goes to the worker's log file
        runs = (program_fn or train_points)(configs, force=force, log=print)
    return {
        **where,
        "started": t0,
        "seconds": time.time() - t0,
        "skipped": [bool(r.skipped) for r in runs],
    }


def check_node(checks: list[tuple[str, str, str | None]], version: str) -> dict:
    """On one node: read each marker file (token) or see each folder (None); list failures."""
    from podbench import __version__

    problems = []
    for label, path, token in checks:
        try:
            if token is None:
                if not Path(path).is_dir():
                    problems.append(f"{label} {path} is not a folder there")
            elif Path(path).read_text() != token:
                problems.append(f"{label}: {path} holds another marker")
        except OSError as exc:
            problems.append(f"{label}: cannot read {path} ({exc.strerror or exc})")
    if __version__ != version:
        problems.append(f"podbench {__version__} is installed there, {version} on the driver")
    return {**_where(), "problems": problems}


# --------------------------------------------------------------------------- driver


@dataclass
class ProgramRecord:
    """Where one program task ran, for how long, and which of its points it trained."""

    program: int
    points: list[int]
    run_dirs: list[Path]
    node_id: str
    ip: str
    seconds: float
    trained: list[int] = field(default_factory=list)


def _node(info: dict) -> str:
    return f"{info['ip']} (node {info['node_id'][:8]})"


class RayEngine:
    """Joins (or starts) Ray and runs a sweep's store builds and programs as Ray tasks.

    `address`: a cluster to join (`host:port`, `auto`, `ray://host:10001`); None joins
    $RAY_ADDRESS if set, else starts a local Ray instance. `close()` disconnects (and stops
    that instance); a process already connected to Ray keeps its connection.
    `cpus_per_program`: CPUs a program asks for on a cluster without GPUs.
    `program_fn`: what a program task runs (default `train_points`), e.g. to instrument it.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus_per_program: float = 1,
        max_retries: int = 3,
        program_fn: Callable | None = None,
        log: Callable[[str], None] = print,
    ):
        self.ray = import_ray()
        self.address = address
        self.cpus_per_program = cpus_per_program
        self.max_retries = max_retries
        self.program_fn = program_fn
        self.log = log
        self.records: list[ProgramRecord] = []
        self.builds: list[dict] = []
        self.startup_s: float | None = None
        self._owned = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Connect to Ray (or start it) and declare the remote functions."""
        ray = self.ray
        t0 = time.perf_counter()
        how = "using the Ray instance this process is connected to"
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or "local"
            extra = {"include_dashboard": False} if address == "local" else {}
            try:
                ray.init(
                    address=address, log_to_driver=False, logging_level=logging.WARNING, **extra
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(
                    f"--address {address}: cannot join a Ray cluster there ({exc})"
                ) from None
            self._owned = True
            how = "started a local Ray instance" if address == "local" else f"joined {address}"
        self.startup_s = time.perf_counter() - t0
        retry = [
            getattr(ray.exceptions, name) for name in SYSTEM_ERRORS if hasattr(ray.exceptions, name)
        ]
        common = {"max_retries": self.max_retries, "retry_exceptions": retry}
        self._build = ray.remote(num_cpus=1, **common)(build_stage)
        self._train = ray.remote(**common)(train_program)
        self._check = ray.remote(num_cpus=0, max_retries=0)(check_node)
        res = ray.cluster_resources()
        self.log(
            f"ray: {how} in {self.startup_s:.1f} s: {len(self.alive_nodes())} node(s), "
            f"{res.get('CPU', 0):g} CPU(s), {res.get('GPU', 0):g} GPU(s)"
        )

    def close(self) -> None:
        """Shut Ray down if this engine started or joined it."""
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned = False

    def alive_nodes(self) -> list[dict]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    # ------------------------------------------------------------------ shared storage

    def check_shared_storage(self, configs: list[Config]) -> None:
        """Write a marker file in every store and result root, and run one task per alive
        node (node affinity) that reads them and sees the data root; ConfigError if not."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from podbench import __version__

        ray, token = self.ray, uuid.uuid4().hex
        checks: list[tuple[str, str, str | None]] = []
        written: list[Path] = []

        def resolved(paths) -> list[Path]:
            return sorted({Path(p).expanduser().resolve() for p in paths})

        nodes, problems = self.alive_nodes(), []
        try:
            for label, roots in (
                ("output.stores", [c.output.stores for c in configs]),
                ("output.results", [c.output.results for c in configs]),
            ):
                for root in resolved(roots):
                    root.mkdir(parents=True, exist_ok=True)
                    marker = root / f"{MARKER}{token}"
                    written.append(marker)
                    marker.write_text(token)
                    checks.append((label, str(marker), token))
            checks += [
                ("data.root", str(root), None) for root in resolved(c.data.root for c in configs)
            ]
            refs = {
                self._check.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(checks, __version__): n
                for n in nodes
            }
            ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
            for ref in late:
                info = {"ip": refs[ref]["NodeManagerAddress"], "node_id": refs[ref]["NodeID"]}
                problems.append(f"node {_node(info)}: no answer within {CHECK_TIMEOUT_S} s")
                ray.cancel(ref, force=True)
            for ref in ready:
                info = {"ip": refs[ref]["NodeManagerAddress"], "node_id": refs[ref]["NodeID"]}
                try:
                    answer = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                    problems.append(
                        f"node {_node(info)}: the check task failed ({first}); "
                        "is podbench installed there?"
                    )
                    continue
                problems += [f"node {_node(answer)}: {p}" for p in answer["problems"]]
        finally:
            for marker in written:
                marker.unlink(missing_ok=True)
        if problems:
            raise ConfigError(
                "shared storage check failed: "
                + "; ".join(problems)
                + ". data.root, output.stores and output.results must be on storage "
                "that every Ray node mounts at the same path, with the same "
                "podbench installed on every node"
            )
        self.log(f"ray: all {len(nodes)} node(s) see data.root, output.stores and output.results")

    # ------------------------------------------------------------------ programs

    def program_options(self, latents_shape, targets_shape) -> dict:
        """Ray resources of one program: a GPU (or CPUs) and memory from `program_memory`."""
        nodes = self.alive_nodes()
        gpus = any(n["Resources"].get("GPU", 0) >= 1 for n in nodes)
        cpus = 1 if gpus else self.cpus_per_program
        if not any(n["Resources"].get("CPU", 0) >= cpus for n in nodes):
            raise ConfigError(f"a program asks for {cpus} CPU(s) but no Ray node has that many")
        memory = program_memory(latents_shape, targets_shape)
        largest = max(n["Resources"].get("memory", 0) for n in nodes)
        if memory > largest:
            self.log(
                f"ray: a program's memory estimate {memory / 2**30:.1f} GiB exceeds the "
                f"largest node's {largest / 2**30:.1f} GiB; asking for that instead"
            )
            memory = largest
        return {"num_cpus": cpus, "memory": memory, **({"num_gpus": 1} if gpus else {})}

    def _get(self, ref, what: str):
        """ray.get, re-raising podbench's own errors as themselves (CLI exit 2)."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, PodbenchError):
                raise type(cause)(f"{what}: {cause}") from None
            raise

    def run_programs(
        self,
        programs: list[Program],
        force: bool = False,
        before: ProgramHook | None = None,
        after: ProgramHook | None = None,
    ) -> dict[int, RunResult]:
        """Run programs (`podbench.experiments.engines.Engine.run_programs`) as Ray tasks after
        the tasks that build their stores; log one line per finished point, and a trained
        point's closing table. Each program's record is kept in `records`."""
        n_points = sum(len(p.indices) for p in programs)
        finished = 0
        todo = []
        dirs_of: dict[int, Path] = {}  # point index -> its results folder
        for number, program in enumerate(programs, 1):
            dirs = [run_dir_of(c, stage_keys(c)["training"]) for c in program.configs]
            dirs_of.update(zip(program.indices, dirs))
            if not force and all(results.is_complete(d) for d in dirs):
                for i, d in zip(program.indices, dirs):
                    finished += 1
                    self.log(f"[{finished}/{n_points}] point {i}: results already complete: {d}")
                continue
            todo.append((number, program, dirs))
        records = (
            self._run_todo(todo, len(programs), n_points, finished, force, before, after)
            if todo
            else []
        )
        self.records += records
        trained = {i for r in records for i in r.trained}
        return {
            i: self._result(cfg, dirs_of[i], i not in trained, quiet)
            for program in programs
            for i, cfg, quiet in zip(
                program.indices, program.configs, program.quiet or [False] * len(program.indices)
            )
        }

    def _result(self, cfg: Config, run_dir: Path, skipped: bool, quiet: bool) -> RunResult:
        """A point's RunResult from its results folder; a trained one's closing table logged
        unless it is `quiet`."""
        import pandas as pd

        from podbench.tasks import task_for

        perf = pd.read_csv(run_dir / "lag_performance.csv")
        if not skipped and not quiet:
            self.log(summary_table(perf, task_for(cfg), cfg))
            self.log(f"results ({cfg.task}): {run_dir}")
        return RunResult(run_dir, perf, skipped)

    def _run_todo(
        self,
        todo: list[tuple],
        n_programs: int,
        n_points: int,
        finished: int,
        force: bool,
        before: ProgramHook | None,
        after: ProgramHook | None,
    ) -> list[ProgramRecord]:
        """Build the stores of the programs in `todo` ((number, program, results folders)),
        then train each program once its stores are built; its programs' records."""
        ray = self.ray
        self.check_shared_storage([c for _, program, _ in todo for c in program.configs])
        cwd = os.getcwd()
        builds: dict[tuple[str, str], object] = {}
        labels: dict[object, str] = {}

        def build(cfg: Config, stage: str, key: str, *after):
            if (stage, key) not in builds:
                ref = self._build.remote(cfg, stage, cwd, *after)
                builds[stage, key], labels[ref] = ref, f"{stage} store {key[:12]}"
            return builds[stage, key]

        waiting = {}
        for number, program, dirs in todo:
            needs = []  # one epochs and latents store; a targets store per distinct target
            for cfg in program.configs:
                keys = stage_keys(cfg)
                epochs = build(cfg, "epochs", keys["epochs"])
                for ref in (
                    epochs,
                    build(cfg, "targets", keys["targets"], epochs),
                    build(cfg, "latents", keys["latents"], epochs),
                ):
                    if ref not in needs:
                        needs.append(ref)
            waiting[number] = (program, dirs, needs)
        self.log(f"ray: {len(builds)} store task(s), {len(todo)} program task(s)")
        built: dict[object, dict] = {}
        running: dict[object, tuple] = {}
        records = []
        try:
            while waiting or running or len(built) < len(builds):
                for number in [
                    n for n, (_, _, needs) in waiting.items() if all(r in built for r in needs)
                ]:
                    program, dirs, needs = waiting.pop(number)
                    by_stage = {built[r]["stage"]: built[r]["shape"] for r in needs}
                    options = self.program_options(by_stage["latents"], by_stage["targets"])
                    if before is not None:
                        before(number, program)
                    ref = self._train.options(**options).remote(
                        program.configs, force, cwd, self.program_fn, *needs
                    )
                    labels[ref] = f"program {number}/{n_programs} (points {program.indices})"
                    running[ref] = (number, program, dirs)
                pending = [r for r in builds.values() if r not in built] + list(running)
                ready, _ = ray.wait(pending, num_returns=1, timeout=5.0)
                for ref in ready:
                    if ref in running:
                        number, program, dirs = running.pop(ref)
                        out = self._get(ref, labels[ref])
                        record = ProgramRecord(
                            number,
                            list(program.indices),
                            dirs,
                            out["node_id"],
                            out["ip"],
                            out["seconds"],
                        )
                        for i, d, skipped in zip(program.indices, dirs, out["skipped"]):
                            finished += 1
                            if not skipped:
                                record.trained.append(i)
                            state = "already complete" if skipped else "trained"
                            self.log(
                                f"[{finished}/{n_points}] point {i} {state} on {_node(out)} "
                                f"(program {number}, {out['seconds']:.1f} s): {d}"
                            )
                        records.append(record)
                        if after is not None:
                            after(number, program)
                    else:
                        built[ref] = out = self._get(ref, labels[ref])
                        self.builds.append(out)
                        self.log(f"{out['line']}  on {_node(out)}")
        except BaseException:
            for ref in [r for r in builds.values() if r not in built] + list(running):
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        return records
