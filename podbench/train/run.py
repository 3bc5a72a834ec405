"""One unit of training work: configs that share a program signature, trained as lanes of one
compiled program, each writing its own results folder.

`train_points(configs)` is a plain function of configs and the store/result roots, so an
engine can run it on any node that sees them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from podbench import registry
from podbench.config import Config, keyed_dict, keyed_fields
from podbench.features.build import Features, build_features
from podbench.features.preflight import preflight
from podbench.publish import locked
from podbench.specs import BuildClosedForm
from podbench.tasks import Task, task_for
from podbench.train.execute import LaneResults, train_closed_form, train_lanes
from podbench.train.inputs import (
    ProgramInputs,
    RunInputs,
    merge_inputs,
    permutation_seed,
    prepare,
)
from podbench.train.lanes import LaneTable, lane_point, lay_out
from podbench.train.memory import PeakRss, release_free_memory
from podbench.train.snapshots import Snapshots
from podbench.train.warm import warm_start


@dataclass
class RunResult:
    run_dir: Path
    performance: object  # pandas DataFrame: the lag_performance table
    skipped: bool


# the fields marked per lane (podbench.config.Keyed: the learning rate, weight decay, seed)
PER_LANE = tuple(path for path, keyed in keyed_fields() if keyed and keyed.program == "lane")


def per_lane_fields(cfg: Config) -> tuple[str, ...]:
    """Fields that can differ between points trained as lanes of one program: PER_LANE and
    the decoder's dropout parameter (its spec's `dropout`).

    The seed is per lane unless it also decides the folds (zero-shot) or the target shuffle
    (a shuffle without its own `training.permutation_seed`).
    """
    t = cfg.training
    seed_shapes_data = t.fold_type == "zero_shot" or (
        t.shuffle_targets and t.permutation_seed is None
    )
    dropout = registry.models.spec(cfg.model.name).dropout
    fields = (*PER_LANE, *([f"model.params.{dropout}"] if dropout else []))
    return tuple(f for f in fields if not (f == "training.seed" and seed_shapes_data))


def program_signature(cfg: Config) -> str:
    """Configs with equal signatures share epochs, latents, shapes and schedule: one program.

    The task enters only through what the compiled program takes from it (its keying's
    `program`) and its events, so tasks or target settings with equal shapes pack together;
    each point keeps its own targets (unless podbench selects the electrodes from the
    targets)."""
    from podbench.features.keys import canonical_json

    task = task_for(cfg)
    # the fields each marker (podbench.config.Keyed) keeps in; the electrodes a selection
    # chooses depend on the targets: then they stay in the signature
    kept = ("shared", "lane", "targets") if cfg.data.selection else ("shared", "lane")
    raw = keyed_dict(cfg, lambda keyed: keyed.program in kept)
    raw["task_program"] = task.keying.program(cfg)
    raw["events"] = task.keying.events(cfg)
    if not registry.models.spec(cfg.model.name).closed_form:
        for dotted in per_lane_fields(cfg):
            *parents, leaf = dotted.split(".")
            node = raw
            for part in parents:
                node = node[part]
            node.pop(leaf, None)
    return canonical_json(raw)


@dataclass
class Program:
    """A program: configs (sweep points, tasks) that share a program signature, trained
    together as lanes of one compiled program (a `podbench.train.program.CompiledProgram`,
    on their merged `podbench.train.inputs.ProgramInputs`); the unit an engine runs.
    `indices`: each config's position among the command's points; `quiet`: per config,
    whether its closing table is left out of the log (a benchmark's retrained null points)."""

    indices: list[int]
    configs: list[Config]
    quiet: list[bool] = field(default_factory=list)


ProgramHook = Callable[[int, Program], None]  # called with a program's number (from 1) and it


def programs_of(configs: list[Config], quiet: Collection[int] = ()) -> list[Program]:
    """The programs of these configs: configs packed by program signature, in
    first-appearance order; the configs at the indices `quiet` train without logging their
    closing tables."""
    programs: dict[str, Program] = {}
    for i, cfg in enumerate(configs):
        program = programs.setdefault(program_signature(cfg), Program([], []))
        program.indices.append(i)
        program.configs.append(cfg)
        program.quiet.append(i in quiet)
    return list(programs.values())


def train_points(
    cfgs: list[Config],
    force: bool = False,
    log: Callable[[str], None] = print,
    quiet: Sequence[bool] = (),
) -> list[RunResult]:
    """Train configs that share one program signature together, as lanes of one program.

    Each config (a sweep point, or a task) gets its own results folder; points whose results
    are complete are skipped unless `force`. Each results folder is locked while it is trained
    and written, so a second identical run waits and then finds it complete.

    Parameters
    ----------
    cfgs : list of podbench.config.Config
        Configs with one program signature: one program's (``programs_of`` packs them).
    force : bool, default False
        Train again even where a results folder is complete.
    log : callable, default print
        Called with each progress and report line.
    quiet : sequence of bool, optional
        Per config, True to leave its closing table and "already complete" line out of the
        log (default: every config logs them).

    Returns
    -------
    list of RunResult
        One per config, in order: its results folder, lag table and whether it was skipped.
    """
    import pandas as pd

    from podbench.features.context import resolve
    from podbench.features.keys import run_dir_of, stage_keys
    from podbench.train import results

    if len({program_signature(c) for c in cfgs}) != 1:
        raise ValueError("train_points needs configs with one program signature")
    t0 = time.perf_counter()
    quiet = list(quiet) or [False] * len(cfgs)
    preflight(cfgs, results=True)
    resolved = [resolve(c) for c in cfgs]  # dataset, subjects, electrodes: read once
    keys = [stage_keys(r) for r in resolved]
    features: dict[str, Features] = {}  # one per targets store
    for r, k in zip(resolved, keys):
        if k["targets"] not in features:
            features[k["targets"]] = build_features(r, log=log)
    dirs = [run_dir_of(c, k["training"]) for c, k in zip(cfgs, keys)]
    out: list[RunResult | None] = [None] * len(cfgs)
    pending = []
    for i, run_dir in enumerate(dirs):
        if results.is_complete(run_dir) and not force:
            if not quiet[i]:
                log(f"results already complete: {run_dir} (use --force to train again)")
            out[i] = RunResult(run_dir, pd.read_csv(run_dir / "lag_performance.csv"), True)
        else:
            pending.append(i)
    if not pending:
        return cast("list[RunResult]", out)  # every slot is filled
    with ExitStack() as held:
        stamps = {i: _stamp(dirs[i]) for i in pending}
        for run_dir in sorted({dirs[i] for i in pending}):
            if held.enter_context(locked(run_dir)):
                log(f"waited for another run of {run_dir}")
        for i in list(pending):
            if results.is_complete(dirs[i]) and (not force or _stamp(dirs[i]) != stamps[i]):
                if not quiet[i]:
                    log(f"results already complete: {dirs[i]} (another run wrote them)")
                out[i] = RunResult(dirs[i], pd.read_csv(dirs[i] / "lag_performance.csv"), True)
                pending.remove(i)
        if pending:
            _train_pending(cfgs, keys, features, dirs, pending, out, t0, log, quiet)
    return cast("list[RunResult]", out)  # _train_pending filled the rest


def _stamp(run_dir: Path) -> tuple | None:
    """Identity of a published results folder (its marker's inode and time), None if absent."""
    from podbench.train.results import RUN_MARKER

    try:
        st = (run_dir / RUN_MARKER).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _train_pending(
    cfgs: list[Config],
    keys: list[dict],
    features: dict[str, Features],
    dirs: list[Path],
    pending: list[int],
    out: list,
    t0: float,
    log: Callable[[str], None],
    quiet: list[bool],
) -> None:
    """Train the pending points as lanes of one program and publish their results folders
    (the closing tables of those not `quiet` logged)."""
    from podbench.train import results

    base = cfgs[0]
    t1 = time.perf_counter()
    laid = lay_out_program([cfgs[i] for i in pending], [keys[i] for i in pending], features, log)
    inputs, entry_of = laid.inputs, laid.entry_of
    snapshots = Snapshots.of_program(
        base.output.stores,
        [keys[i]["training"] for i in pending],
        base.training.snapshot_every_s,
        log,
    )
    release_free_memory(collect=False)  # its RSS at the start: what the process holds
    with PeakRss() as rss:
        res = fit_program(base, laid, laid.table, log, snapshots)
    memory = {  # the program's: the process at its start (inputs prepared) and at its peak
        "rss_start": rss.start_bytes,
        "rss_peak": rss.peak,
        "inputs": int(laid.program_inputs.x.nbytes),
        "program_lanes": len(laid.table),
    }
    fold_numbers = [f.number for f in inputs[0].folds]
    for point, i in enumerate(pending):
        t2 = time.perf_counter()
        point_task = task_for(cfgs[i])
        long = results.score_lanes(cfgs[i], point_task, inputs[entry_of[point]], res, point)
        perf = results.lag_performance(long, fold_numbers)
        timings = {
            "features": round(t1 - t0, 3),
            "training": round(res.seconds, 3),
            "evaluation": round(time.perf_counter() - t2, 3),
            "points_in_program": len(pending),
        }
        sizes = {
            "words": len(inputs[entry_of[point]].words),
            "folds": len(fold_numbers),
            "electrodes": int(features[keys[i]["targets"]].open("epochs").sizes["channel"]),
            "input_elements": math.prod(inputs[entry_of[point]].x.shape[2:]),
            "input_shape": [int(n) for n in inputs[entry_of[point]].x.shape[2:]],
        }
        results.write_run(
            dirs[i],
            cfgs[i],
            keys[i],
            long,
            perf,
            point_task,
            inputs[entry_of[point]],
            res,
            point,
            timings,
            fold_numbers,
            sizes,
            memory,
        )
        if not quiet[i]:
            log(summary_table(perf, point_task, cfgs[i]))
            log(f"results ({cfgs[i].task}): {dirs[i]}")
        out[i] = RunResult(dirs[i], perf, False)
    snapshots.clear()  # every point's results are written


@dataclass
class LaidOut:
    """A program's points ready to train: the inputs of each targets entry, each point's
    entry, the merged program inputs and the lanes (every point x lag x fold x member
    lane)."""

    task: Task
    inputs: list[RunInputs]
    entry_of: list[int]  # per point: its entry in `inputs`
    program_inputs: ProgramInputs
    table: LaneTable
    group: int  # members per lane


def lay_out_program(
    cfgs: list[Config],
    keys: list[dict],
    features: dict[str, Features],
    log: Callable[[str], None] = print,
) -> LaidOut:
    """Prepare the points `cfgs` of one program (their stage keys `keys`, their targets
    stores' `features`) as lanes of one program."""
    base = cfgs[0]
    task = task_for(base)
    entries: dict[tuple, int] = {}  # (targets key, null targets) -> entry
    inputs: list[RunInputs] = []
    for cfg, k in zip(cfgs, keys):
        if entry_key(cfg, k) not in entries:
            entries[entry_key(cfg, k)] = len(inputs)
            inputs.append(prepare(cfg, features[k["targets"]]))
    entry_of = [entries[entry_key(cfg, k)] for cfg, k in zip(cfgs, keys)]
    program_inputs = merge_inputs(inputs, entry_of)
    closed = registry.models.spec(base.model.name).closed_form
    members = 1 if closed else base.model.members
    group = members if base.model.ensemble == "joint" and not closed else 1
    table = lay_out(inputs[0].lags, inputs[0].folds, members, group, [lane_point(c) for c in cfgs])
    log(
        f"training {len(table)} lanes ({len(cfgs)} point(s) x {len(inputs[0].lags)} lags x "
        f"{len(inputs[0].folds)} folds x {members // group} member lanes of {group}) on "
        f"{len(program_inputs.x)} events, inputs {tuple(program_inputs.x.shape[2:])}"
    )
    return LaidOut(task, inputs, entry_of, program_inputs, table, group)


def fit_program(
    cfg: Config,
    laid: LaidOut,
    table: LaneTable,
    log: Callable[[str], None] = print,
    snapshots: Snapshots | None = None,
) -> LaneResults:
    """Train the lanes `table` (the program's, or some of them) of a laid-out program with
    `cfg`'s decoder and schedule: one closed-form fit per lane, or epochs of the compiled
    program (from a warm start where the decoder has one)."""
    entry = registry.models.entry(cfg.model.name, "model.name")
    if entry.spec.closed_form:
        build: BuildClosedForm = entry.obj
        fit_predict = build(
            cfg.model.params,
            head=laid.task.head,
            output_dim=laid.task.output_dim(laid.program_inputs.y, cfg),
        )
        return train_closed_form(cfg, laid.task, laid.program_inputs, table, fit_predict)
    return train_lanes(
        cfg,
        laid.task,
        laid.program_inputs,
        table,
        laid.group,
        log,
        warm_start(cfg, table, laid.program_inputs),
        snapshots,
    )


def entry_key(cfg: Config, keys: dict) -> tuple:
    """Points with equal entry keys train on the same targets (one input entry)."""
    null = (cfg.training.shuffle_mode, permutation_seed(cfg))
    return keys["targets"], null if cfg.training.shuffle_targets else None


def summary_table(perf, task: Task, cfg: Config) -> str:
    """Closing table of one task: by lag, the validation metric that chooses the lag and the
    test headline (mean ± std over folds); the lag chosen on validation is marked."""
    chosen_by, head = task.selection_metric, task.headline
    n_folds = sum(c.startswith(f"{head}_fold_") for c in perf.columns)
    chosen = task.select_lag(perf)
    lines = [
        f"task {cfg.task} ({task.describe(cfg)}, {cfg.model.name}, {n_folds} folds): "
        f"lag chosen on {chosen_by} ({task.headline_mode}), {head} reported",
        f"{'lag (ms)':>9}  {chosen_by:>{len(chosen_by)}}  {head}",
    ]
    for i, row in perf.iterrows():
        mark = "  <- chosen on validation" if i == chosen else ""
        lines.append(
            f"{int(row['lags']):>9}  {row[f'{chosen_by}_mean']:>{len(chosen_by)}.4f}  "
            f"{row[f'{head}_mean']:.4f} ± {row[f'{head}_std']:.4f}{mark}"
        )
    return "\n".join(lines)
