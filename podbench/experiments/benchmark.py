"""`podbench benchmark --suite SUITE.yml`: every cell of a suite, with significance, a
leaderboard and a report.

A suite file (YAML):

    name: quick                  # [A-Za-z0-9_.-]+, not . or ..: names results/<name>/
    version: 1
    description: ...             # optional
    defaults:                    # optional; applied to every cell, the cell's own keys win
      set: {data.root: data/podcast-standin-demo}   # dotted config overrides
      subjects: [all]            # subject sets: all | each | [3, 6]
      significance: {permutations: 1000, mode: words, block: 10, refit: 0,
                     pool_lags: false, seed: 1, alpha: 0.05}
    cells:
      - name: gpt2_pitom         # [A-Za-z0-9_.-]+, not . or ..
        config: ../demo.yml      # relative to the suite file
        set: {model.members: 2}  # applied after defaults.set; `--set` applies last
        subjects: [all, each]    # optional: one cell per set ("each": one per subject)
        needs: [task_params.lm_dir]  # optional: config paths naming files the cell reads;
                                 # where one is missing the cell is skipped, in one line

A cell is (config x subject set); its unit of work is its real point plus its retrained null
points (`significance.refit` shuffled-target copies; score-level nulls, `permutations`, cost
no training: see podbench.experiments.significance).
Every point of every cell is grouped by program signature, so cells and nulls that differ
only in per-lane values or in their targets at an equal width train as lanes of one program,
and stores whose keys agree are built once. Results go to
results/<name>/<suite-id>/ (suite-id: a hash of the resolved cells):

  suite.yml                   the suite as resolved: every cell's config path, overrides,
                              subjects, significance settings and run folder
  cells/<cell>/<run-id>/      the real point's results folder, with cell.json
  cells/<cell>/null/<run-id>/ the retrained null points' results folders (refit)
  leaderboard.csv             one row per cell (chosen on validation, see CELL_SCHEMA)
  comparisons.csv             each two cells of a task at their shared validation-chosen
                              lag: mean fold difference, bootstrap interval, paired t-test
  comparisons_by_lag.csv      the same pairs at every lag, with BH q across lags
  report/index.html           the static report (podbench.experiments.report)

A cell whose cell.json exists is complete and skipped; a point whose results folder exists
is not trained again, so a benchmark killed at any moment and started again with the same
command trains only what is missing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import cast

import pandas as pd
import yaml

from podbench.config import (
    Config,
    from_dict,
    keyed_dict,
    parse_overrides,
    read_yaml,
    set_path,
    unknown_key,
)
from podbench.errors import ConfigError
from podbench.experiments.engines import Engine, LocalEngine
from podbench.experiments.plan import (
    CellPlan,
    Rate,
    format_plan,
    measured_rates,
    plan_cells,
    price,
    program_lanes,
)
from podbench.experiments.records import (
    cell_record,
    comparisons,
    comparisons_by_lag,
    leaderboard,
    read_record,
)
from podbench.experiments.significance import Significance, null_configs
from podbench.features.keys import SHORT, canonical_json
from podbench.publish import publish_text
from podbench.tasks import task_for
from podbench.train.calibrate import (
    Calibration,
    calibrate,
    calibration_key,
    calibrations,
    stops_early,
)
from podbench.train.calibrate import save as save_calibration
from podbench.train.run import Program, programs_of

NAME = re.compile(r"(?!\.+$)[A-Za-z0-9_.-]+")  # one folder name: not . or ..
SUITE_KEYS = ("name", "version", "description", "defaults", "cells")
DEFAULT_KEYS = ("set", "subjects", "significance")
WRITING = "writing the benchmark"  # what a failed write was doing, in its error
CELL_KEYS = ("name", "config", "set", "subjects", "significance", "needs")


@dataclass
class Cell:
    """One cell: a resolved config on one subject set, and its null points."""

    id: str
    name: str
    config_path: str
    overrides: dict
    subjects: str  # the set's label: all, sub-03, sub-03+06
    config: Config
    significance: Significance
    nulls: list[Config] = field(default_factory=list)
    missing: str | None = None  # why the cell cannot run here (`needs:`); None: it can

    @property
    def points(self) -> list[Config]:
        return [self.config, *self.nulls]

    @cached_property
    def dirs(self) -> list[Path]:
        """The results folders of the real point and of each null point."""
        from podbench.features.keys import run_dir_of, stage_keys

        return [run_dir_of(c, stage_keys(c)["training"]) for c in self.points]

    def run_dir(self) -> Path:
        return self.dirs[0]

    def null_dirs(self) -> list[Path]:
        return self.dirs[1:]


@dataclass
class Suite:
    name: str
    version: object
    description: str
    path: Path
    id: str
    folder: Path
    cells: list[Cell]  # the cells that run
    skipped: list[Cell] = field(default_factory=list)  # cells whose `needs:` are missing


# --------------------------------------------------------------------------- suite file


def _mapping(raw, path: Path, where: str, allowed: tuple[str, ...]) -> dict:
    """A mapping at `where` (a key path, "" at the top) of suite file `path`, of known keys."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {where or 'suite'} = {raw!r}: expected a mapping")
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{path}: {unknown_key(str(key), list(allowed), where)}")
    return raw


def _overrides(raw, where: str) -> dict:
    """A `set:` mapping of dotted config paths to values."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k for k in raw):
        raise ConfigError(f"{where} = {raw!r}: expected a mapping of config paths to values")
    return raw


def _name(value, where: str) -> str:
    """A suite or cell name: one folder name (it names a folder under the results root)."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ConfigError(
            f"{where} = {value!r}: expected one folder name of letters, digits, _ . - (not . or ..)"
        )
    return value


def _subject_sets(raw, where: str) -> list:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{where} = {raw!r}: expected a non-empty list of subject sets "
            "(all, each, or a list of subject numbers)"
        )
    for i, item in enumerate(raw):
        numbers = (
            isinstance(item, list)
            and item
            and all(isinstance(n, int) and not isinstance(n, bool) for n in item)
        )
        if item not in ("all", "each") and not numbers:
            raise ConfigError(
                f"{where}[{i}] = {item!r}: expected all, each, or a list of subject numbers"
            )
    return raw


def _expand_subjects(sets: list, cfg: Config) -> list[tuple[str, object]]:
    """(label, data.subjects value) per subject set; `each` needs the dataset."""
    out: list[tuple[str, object]] = []
    for item in sets:
        if item == "all":
            out.append(("all", cfg.data.subjects))
        elif item == "each":
            from podbench.data.dataset import Dataset
            from podbench.data.recordings import resolve_subjects

            d = cfg.data
            for sub in resolve_subjects(Dataset(d.root), d.subjects, d.picks, d.signal):
                out.append((f"sub-{sub:02d}", [sub]))
        else:
            out.append(("sub-" + "+".join(f"{n:02d}" for n in sorted(item)), sorted(item)))
    return out


def _resolve_config(path: Path, overrides: dict, where: str) -> Config:
    if not path.is_file():
        raise ConfigError(f"{where}.config: {str(path)!r} does not exist")
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for dotted, value in overrides.items():
        set_path(raw, dotted, value)
    try:
        return from_dict(raw, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def suite_id(name: str, version, cells: list[Cell]) -> str:
    """A hash of the suite's name, version and resolved cells (their configs' fields marked
    for it, podbench.config.Keyed: not the trial and output folders, and their significance
    settings)."""

    def content(cell: Cell) -> dict:
        raw = keyed_dict(cell.config, lambda keyed: keyed.suite)
        return {"id": cell.id, "config": raw, "significance": cell.significance.as_dict()}

    payload = canonical_json(
        {"name": name, "version": version, "cells": [content(c) for c in cells]}
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:SHORT]


def cell_overrides(items: tuple[str, ...] | list[str]) -> tuple[dict, list[tuple[str, dict]]]:
    """`--set` items of a suite: PATH=VALUE applies to every cell; CELLS:PATH=VALUE only to
    the cells whose name matches the glob CELLS (e.g. `glove_*:targets.glove_path=...`)."""
    plain, scoped = [], []
    for item in items:
        pattern = override_scope(item)
        if pattern is None:
            plain.append(item)
        else:
            scoped.append((pattern, parse_overrides([item.split(":", 1)[1]])))
    return parse_overrides(plain), scoped


def override_scope(item: str) -> str | None:
    """The glob of cell names a suite's `--set` item CELLS:PATH=VALUE applies to; None for
    PATH=VALUE (every cell)."""
    head = item.split("=", 1)[0]
    return item.split(":", 1)[0].strip() if ":" in head else None


def load_suite(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Suite:
    """Read and resolve a suite file: every cell's config, subjects and significance.

    Parameters
    ----------
    path : str or pathlib.Path
        The suite YAML file (name, version, defaults, cells).
    overrides : sequence of str, default ()
        ``PATH=VALUE`` for every cell, or ``CELLS:PATH=VALUE`` for the cells whose name
        matches the glob ``CELLS``; applied last.

    Returns
    -------
    Suite
        Its name, version, id (a hash of the resolved cells), results folder, the cells that
        run and those skipped for a missing ``needs:``.

    Raises
    ------
    podbench.errors.ConfigError
        A missing key, an invalid value or a cell whose config does not validate.
    """
    path = Path(path)
    raw = _mapping(read_yaml(path, "suite file"), path, "", SUITE_KEYS)
    for key in ("name", "version", "cells"):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    name = _name(raw["name"], f"{path}: name")
    version = raw["version"]
    if not isinstance(version, (int, str)) or isinstance(version, bool):
        raise ConfigError(f"{path}: version = {version!r}: expected an integer or a string")
    defaults = _mapping(raw.get("defaults"), path, "defaults", DEFAULT_KEYS)
    default_set = _overrides(defaults.get("set"), f"{path}: defaults.set")
    cli, scoped = cell_overrides(overrides)
    if not isinstance(raw["cells"], list) or not raw["cells"]:
        raise ConfigError(f"{path}: cells = {raw['cells']!r}: expected a non-empty list")
    cells: list[Cell] = []
    for i, item in enumerate(raw["cells"]):
        where = f"{path}: cells[{i}]"
        item = _mapping(item, path, f"cells[{i}]", CELL_KEYS)
        for key in ("name", "config"):
            if key not in item:
                raise ConfigError(f"{where}: missing key {key!r}")
        cell_name = _name(item["name"], f"{where}.name")
        cell_set = _overrides(item.get("set"), f"{where}.set")
        sets = _subject_sets(
            item.get("subjects", defaults.get("subjects", ["all"])), f"{where}.subjects"
        )
        sig = Significance.parse(
            item.get("significance", defaults.get("significance")), f"{where}.significance"
        )
        config_path = path.parent / str(item["config"])
        merged = {
            **default_set,
            **cell_set,
            **cli,
            **{
                k: v
                for pattern, values in scoped
                for k, v in values.items()
                if fnmatch.fnmatchcase(cell_name, pattern)
            },
        }
        base = _resolve_config(config_path, merged, where)
        if base.several_tasks:
            raise ConfigError(
                f"{where}: {config_path} lists several tasks; a cell is one task "
                "(make one cell per task)"
            )
        task = task_for(base)
        if sig.permutations and task.repaired_headline(base) is None:
            raise ConfigError(
                f"{where}.significance.permutations = {sig.permutations}: task "
                f"{base.task!r} has no score-level null (its headline "
                f"{task.headline} has no re-paired form); use "
                "significance: {permutations: 0, refit: N} (retrained nulls)"
            )
        if sig.permutations:  # score-level nulls read the held-out predictions
            base = base.replace({"training.predictions": True})
        missing = missing_need(base, item.get("needs", []), f"{where}.needs")
        for label, subjects in _expand_subjects(sets, base) if missing is None else [("all", None)]:
            cell_id = cell_name if sets == ["all"] else f"{cell_name}.{label}"
            cfg = base if subjects is None else base.replace({"data.subjects": subjects})
            cells.append(
                Cell(
                    cell_id,
                    cell_name,
                    str(item["config"]),
                    merged,
                    label,
                    cfg,
                    sig,
                    missing=missing,
                )
            )
    for pattern, values in scoped:
        if not any(fnmatch.fnmatchcase(c.name, pattern) for c in cells):
            raise ConfigError(
                f"--set {pattern}:{next(iter(values))}=...: no cell of {path} is "
                f"named like {pattern!r} (cells: "
                f"{', '.join(dict.fromkeys(c.name for c in cells))})"
            )
    ids = [c.id for c in cells]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(
            f"{path}: cell id {repeated[0]!r} appears twice; give cells distinct names"
        )
    roots = {c.config.output.results for c in cells}
    if len(roots) > 1:
        raise ConfigError(
            f"{path}: cells write to different output.results {sorted(roots)}; "
            "a suite has one results root"
        )
    sid = suite_id(name, version, cells)
    folder = Path(roots.pop()).expanduser() / name / sid
    cells_root = folder / "cells"  # a cell's results: cells/<cell id>/<run id>, its nulls' below
    for cell in cells:
        cell.config = cell.config.replace(
            {"output.results": str(cells_root), "trial_name": cell.id}
        )
        cell.nulls = null_configs(
            cell.config.replace({"output.results": str(cells_root / cell.id)}),
            cell.significance,
            "null",
        )
    return Suite(
        name,
        version,
        str(raw.get("description", "")),
        path,
        sid,
        folder,
        [c for c in cells if c.missing is None],
        [c for c in cells if c.missing],
    )


def missing_need(cfg: Config, needs, where: str) -> str | None:
    """Why a cell cannot run here: the first of its `needs` (dotted config paths naming files
    or folders, e.g. task_params.lm_dir) that is empty or names nothing; None if all exist."""
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise ConfigError(f"{where} = {needs!r}: expected a list of config paths naming files")
    for dotted in needs:
        node = cfg
        for part in dotted.split("."):
            try:
                node = node[part] if isinstance(node, dict) else getattr(node, part)
            except (KeyError, AttributeError):
                raise ConfigError(
                    f"{where}: {dotted!r} is not a field of the cell's config"
                ) from None
        if not node or not Path(str(node)).expanduser().exists():
            return f"{dotted} = {node!r} does not exist"
    return None


# --------------------------------------------------------------------------- running


@dataclass
class SuiteResult:
    folder: Path
    leaderboard: pd.DataFrame
    trained_cells: list[str]
    skipped_cells: list[str]
    report: Path


def _suite_dict(suite: Suite) -> dict:
    return {"name": suite.name, "version": suite.version, "id": suite.id}


def finish_cell(suite: Suite, cell: Cell) -> dict:
    """Write the cell's cell.json (atomically) from its complete results folders."""
    record = cell_record(
        cell.run_dir(),
        cell.id,
        suite=_suite_dict(suite),
        subjects_label=cell.subjects,
        significance=cell.significance,
        null_dirs=cell.null_dirs(),
    )
    record["config_path"] = cell.config_path
    record["overrides"] = cell.overrides
    publish_text(cell.run_dir() / "cell.json", json.dumps(record, indent=1), WRITING)
    return record


def is_cell_complete(cell: Cell) -> bool:
    return (cell.run_dir() / "cell.json").is_file()


def time_left(weights: list[float], done: list[int], elapsed: float) -> float:
    """Seconds left at the pace so far: the weights of the programs not done (0-based numbers
    `done` are) times the seconds per unit of weight of those done (NaN before any)."""
    finished = sum(weights[i] for i in done)
    rest = sum(weights) - finished
    return elapsed / finished * rest if finished > 0 else float("nan")


def estimate_left(
    todo: list[Cell], planned: list[CellPlan], lanes: list[int], finished: list[int], elapsed: float
) -> tuple[float, str]:
    """Seconds left to run the cells of `todo` not complete, and how they were estimated: their
    plan (`planned`, made as the run began) priced again (`price`: from the calibrations and
    the runs of the results root, those of the programs just done included, which tell how
    many epochs early stopping trains), where every such cell has an estimate; else the
    programs' `lanes` not `finished` (0-based) at the pace of those that are (`time_left`)."""
    left = [i for i, c in enumerate(todo) if not is_cell_complete(c)]
    if not left:
        return 0.0, "nothing left to run"
    plans = price([planned[i] for i in left], [todo[i] for i in left], *plan_basis(todo))
    if all(p.estimate_s is not None for p in plans):
        bound = any(p.upper_bound for p in plans)  # every lane to its budget: at most
        total = sum(cast(float, p.estimate_s) for p in plans)
        return total, "by the plan" + (", an upper bound" if bound else "")
    lanes_left = time_left([float(n) for n in lanes], finished, elapsed)
    return lanes_left, "by lanes at the pace so far"


def plan_basis(cells: list[Cell]) -> tuple[dict[str, Rate], dict[str, Calibration]]:
    """The measured runs and calibrations of the cells' results root, which the plan prices
    cells by."""
    root = results_root(cells[0])
    return measured_rates(root), calibrations(root)


def results_root(cell: Cell) -> Path:
    """The results root a suite's cells write under (their ``output.results``)."""
    return Path(cell.config.output.results).expanduser().parents[2]


def progress_line(
    suite: Suite,
    todo: list[Cell],
    lanes: tuple[int, int],
    elapsed: float,
    left: tuple[float, str],
) -> str:
    """Cells and lanes done so far (`lanes`: done, in all), and the time left (`left`: its
    seconds, and how they were estimated: `estimate_left`)."""
    cells = sum(is_cell_complete(c) for c in suite.cells)
    return (
        f"progress: {cells}/{len(suite.cells)} cells, {lanes[0]}/{lanes[1]} lanes of "
        f"{len(todo)} cell(s) to run, {elapsed / 60:.1f} min so far, about "
        f"{left[0] / 60:.1f} min left ({left[1]})"
    )


def run_suite(
    suite: Suite,
    engine: Engine | None = None,
    log: Callable[[str], None] = print,
    before_program: Callable[[int, list[Config]], None] | None = None,
    order: Callable[[Cell], float] | None = None,
    verbose: bool = False,
) -> SuiteResult:
    """Train every missing point of the suite's cells on `engine` (default: in this process),
    write cell.json files, the leaderboard, the paired comparisons and the report.
    `before_program(number, configs)` is called as each program starts
    (benchmarks/reference_suite.py times them); `order` sorts the cells to run (default: suite
    order), e.g. cheapest first; `verbose`: log the closing tables of retrained null points
    too (by default only the real points' tables)."""
    from podbench.experiments.report import write_report
    from podbench.train import results

    suite.folder.mkdir(parents=True, exist_ok=True)
    publish_text(
        suite.folder / "suite.yml",
        yaml.safe_dump(
            {
                **_suite_dict(suite),
                "description": suite.description,
                "source": str(suite.path),
                "cells": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "config": c.config_path,
                        "set": c.overrides,
                        "subjects": c.subjects,
                        "significance": c.significance.as_dict(),
                        "run": str(c.run_dir().relative_to(suite.folder)),
                    }
                    for c in suite.cells
                ],
                "skipped": [
                    {"id": c.id, "config": c.config_path, "why": c.missing} for c in suite.skipped
                ],
            },
            sort_keys=False,
        ),
        WRITING,
    )
    for cell in suite.skipped:
        log(f"cell {cell.id}: skipped, {cell.missing}")
    done = [c for c in suite.cells if is_cell_complete(c)]
    for cell in done:
        log(f"cell {cell.id}: complete ({cell.run_dir()})")
    todo = sorted((c for c in suite.cells if not is_cell_complete(c)), key=order or (lambda c: 0))
    points = [p for c in todo for p in c.points]
    nulls = {id(p) for c in todo for p in c.nulls}
    quiet = set() if verbose else {i for i, p in enumerate(points) if id(p) in nulls}
    programs = programs_of(points, quiet) if points else []
    log(
        f"suite {suite.name} {suite.id}: {len(suite.cells)} cell(s), {len(done)} complete; "
        f"{len(points)} point(s) of {len(todo)} cell(s) in {len(programs)} program(s)"
    )

    def finish_ready():
        for cell in [c for c in todo if not is_cell_complete(c)]:
            if all(results.is_complete(d) for d in [cell.run_dir(), *cell.null_dirs()]):
                record = finish_cell(suite, cell)
                sig = record["significance"]
                log(
                    f"cell {cell.id}: {record['headline']} {record['selected']['test_mean']:.4f} "
                    f"at {record['selected']['lag']} ms (chosen on validation)"
                    + (
                        f", {sig['n_significant']}/{len(record['lags'])} lags q < {sig['alpha']}"
                        if sig
                        else ""
                    )
                )

    lanes = [program_lanes(p.configs) for p in programs]
    planned = plan_cells(todo, *plan_basis(todo)) if programs else []  # priced again as it goes
    started, finished = time.perf_counter(), []

    def before(number: int, program: Program) -> None:
        log(
            f"program {number}/{len(programs)}: {len(program.configs)} point(s), "
            f"{lanes[number - 1]} lanes"
        )
        if before_program is not None:
            before_program(number, program.configs)

    def after(number: int, program: Program) -> None:
        finished.append(number - 1)
        finish_ready()
        elapsed = time.perf_counter() - started
        log(
            progress_line(
                suite,
                todo,
                (sum(lanes[i] for i in finished), sum(lanes)),
                elapsed,
                estimate_left(todo, planned, lanes, finished, elapsed),
            )
        )

    if programs:
        with engine or LocalEngine(log) as chosen:
            chosen.run_programs(programs, before=before, after=after)
    finish_ready()
    records = [read_record(c.run_dir() / "cell.json") for c in suite.cells]
    board = leaderboard(records)
    publish_text(suite.folder / "leaderboard.csv", board.to_csv(index=False), WRITING)
    publish_text(
        suite.folder / "comparisons.csv", comparisons(records).to_csv(index=False), WRITING
    )
    publish_text(
        suite.folder / "comparisons_by_lag.csv",
        comparisons_by_lag(records).to_csv(index=False),
        WRITING,
    )
    report = write_report(suite.folder, log=log)
    log(board.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    log(f"leaderboard: {suite.folder / 'leaderboard.csv'}")
    return SuiteResult(suite.folder, board, [c.id for c in todo], [c.id for c in done], report)


def benchmark(
    suite_path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    engine: Engine | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> SuiteResult:
    """Load a suite and run it: what ``podbench benchmark`` does.

    Parameters
    ----------
    suite_path : str or pathlib.Path
        The suite file.
    overrides : sequence of str, default ()
        ``PATH=VALUE`` or ``CELLS:PATH=VALUE`` settings (:func:`load_suite`).
    engine : podbench.experiments.engines.Engine, optional
        Where the programs run (default: in this process; ``engines.engine("ray")`` runs
        them on a Ray cluster).
    log : callable, default print
        Called with each progress and report line.
    verbose : bool, default False
        Also log the closing table of every retrained null point (``refit``).

    Returns
    -------
    SuiteResult
        The suite's results folder, its leaderboard, the cells trained and those found
        complete, and the report's index.html.
    """
    return run_suite(load_suite(suite_path, overrides), engine, log, verbose=verbose)


def plan(
    suite_path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    calibrate: bool = False,
    log: Callable[[str], None] = print,
    to_stop: bool = False,
) -> str:
    """The suite's plan as text, nothing trained: what ``podbench benchmark --plan`` prints.

    Parameters
    ----------
    suite_path : str or pathlib.Path
        The suite file.
    overrides : sequence of str, default ()
        As :func:`load_suite`.
    calibrate : bool, default False
        First calibrate each program to run that has no calibration on this machine yet
        (:func:`calibrate_cells`: its stores built, a few lanes timed for a few epochs), so
        that the plan prices it at its own shapes (``podbench benchmark --plan --calibrate``).
    log : callable, default print
        Called with each calibration's progress lines.
    to_stop : bool, default False
        With `calibrate`: the calibrations also train a few lanes of each program until early
        stopping ends them (``--to-stop``), so that the plan knows how many epochs its lanes
        train before any run of the task.

    Returns
    -------
    str
        The cells complete and skipped, then the programs to run with their estimated times
        (:mod:`podbench.experiments.plan`).
    """
    suite = load_suite(suite_path, overrides)
    root = results_root(suite.cells[0])
    todo = [c for c in suite.cells if not is_cell_complete(c)]
    if calibrate:
        calibrate_cells(todo, root, log, to_stop)
    rates, kept = plan_basis(suite.cells)
    done = [c.id for c in suite.cells if is_cell_complete(c)]
    text = format_plan(plan_cells(todo, rates, kept), rates, root)
    skipped = "".join(f"\ncell {c.id}: skipped, {c.missing}" for c in suite.skipped)
    return (
        f"suite {suite.name} {suite.id}: {len(suite.cells)} cell(s), {len(done)} complete"
        + (f" ({', '.join(done)})" if done else "")
        + skipped
        + "\n"
        + text
    )


def calibrate_cells(
    cells: list[Cell],
    results_root: Path,
    log: Callable[[str], None] = print,
    to_stop: bool = False,
) -> list[str]:
    """Calibrate the program of each cell that has no calibration on this machine yet (or one
    that measured no memory: a version-1 calibration; with `to_stop`, one whose lanes did not
    train to their stop).

    What ``podbench benchmark --plan --calibrate`` does before it plans
    (:func:`podbench.train.calibrate.calibrate`); cells of one program share its calibration,
    kept in ``<results_root>/calibrations/``.

    Parameters
    ----------
    cells : list of Cell
        The suite's cells (:func:`load_suite`) to calibrate.
    results_root : pathlib.Path
        The results root the suite writes under (its ``output.results``).
    log : callable, default print
        Called with each calibration's progress lines.
    to_stop : bool, default False
        Also train a few lanes of each program until early stopping ends them (a program
        that can stop no lane early: a closed-form fit, or a budget within its patience, is
        calibrated as without).

    Returns
    -------
    list of str
        The keys of the calibrations made now (none for programs calibrated before).
    """
    made: list[str] = []
    have = calibrations(results_root)
    for cell in cells:
        key = calibration_key(cell.config)
        stops = to_stop and stops_early(cell.config)
        old = have.get(key)
        if key in made or (
            old is not None
            and old.memory_base is not None
            and (old.stop_epochs is not None or not stops)
        ):
            continue
        log(f"cell {cell.id}: calibrating its program")
        save_calibration(results_root, key, calibrate(cell.config, log=log, to_stop=stops))
        made.append(key)
    return made
