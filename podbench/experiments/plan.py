"""`podbench benchmark --suite X --plan`: what a suite would do, before anything runs.

Per cell: its program (cells and retrained nulls that share a program signature train as lanes
of one), its lanes (points x lags x folds x member lanes), the lane-epochs it may train (every
lane to `training.epochs`; early stopping ends most sooner), the stores still to build and the
space they need (the preflight's estimate), and a time estimate: from its program's
calibration on this machine where there is one (`podbench.train.calibrate`: the fixed seconds
plus lanes x expected epochs x the seconds per lane-epoch timed at the program's own shapes),
else from the runs this results root already holds. Each decoder declares the work of one
lane's epoch (closed form: of one step of a lane's fit) for the events, input shape, members,
head, parameters and classes at hand (`podbench.specs.Workload`, `DecoderSpec.work`: PITOM's
convolutions, ridge's Gram matrix and eigendecomposition, a logistic fit's loss-and-gradient
evaluation; by default events x input elements x members). A closed-form lane does that work
once per step of its fit (ridge: one; a logistic fit: its evaluations until it converged,
which it reports). A cell's estimate is its
lanes x expected epochs (closed form: steps) per lane x that work x the median seconds per unit
of work of the decoder's measured runs (`seconds_per_unit`): the same task's when there are
some, else those of tasks with the same head, else of heads the decoder does the same work for,
else another decoder's that does the same work (a closed-form "linear" is a ridge fit for
vectors and scalars, logistic regression for binary and class targets), else any task's.
Expected epochs: a lane whose patience is at least its budget trains its budget; otherwise
early stopping ends a lane `patience` epochs after its best; the best epoch is
the median of the same task's measured lanes (of runs whose epoch budget exceeded their
patience: no lane of a shorter run could stop early); else the mean epochs that a calibration
trained a sample of the program's lanes to their stop (`--calibrate --to-stop`); else the
median best epoch of any task's lanes; with none of these, every lane trains its budget (the
estimate is an upper bound). Expected steps: the median of
the lanes of the runs that gave the rate, looked up the same way. And the peak memory of each
cell's program: from its calibration where it has one (`Calibration.peak_bytes`: the RSS
before it less its inputs, its inputs, the temporaries its timed lanes needed, and its lanes x
what each lane holds by the program's memory model), else from the runs that recorded theirs
(run.json `memory_bytes`): the median RSS of a process before a program (less its inputs),
plus the program's inputs (events x lags x input elements, float32), plus its lanes x input
elements x the median bytes a program grew by per lane and input element while it trained. A
decoder with no calibration or measured run here has no estimate (the plan says so rather than
guess). Nothing is built, trained or written
(`podbench benchmark --plan --calibrate` calibrates first).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import numpy as np

from podbench import registry
from podbench.config import Config, read_yaml
from podbench.errors import ConfigError
from podbench.specs import Workload
from podbench.train.calibrate import CALIBRATIONS, Calibration, calibration_key, stops_early


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """One cell of a suite's plan."""

    cell: str
    program: int  # 1-based program number (cells sharing one train together)
    points: int  # the real point and its retrained nulls
    lanes: int
    lane_epochs: int  # upper bound: every lane to training.epochs (closed form: one fit)
    events: int
    stores_to_build: tuple[str, ...]  # stages
    store_bytes: float
    estimate_s: float | None  # None: no calibration or measured run of its decoder here
    peak_bytes: float | None  # the training process's peak RSS (None: no measured memory)
    calibrated: bool = False  # priced by its program's calibration (else by measured runs)
    upper_bound: bool = False  # every lane to its epoch budget: no run here tells when early
    # stopping ends lanes of this decoder
    input_shape: tuple[int, ...] = ()  # one event's decoder input at one lag


@dataclasses.dataclass(frozen=True)
class Rate:
    """Measured cost of a decoder (`decoder_key`) on this results root's runs."""

    seconds_per_unit: float  # median training seconds / (lane-epochs x the decoder's work)
    per_task: dict[str, float]  # the same median over each task's runs (a decoder's cost
    # depends on the task's head: a closed-form "linear" is ridge for vectors, logistic
    # regression for classes)
    per_head: dict[str, float]  # the same median over the runs of tasks with each head
    # ("classes", "binary", "vector", "scalar", ...): a task with no runs of its own costs
    # what tasks of its kind cost (a logistic fit of classes is not a ridge-like regression)
    best_epoch: dict[str, float]  # per task: the median 0-based epoch of a lane's best score
    runs: int
    memory_base: float | None = None  # median RSS at a program's start less its inputs
    memory_per_unit: float | None = None  # median peak-over-start bytes per program lane and
    # input element (None: no run here recorded its memory)
    model: str = dataclasses.field(kw_only=True)  # the decoder (model.name)
    fit_steps: dict[str, float] = dataclasses.field(default_factory=dict, kw_only=True)
    # closed form, per task: the median steps of a lane's fit (units of the decoder's work:
    # ridge one solve, a logistic fit its loss-and-gradient evaluations until it converged)

    def peak_bytes(self, lanes: int, inputs: float, elements: int) -> float | None:
        """A program's peak RSS: the process before it, its inputs, and its lanes' state and
        activations (bytes per lane and input element, as measured)."""
        if self.memory_base is None or self.memory_per_unit is None:
            return None
        return self.memory_base + inputs + lanes * elements * self.memory_per_unit

    def seconds(self, cfg: Config) -> float | None:
        """Seconds per lane-epoch and unit of the decoder's work: this task's, else that of
        tasks with its head, else that of the heads the decoder does the same work for (its
        spec's `work` agrees: `linear` solves vectors and scalars alike, binary and classes
        alike); None if none of these ran."""
        task = cast(str, cfg.task)  # one task
        if task in self.per_task:
            return self.per_task[task]
        head = task_head(task)
        if head is None:
            return None
        if head in self.per_head:
            return self.per_head[head]
        alike = [v for h, v in self.per_head.items() if self._same_work(cfg, head, h)]
        return float(np.median(alike)) if alike else None

    def steps(self, cfg: Config) -> float:
        """Expected steps of a closed-form lane's fit, looked up as `seconds` looks up the
        rate: the median of this task's measured lanes, else of tasks with its head, else of
        tasks whose heads the decoder does the same work for, else of any task's (1: none
        measured)."""
        task = cast(str, cfg.task)  # one task
        if task in self.fit_steps:
            return self.fit_steps[task]
        head = task_head(task)
        same = [v for t, v in self.fit_steps.items() if head is not None and task_head(t) == head]
        if not same and head is not None:
            same = [
                v
                for t, v in self.fit_steps.items()
                if self._same_work(cfg, head, task_head(t) or "")
            ]
        same = same or list(self.fit_steps.values())
        return float(np.median(same)) if same else 1.0

    def _same_work(self, cfg: Config, head: str, other: str) -> bool:
        """Whether the decoder does the same work for heads `head` and `other` (its spec's
        `work` agrees: `linear` solves vectors and scalars alike, binary and classes alike)."""
        work = registry.models.spec(self.model).work
        probe = _probe(head, cfg)
        return work(dataclasses.replace(probe, head=other)) == work(probe)

    def epochs(self, cfg: Config, other_tasks: bool = True) -> float | None:
        """Expected epochs per lane: early stopping ends a lane `patience` epochs after its
        best, at most at `training.epochs` (the best epoch of this task's measured lanes, else,
        with `other_tasks`, of any task's); None if no such run here could have stopped
        early."""
        task = cast(str, cfg.task)  # one task
        if task in self.best_epoch:
            best = self.best_epoch[task]
        elif other_tasks and self.best_epoch:
            best = float(np.median(list(self.best_epoch.values())))
        else:
            return None
        t = cfg.training
        return min(float(t.epochs), best + 1 + t.patience)


def decoder_key(model: str, members: int) -> str:
    """Rates are kept per decoder and members per lane: a lane of ten networks runs each at
    another efficiency than a lane of one."""
    return model if members == 1 else f"{model} x{members} members"


def rate_of(rates: dict[str, Rate], model: str, members: int) -> Rate | None:
    """The measured rate of `model` with `members` per lane, else that of the model with the
    most runs at other member counts (the work counts the members), else None."""
    if (exact := rates.get(decoder_key(model, members))) is not None:
        return exact
    others = [r for k, r in rates.items() if k == model or k.startswith(f"{model} x")]
    return max(others, key=lambda r: r.runs, default=None)


def seconds_per_unit(
    rates: dict[str, Rate], cfg: Config, members: int
) -> tuple[float, Rate] | None:
    """What a lane-epoch of `cfg`'s decoder costs per unit of its work on this machine, and
    the rate whose runs tell it (the steps of their fits go with it): its own measured rate
    for this task or its kind (`Rate.seconds`), else that of another decoder whose work is
    the same for this task's head (`linear` on a vector is a ridge fit: ridge's runs tell its
    cost), else its own over any task; None if it never ran here and no decoder does its
    work."""
    model = cfg.model.name
    own = rate_of(rates, model, members)
    if own is not None and (seconds := own.seconds(cfg)) is not None:
        return seconds, own
    head = task_head(cast(str, cfg.task))  # one task
    if head is not None:
        probe = _probe(head, cfg)
        work = registry.models.spec(model).work(probe)
        for other in sorted(rates.values(), key=lambda r: -r.runs):
            if other.model != model and registry.models.spec(other.model).work(probe) == work:
                if (seconds := other.seconds(cfg)) is not None:
                    return seconds, other
    return None if own is None else (own.seconds_per_unit, own)


def _probe(head: str, cfg: Config) -> Workload:
    """A workload to compare decoders' (or heads') declared work on."""
    return Workload(1000, (100, 10), 1, head, cfg.model.params)


def task_head(task: str) -> str | None:
    """The kind of output a registered task's decoder predicts (Task.head); None for a name
    the registry does not know (a plugin not loaded)."""
    try:
        return registry.tasks.get(task, "task").head
    except ConfigError:
        return None


def task_classes(task: str) -> int:
    """The logits of a registered class task's head (its classes); 1 for any other task."""
    from podbench.tasks.common import ClassesTask

    try:
        kind = registry.tasks.get(task, "task")
    except ConfigError:
        return 1
    return len(kind.class_names) if issubclass(kind, ClassesTask) else 1


def measured_rates(results_root: Path) -> dict[str, Rate]:
    """Per decoder and members per lane (`decoder_key`), from every complete results folder
    under `results_root` (run.json, config.yml): training seconds per lane-epoch and unit of
    the decoder's declared work (`DecoderSpec.work`), and per task the epoch at which lanes
    were best. A closed-form lane counts its fit's steps (run.json's lane table has them; a
    closed-form run from before fits counted them is no measurement)."""
    return rates_of(Path(results_root).expanduser().rglob("run.json"))


def rates_of(run_jsons: Iterable[Path]) -> dict[str, Rate]:
    """`measured_rates` of the given results folders' run.json files."""
    seconds: dict[str, dict[str, list[float]]] = {}
    best: dict[str, dict[str, list[float]]] = {}
    steps: dict[str, dict[str, list[float]]] = {}
    base: dict[str, list[float]] = {}
    per_unit: dict[str, list[float]] = {}
    models: dict[str, str] = {}  # decoder key -> model name
    for run_json in run_jsons:
        try:
            run = json.loads(run_json.read_text())
            cfg = read_yaml(run_json.parent / "config.yml", "results config")
            model, task = cfg["model"]["name"], cfg["task"]
            members = run["lanes"]["members_per_lane"]
            lanes, epochs = run["lanes"]["count"], run["lanes"]["epochs_total"]
            training = run["timings_s"]["training"] / max(
                1, run["timings_s"].get("points_in_program", 1)
            )
            shape = _run_input_shape(run, cfg)
            if shape is None:
                raise ValueError("no input shape")
            best_epochs = [lane["best_epoch"] for lane in run["lane_table"]]
            closed = epochs == 0
            # a lane stops early `patience` epochs after its best: a budget of no more epochs
            # stops none (a short or calibrating run), so says nothing of where lanes stop
            stops = closed or cfg["training"]["epochs"] > cfg["training"]["patience"]
            fit_steps = [lane["fit_steps"] for lane in run["lane_table"]] if closed else []
            memory = run.get("memory_bytes")  # absent from runs before it was recorded
            work = _work(
                model,
                Workload(
                    run["sizes"]["words"],
                    shape,
                    members,
                    task_head(task) or "",
                    cfg["model"].get("params") or {},
                    task_classes(task),
                ),
            )
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            continue  # not a results folder of this version: no measurement
        key = decoder_key(model, members)
        models[key] = model
        if work and training > 0 and lanes:
            units = (sum(fit_steps) if closed else epochs) * work
            seconds.setdefault(key, {}).setdefault(task, []).append(training / units)
            if stops:
                best.setdefault(key, {}).setdefault(task, []).extend(
                    [0.0] * lanes if closed else best_epochs
                )
            if closed:
                steps.setdefault(key, {}).setdefault(task, []).extend(fit_steps)
        if memory:
            elements = math.prod(shape)
            base.setdefault(key, []).append(memory["rss_start"] - memory["inputs"])
            grown = max(0, memory["rss_peak"] - memory["rss_start"])
            per_unit.setdefault(key, []).append(grown / (memory["program_lanes"] * elements))
    heads = {t: task_head(t) for by_task in seconds.values() for t in by_task}
    return {
        m: Rate(
            float(np.median([x for v in by_task.values() for x in v])),
            {t: float(np.median(v)) for t, v in by_task.items()},
            {
                h: float(np.median([x for t, v in by_task.items() if heads[t] == h for x in v]))
                for h in {heads[t] or "" for t in by_task} - {""}
            },
            {t: float(np.median(b)) for t, b in best.get(m, {}).items()},
            sum(len(v) for v in by_task.values()),
            float(np.median(base[m])) if m in base else None,
            float(np.median(per_unit[m])) if m in per_unit else None,
            model=models[m],
            fit_steps={t: float(np.median(v)) for t, v in steps.get(m, {}).items()},
        )
        for m, by_task in seconds.items()
    }


def _work(model: str, load: Workload) -> float:
    """One lane's epoch of `model` (its spec's `work`)."""
    return float(registry.models.spec(model).work(load))


def _run_input_shape(run: dict, cfg: dict) -> tuple[int, ...] | None:
    """A run's input shape per event and lag: run.json's, else (for runs from before it was
    recorded) its latents store's, else channels x bins from its electrodes and elements."""
    sizes = run["sizes"]
    if sizes.get("input_shape"):
        return tuple(sizes["input_shape"])
    stored = _stored_shape(
        Path(cfg["output"]["stores"]).expanduser() / "latents" / run["keys"]["latents"]
    )
    if stored:
        return stored
    elements, channels = sizes.get("input_elements"), sizes.get("electrodes")
    if elements and channels and elements % channels == 0:
        return (channels, elements // channels)
    return (elements,) if elements else None


def program_lanes(configs: list[Config]) -> int:
    """Lanes of points trained together (points x lags x folds x member lanes; a joint
    ensemble's members share a lane)."""
    cfg = configs[0]
    closed = registry.models.spec(cfg.model.name).closed_form
    member_lanes = 1 if closed or cfg.model.ensemble == "joint" else cfg.model.members
    return len(configs) * len(cfg.data.lags.values()) * cfg.training.n_folds * member_lanes


def plan_cells(
    cells, rates: dict[str, Rate], calibrations: dict[str, Calibration] | None = None
) -> list[CellPlan]:
    """The plan of a suite's cells (podbench.experiments.benchmark.Cell), in suite order: a
    cell whose program has a calibration on this machine (`calibrations`, by
    `calibration_key`) priced by it, any other by the measured `rates` (`price`)."""
    from podbench.features.preflight import check_inputs, resolve_checked
    from podbench.train.run import program_signature

    programs: dict[str, int] = {}
    planned: set[str] = set()
    out = []
    for cell in cells:
        cfg: Config = cell.config
        ctx = resolve_checked(cfg)
        need = check_inputs(ctx)
        stage_keys = _stage_keys(ctx)
        keys = {
            stage: key
            for stage, key in stage_keys.items()
            if any(key in absent for absent in need) and key not in planned
        }
        planned.update(keys.values())  # a store shared by cells is built (and counted) once
        closed = registry.models.spec(cfg.model.name).closed_form
        lanes = program_lanes(cell.points)
        out.append(
            CellPlan(
                cell.id,
                programs.setdefault(program_signature(cfg), len(programs) + 1),
                len(cell.points),
                lanes,
                lanes * (1 if closed else cfg.training.epochs),
                len(ctx.task.events(cfg, ctx.dataset)),
                tuple(keys),
                sum(b for _, b in need.values()) if keys.get("epochs") else 0.0,
                None,
                None,
                input_shape=input_shape(ctx, stage_keys["latents"]),
            )
        )
    return price(out, cells, rates, calibrations)


def price(
    plans: list[CellPlan],
    cells,
    rates: dict[str, Rate],
    calibrations: dict[str, Calibration] | None = None,
) -> list[CellPlan]:
    """The time and peak-memory estimates of planned cells (`plans` of `cells`, in the same
    order) from `rates` and `calibrations`, what planning the cells found (events, input shape,
    lanes, programs) taken as it was: a running suite prices the cells left again after each
    program, with the runs it has just made, without resolving them again."""
    charged: set[int] = set()  # programs whose calibrated fixed cost a cell already carries
    # program -> (its peak for lanes and inputs' bytes, its lanes, its inputs' bytes)
    memory: dict[int, tuple[Callable[[int, float], float | None], int, float]] = {}
    out = []
    for plan, cell in zip(plans, cells, strict=True):
        cfg: Config = cell.config
        task = cast(str, cfg.task)  # one task
        number, lanes, events, shape = plan.program, plan.lanes, plan.events, plan.input_shape
        elements = math.prod(shape)
        closed = registry.models.spec(cfg.model.name).closed_form
        members = 1 if closed or cfg.model.ensemble != "joint" else cfg.model.members
        rate = rate_of(rates, cfg.model.name, members)
        calibration = None if calibrations is None else calibrations.get(calibration_key(cfg))
        expected = None if closed else expected_epochs(cfg, rate, calibration)
        epochs = 1.0 if closed else float(cfg.training.epochs) if expected is None else expected
        estimate = None
        if calibration is not None:  # the program's own cost; its fixed part once
            estimate = calibration.seconds(lanes, epochs)
            if number in charged:
                estimate -= calibration.fixed_s
            charged.add(number)
        elif (cost := seconds_per_unit(rates, cfg, members)) is not None:
            unit_s, source = cost
            load = Workload(
                events, shape, members, task_head(task) or "", cfg.model.params, task_classes(task)
            )
            work = _work(cfg.model.name, load)
            estimate = lanes * (source.steps(cfg) if closed else epochs) * work * unit_s
        peak: Callable[[int, float], float | None] | None = None
        if calibration is not None and calibration.memory_base is not None:
            peak = calibration.peak_bytes  # the program's own measured memory
        elif rate is not None:
            peak = functools.partial(rate.peak_bytes, elements=elements)
        if peak is not None:  # cells of a program share its inputs
            inputs = events * len(cfg.data.lags.values()) * elements * 4  # float32
            _, before, most = memory.get(number, (peak, 0, 0.0))
            memory[number] = (peak, before + lanes, max(most, inputs))
        out.append(
            dataclasses.replace(
                plan,
                estimate_s=estimate,
                peak_bytes=None,
                calibrated=calibration is not None,
                upper_bound=estimate is not None and not closed and expected is None,
            )
        )
    return [  # a cell's peak is its program's: every lane of it trains at once
        dataclasses.replace(p, peak_bytes=memory[p.program][0](*memory[p.program][1:]))
        if p.program in memory
        else p
        for p in out
    ]


def expected_epochs(
    cfg: Config, rate: Rate | None, calibration: Calibration | None
) -> float | None:
    """The epochs a lane of the config is expected to train: its budget where early stopping
    can end no lane sooner (a patience of at least the budget); else from the runs of its task
    here, else from its program's lanes trained to their stop by a calibration (`--to-stop`),
    else from runs of other tasks; None where nothing tells (every lane to its budget)."""
    if not stops_early(cfg):
        return float(cfg.training.epochs)
    if rate is not None and (own := rate.epochs(cfg, other_tasks=False)) is not None:
        return own
    if calibration is not None and calibration.stop_epochs is not None:
        return calibration.stop_epochs
    return None if rate is None else rate.epochs(cfg)


def _stored_shape(latents: Path) -> tuple[int, ...] | None:
    """Input shape per event and lag of a built latents store ([event, lag, *input]); None if
    it is not there."""
    from podbench.errors import StoreError
    from podbench.features.store import COMPLETE, shape_of_var

    if not (latents / COMPLETE).is_file():
        return None
    try:
        return tuple(shape_of_var("latent")(latents)[2:])
    except StoreError:
        return None


def input_shape(ctx, latents_key: str) -> tuple[int, ...]:
    """One event's decoder input at one lag: from the latents store (key `latents_key`) when
    it is built, else (channels, bins) of the window (the preprocessor's
    `num_average_samples` per bin; exact for the window-averaging preprocessors, an estimate
    for others)."""
    from podbench.data.recordings import open_recordings
    from podbench.features.epochs import geometry

    cfg = ctx.cfg
    stored = _stored_shape(Path(cfg.output.stores).expanduser() / "latents" / latents_key)
    if stored:
        return stored
    recordings = open_recordings(ctx.dataset, ctx.subjects, ctx.electrodes, cfg.data.signal)
    window = geometry(cfg, recordings[0].sfreq).window
    block = cfg.preprocess.params.get("num_average_samples", 1)
    bins = 1 if block is None else -(-window // max(1, int(block)))
    return (sum(len(r.channels) for r in recordings), bins)


def _stage_keys(ctx) -> dict[str, str]:
    from podbench.features.keys import stage_specs

    specs = stage_specs(ctx)
    return {stage: specs[stage].key for stage in ("epochs", "targets", "latents")}


def format_plan(plans: list[CellPlan], rates: dict[str, Rate], results_root: Path) -> str:
    """The plan as a table and a total."""
    from podbench.features.store import human_bytes

    lines = [
        f"{'cell':<28} {'prog':>4} {'points':>6} {'lanes':>6} {'lane-epochs':>11} "
        f"{'events':>6}  {'stores to build':<24} {'space':>9} {'estimate':>9} {'memory':>9}"
    ]
    for p in plans:
        build = ", ".join(p.stores_to_build) or "-"
        estimate = (
            "unknown"
            if p.estimate_s is None
            else ("<=" if p.upper_bound else "") + _duration(p.estimate_s)
        )
        memory = "unknown" if p.peak_bytes is None else human_bytes(p.peak_bytes)
        lines.append(
            f"{p.cell:<28} {p.program:>4} {p.points:>6} {p.lanes:>6} "
            f"{p.lane_epochs:>11} {p.events:>6}  {build:<24} "
            f"{human_bytes(p.store_bytes) if p.store_bytes else '-':>9} {estimate:>9} "
            f"{memory:>9}"
        )
    known = [p.estimate_s for p in plans if p.estimate_s is not None]
    unknown = sorted({p.cell for p in plans if p.estimate_s is None})
    lines.append(
        f"total: {len(plans)} cell(s) in {len({p.program for p in plans})} program(s), "
        f"{sum(p.lanes for p in plans)} lanes, at most "
        f"{sum(p.lane_epochs for p in plans)} lane-epochs; training about "
        f"{_duration(sum(known))} for the {len(known)} cell(s) with an estimate"
        + (
            f", peak memory about {human_bytes(max(peaks))} (its largest program)"
            if (peaks := [p.peak_bytes for p in plans if p.peak_bytes is not None])
            else ""
        )
    )
    basis = "; ".join(
        f"{m}: {1e-9 / r.seconds_per_unit:.3g} G units of its work per second ({r.runs} run(s))"
        for m, r in sorted(rates.items())
    )
    calibrated = sum(p.calibrated for p in plans)
    if calibrated:
        lines.append(
            f"{calibrated} cell(s) priced by their program's calibration on this machine "
            f"({results_root / CALIBRATIONS})"
        )
    if calibrated < len(plans):
        lines.append(f"estimates from the runs in {results_root}: {basis or 'none yet'}")
    if any(p.upper_bound for p in plans):
        lines.append(
            "<=: every lane to its epoch budget (no run of the decoder here tells when early "
            "stopping ends its lanes; --calibrate --to-stop trains a few to their stop)"
        )
    if unknown:
        lines.append(
            f"no estimate for {len(unknown)} cell(s) (no calibration or measured run of "
            "their decoder here yet; --calibrate measures them): " + ", ".join(unknown)
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
