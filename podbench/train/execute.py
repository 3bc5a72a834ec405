"""Running lanes: the compiled program over chunks of lanes sized to the device, with the
working set compacted as lanes stop, and the closed-form path for decoders like ridge."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from podbench import registry
from podbench.config import Config
from podbench.errors import ConfigError
from podbench.specs import BuildTrained
from podbench.tasks import Task
from podbench.train.inputs import ProgramInputs, RunInputs, as_program_inputs, lane_inputs
from podbench.train.lanes import LaneTable
from podbench.train.snapshots import Resumed, Snapshots


@dataclass
class LaneResults:
    """What training leaves per lane: predictions for every word and the training record."""

    table: LaneTable
    group: int
    inputs: ProgramInputs
    preds: np.ndarray  # [L, G, N, D] best-parameter predictions for every row of inputs.x
    epochs: np.ndarray  # [L] epochs trained
    best_epoch: np.ndarray  # [L]
    best_score: np.ndarray  # [L] validation early-stopping metric at the best epoch
    state: dict  # host pytree of best parameters and statistics, leading axis L
    seconds: float
    widths: list = field(default_factory=list)  # per chunk: the working width of each epoch
    fit_steps: np.ndarray | None = None  # [L] closed form: the steps each lane's fit made
    epoch_seconds: list = field(default_factory=list)  # per chunk: each epoch's seconds (the
    # first at each width compiles it)
    chunk_lanes: list = field(default_factory=list)  # per chunk: how many lanes (in table order)
    compile_seconds: float = 0.0  # closed form: compiling the fit
    lane_bytes: int = 0  # what each lane holds while its program runs, by the program's
    # memory model: its state with the best copy and its inputs, twice (an epoch's input and
    # output), and its predictions (closed form: its inputs and predictions)


def device_memory(n_devices: int) -> float:
    """Bytes one device may use: its own limit, or its share of the host's available memory
    (CPU devices share it)."""
    import jax

    try:
        return float(jax.devices()[0].memory_stats()["bytes_limit"])
    except (TypeError, KeyError, AttributeError):
        import psutil

        return psutil.virtual_memory().available / n_devices


def memory_estimate(
    compiled, lanes_np, data, n_devices: int, exact: bool = True
) -> Callable[[int], float]:
    """Peak bytes per device of training a chunk of `width` lanes: the shared data, every
    lane's state and inputs twice (an epoch's input and output; measured so on CPU), and the
    temporaries of the lanes trained at once (all of a device's lanes under vmap, `lane_batch`
    of them under lax.map), exact from XLA or a cheap upper bound (see
    `CompiledProgram.memory_model`). Where compaction can move the working set through host memory
    that is also the device's (CPU), that copy counts too. Not counted: the compiler's own
    working memory (host memory; about 0.25 GB at the standard shapes)."""
    import jax

    data_bytes, held, flight = compiled.memory_model(lanes_np, data, exact)
    bank = compiled.lane_batch != 1 and jax.devices()[0].platform == "cpu"

    def estimate(width: int) -> float:
        per_device = -(-width // n_devices)
        at_once = (
            per_device if compiled.lane_batch is None else min(compiled.lane_batch, per_device)
        )
        return data_bytes + per_device * held * (3 if bank else 2) + at_once * flight

    return estimate


def choose_chunk(compiled, lanes_np, data, n_devices: int) -> int:
    """Lanes per chunk: all of them if the cheap upper bound says they fit, else the widest
    chunk XLA's exact estimate fits (one compilation of a single lane's epoch)."""
    n, limit = len(lanes_np.lr), device_memory(n_devices)
    chunk = auto_chunk(
        n, n_devices, memory_estimate(compiled, lanes_np, data, n_devices, False), limit
    )
    if chunk >= n:
        return chunk
    return auto_chunk(n, n_devices, memory_estimate(compiled, lanes_np, data, n_devices), limit)


def auto_chunk(n_lanes: int, n_devices: int, estimate: Callable[[int], float], limit: float) -> int:
    """The widest chunk (a multiple of the devices, at most every lane) whose estimate fits in
    half of `limit`; one lane per device at least."""
    width = -(-n_lanes // n_devices) * n_devices
    while width > n_devices and estimate(width) > 0.5 * limit:
        width -= n_devices
    return width


def _model_builder(cfg: Config, input_shape: tuple, output_dim: int, head: str, frozen=None):
    """rngs -> a lane's network of the config's trained decoder."""
    entry = registry.models.entry(cfg.model.name, "model.name")
    build: BuildTrained = entry.obj
    dims = entry.spec.input_dims
    if dims is not None and len(dims) != len(input_shape):
        raise ConfigError(
            f"model.name = {cfg.model.name!r} takes latents with dims {dims}; "
            f"preprocess.name = {cfg.preprocess.name!r} gives {len(input_shape)}-d "
            "inputs per lag"
        )
    extra = {"frozen": frozen} if entry.spec.uses_frozen else {}
    return lambda rngs: build(
        cfg.model.params,
        input_shape=input_shape,
        output_dim=output_dim,
        head=head,
        rngs=rngs,
        **extra,
    )


def lane_batch(cfg: Config) -> int | None:
    """Lanes vmapped together on one device: all (None) on accelerators; one at a time on
    CPU, where vmapped small convolutions run slower than a sequence of single-lane steps."""
    import jax

    if isinstance(cfg.training.lane_batch, int):
        return cfg.training.lane_batch
    return 1 if jax.devices()[0].platform == "cpu" else None


def device_data(cfg: Config, task: Task, inputs: RunInputs | ProgramInputs):
    """The arrays every lane of a program shares (`podbench.train.program.Data`), on the
    device: latents, targets, each fold's standardisation statistics (and electrode masks)
    and, for a decoder that uses it, the task's frozen pytree."""
    import jax.numpy as jnp

    from podbench.train.program import Data

    uses_frozen = registry.models.spec(cfg.model.name, "model.name").uses_frozen
    keep = as_program_inputs(inputs).keep
    return Data(
        jnp.asarray(inputs.x),
        jnp.asarray(inputs.y),
        jnp.asarray(inputs.norm_mean),
        jnp.asarray(inputs.norm_std),
        task.frozen(cfg) if uses_frozen else None,
        None if keep is None else jnp.asarray(keep),
    )


def compile_program(
    cfg: Config,
    task: Task,
    inputs: RunInputs | ProgramInputs,
    lanes_np,
    group: int,
    mesh=None,
    frozen=None,
):
    """The compiled lane program for this run's model, task and padded fold sizes; `frozen`:
    the task's frozen pytree (`device_data(...).frozen`)."""
    from podbench.train.program import CompiledProgram

    build = _model_builder(
        cfg, inputs.x.shape[2:], task.output_dim(inputs.y, cfg), task.model_head(cfg), frozen
    )
    takes_targets = registry.models.spec(cfg.model.name).takes_targets
    return CompiledProgram(
        build,
        group=group,
        batch_size=cfg.training.batch_size,
        patience=cfg.training.patience,
        optimizer_name=cfg.training.optimizer,
        loss_fn=lambda p, y: task.loss(p, y, cfg),
        stop_fn=task.stopping(cfg),
        stop_mode=task.stop_mode,
        n_train_max=lanes_np.train_idx.shape[1],
        n_val_max=lanes_np.val_idx.shape[1],
        lane_batch=lane_batch(cfg),
        mesh=mesh,
        takes_targets=takes_targets,
        combine=task.group_combine(cfg),
    )


def train_lanes(
    cfg: Config,
    task: Task,
    inputs: RunInputs | ProgramInputs,
    table: LaneTable,
    group: int,
    log: Callable[[str], None] = print,
    start: dict | None = None,
    snapshots: Snapshots | None = None,
) -> LaneResults:
    """Train every lane of `table` in chunks of one compiled program, each lane from `start`
    where given (`podbench.train.warm.warm_start`), else from a random initialisation; predict
    all words. With `snapshots`, each chunk goes on from its resume snapshot where there is one
    and writes one as training goes (podbench.train.snapshots)."""
    import jax
    import jax.numpy as jnp

    from podbench.train.sharding import LaneSharding

    t0 = time.perf_counter()
    inputs = as_program_inputs(inputs)
    lanes_np = lane_inputs(table, inputs)
    shard = LaneSharding()
    data = device_data(cfg, task, inputs)
    compiled = compile_program(cfg, task, inputs, lanes_np, group, shard.mesh, data.frozen)
    data = shard.replicate(data)
    chunk = (
        cfg.training.lane_chunk
        if isinstance(cfg.training.lane_chunk, int)
        else choose_chunk(compiled, lanes_np, data, shard.n_devices)
    )
    n_words = inputs.x.shape[0]
    all_rows = jnp.arange(n_words, dtype=jnp.int32)
    preds, states, records, widths, epoch_seconds, chunk_lanes = [], [], [], [], [], []
    earlier_s = 0.0  # training seconds of earlier runs that resume snapshots carry
    n_chunks = math.ceil(len(table) / chunk)
    for c in range(n_chunks):
        real = np.arange(c * chunk, min((c + 1) * chunk, len(table)))
        # Pad to a multiple of the devices with copies of the chunk's first lane.
        pick = np.concatenate([real, np.full((-len(real)) % shard.n_devices, real[0])])
        sub = jax.tree.map(lambda a: a[pick], lanes_np)  # noqa: B023 (called in this iteration)
        sub_start = (
            None
            if start is None
            else {
                **start,
                **{
                    part: {k: v[pick] for k, v in start[part].items()}
                    for part in ("params", "rest")
                },
            }
        )
        state, chunk_widths, carried, chunk_seconds = train_chunk(
            compiled,
            sub,
            data,
            cfg.training.epochs,
            shard,
            f"chunk {c + 1}/{n_chunks}" if n_chunks > 1 else "",
            sub_start,
            None if snapshots is None else (snapshots, c + 1, real),
        )
        widths.append(chunk_widths)
        epoch_seconds.append(chunk_seconds)
        chunk_lanes.append(len(real))
        earlier_s += carried
        keep = slice(0, len(real))
        preds.append(np.asarray(compiled.predict(state, shard.lanes(sub), data, all_rows))[keep])
        records.append(
            [np.asarray(a)[keep] for a in (state.epochs, state.best_epoch, state.best_score)]
        )
        states.append(
            jax.tree.map(
                lambda a: np.asarray(a)[keep],  # noqa: B023 (called in this iteration)
                {"params": state.best_params, "rest": state.best_rest},
            )
        )
    epochs, best_epoch, best_score = (np.concatenate(r) for r in zip(*records))
    sign = 1.0 if task.stop_mode == "max" else -1.0
    all_preds = np.concatenate(preds)
    return LaneResults(
        table,
        group,
        inputs,
        all_preds,
        epochs,
        best_epoch,
        sign * best_score,
        jax.tree.map(lambda *a: np.concatenate(a), *states),
        earlier_s + time.perf_counter() - t0,
        widths,
        epoch_seconds=epoch_seconds,
        chunk_lanes=chunk_lanes,
        lane_bytes=2 * compiled.held_bytes(lanes_np) + all_preds[0].nbytes,
    )


def train_chunk(
    compiled,
    lanes_np,
    data,
    max_epochs: int,
    shard,
    label: str,
    start: dict | None = None,
    resume: tuple[Snapshots, int, np.ndarray] | None = None,
):
    """Train one chunk of lanes to completion, from `start` where given (train.warm);
    returns its state, the width of each epoch, the training seconds of earlier runs that
    its resume snapshot carries (0 without one) and the seconds of each epoch trained now.
    `resume`: (the program's snapshots, the chunk's number, its lanes' rows in the lane
    table): go on from the chunk's snapshot where there is one, and write one after each epoch
    at which one is due (the last included, so a run killed while it writes its results
    trains nothing again).

    Under vmap a stopped lane is computed in full (its `lax.cond` becomes a select), so as
    lanes stop the working set moves to the smallest width bucket that holds the active ones:
    the chunk's width and the powers of two below it (multiples of the devices), so the epoch
    is compiled at most once per bucket, 1 + log2(width) times in all. The move goes through
    host memory (numpy), which compiles nothing. Where lanes run one at a time a stopped lane
    already skips its work, so the width stays."""
    import jax

    from podbench.progress import progress
    from podbench.train.program import start_from

    n = len(lanes_np.lr)
    working = compiled.init(shard.lanes(lanes_np))
    if start is not None:
        working = start_from(
            working,
            {**start, "params": shard.lanes(start["params"]), "rest": shard.lanes(start["rest"])},
        )
    work_lanes = shard.lanes(lanes_np)
    bank, ids = None, np.arange(n)  # host copy of every lane; ids: the lanes in the first slots
    pick: np.ndarray | None = None  # the lanes in the working set (None: all, in order)
    widths: list[int] = []
    seconds: list[float] = []
    first, finished, carried, t0 = 0, False, 0.0, time.perf_counter()
    snapshots, chunk, rows = resume if resume is not None else (None, 0, np.arange(n))
    if snapshots is not None and (got := snapshots.load(chunk, rows, working)) is not None:
        first, finished, bank, ids, pick, widths = (
            got.epoch,
            got.finished,
            got.bank,
            got.ids,
            got.pick,
            got.widths,
        )
        carried = got.seconds
        working = shard.lanes(got.working)
        if pick is not None:
            work_lanes = shard.lanes(jax.tree.map(lambda a: a[pick], lanes_np))
        snapshots.log(
            f"resuming {label or 'training'} at epoch {first + 1} from {snapshots.path(chunk)}"
            + (" (finished)" if finished else "")
        )
    bar = progress(max_epochs, f"training {n} lanes {label}".rstrip(), "epoch", first)
    for epoch in range(first, first if finished else max_epochs):
        widths.append(len(working.stopped))
        t_epoch = time.perf_counter()
        working = compiled.epoch(working, work_lanes, data, epoch)
        stopped = np.asarray(working.stopped)[: len(ids)]  # waits for the epoch
        seconds.append(time.perf_counter() - t_epoch)
        active = int((~stopped).sum())
        bar.set_postfix(active=f"{active}/{n}")  # before update: its log line shows them
        bar.update(1)
        finished = active == 0 or epoch + 1 == max_epochs
        if not finished:
            width = shard.width(active)
            if compiled.lane_batch != 1 and width < len(working.stopped):
                bank = _scatter(bank, ids, working)
                keep = ids[~stopped]
                filler = ids[stopped][0] if stopped.any() else keep[0]  # never read
                pick = np.concatenate([keep, np.full(width - len(keep), filler)])
                working = shard.lanes(jax.tree.map(lambda a: a[pick], bank))  # noqa: B023 (called in this iteration)
                work_lanes = shard.lanes(jax.tree.map(lambda a: a[pick], lanes_np))  # noqa: B023 (called in this iteration)
                ids = keep
        if snapshots is not None and snapshots.due():
            snapshots.save(
                chunk,
                rows,
                Resumed(
                    epoch + 1,
                    finished,
                    working,
                    bank,
                    ids,
                    pick,
                    widths,
                    carried + time.perf_counter() - t0,
                ),
            )
    bar.close()
    final = working if bank is None else shard.lanes(_scatter(bank, ids, working))
    return final, widths, carried, seconds


def _scatter(bank, ids: np.ndarray, working):
    """The host bank (a host copy of `working` if None) with the first len(ids) lanes of the
    working set written to rows `ids`."""
    import jax

    host = jax.tree.map(np.array, working)
    if bank is None:
        return host
    for b, w in zip(jax.tree.leaves(bank), jax.tree.leaves(host)):
        b[ids] = w[: len(ids)]
    return bank


def train_closed_form(
    cfg: Config, task: Task, inputs: RunInputs | ProgramInputs, table: LaneTable, fit_predict
) -> LaneResults:
    """Closed-form decoders (ridge): one solve per lane, no epochs."""
    import jax
    import jax.numpy as jnp

    from podbench.train.program import closed_form

    t0 = time.perf_counter()
    inputs = as_program_inputs(inputs)
    fit, predict = fit_predict
    data = device_data(cfg, task, inputs)
    lanes_np = lane_inputs(table, inputs)
    lanes = jax.device_put(lanes_np)
    alphas = jnp.asarray(cfg.model.params["alphas"], jnp.float32)
    sign = 1.0 if task.stop_mode == "max" else -1.0
    t_compile = time.perf_counter()
    fit_all = (
        jax.jit(lambda ln: closed_form(fit, predict, ln, data, alphas, task.stop_value, sign))
        .lower(lanes)
        .compile()
    )
    compile_s = time.perf_counter() - t_compile
    preds, scores, chosen, steps = fit_all(lanes)
    preds = np.asarray(preds)
    zeros = np.zeros(len(table), np.int64)
    return LaneResults(
        table,
        1,
        inputs,
        preds,
        zeros,
        zeros,
        np.asarray(scores),
        {"alpha": np.asarray(chosen)},
        time.perf_counter() - t0,
        fit_steps=np.asarray(steps),
        compile_seconds=compile_s,
        lane_bytes=(preds.nbytes + sum(a.nbytes for a in lanes_np)) // len(table),
    )
