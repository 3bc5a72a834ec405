"""The reference suite (configs/suites/reference.yml) end to end on a nine-subject stand-in:
every cell trained and tested with 1,000 score-level permutations, each program timed, and
beside each the plan's estimate made just before it (from the runs finished so far).

    python benchmarks/reference_suite.py                  # 9 subjects, 600 s (the issue's run)
    python benchmarks/reference_suite.py --duration 1800  # the full-length stand-in
    python benchmarks/reference_suite.py --refit-cells gpt2_ridge,content_word_ridge --refit 20
                                                          # also those cells with 20 retrained nulls
    python benchmarks/reference_suite.py --cells content_word_linear,part_of_speech_linear
                                                          # only those cells (a suite of its own:
                                                          # <work>/cells.yml)
    python benchmarks/reference_suite.py --calibrate      # calibrate every program first: the
                                                          # estimates then come from that
    python benchmarks/reference_suite.py --calibrate --to-stop
                                                          # and a few lanes of each program
                                                          # trained to their stop (the epochs)
    python benchmarks/reference_suite.py --reduced        # a check in minutes: 2 subjects, 120 s,
                                                          # 2 lags, 3 folds, 1 member, 1 epoch,
                                                          # 20 L-BFGS iterations

Resumable: the suite skips complete cells, and programs already timed keep their rows in
<work>/programs.csv, so a killed run started again with the same command times only what is
left. Cells run cheapest first (by the plan), so a run stopped early has measured the most
cells. Prints the machine, one row per program (cells, lanes, wall time, peak RSS of this
process, the plan's estimate), the time of each cell's score-level null alone, the totals,
and last `total_s=<sum of the programs' wall times>`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from trainer_speed import machine  # noqa: E402

from podbench.data.synth import GLOVE, GROUND_TRUTH, IU_BOUNDARIES, synthesize  # noqa: E402
from podbench.train.memory import PeakRss, release_free_memory  # noqa: E402

SUITE = REPO / "configs" / "suites" / "reference.yml"
COLUMNS = ["program", "cells", "points", "lanes", "wall_s", "peak_rss_gb", "estimate_s"]
REDUCED = [
    "data.lags={min: 0, max: 400, step: 200}",
    "training.n_folds=3",
    "model.members=1",
    "training.epochs=1",
    "training.patience=1",
    "targets.min_train_freq=1",
    "*_linear:model.params.max_iter=20",
]


def standin_overrides(root: Path) -> list[str]:
    """What the reference suite reads on a stand-in (docs/user_guide/benchmarking.md, "The
    reference suite on a stand-in")."""
    return [
        f"data.root={root}",
        "data.electrodes=responsive",
        f"glove_*:targets.glove_path={root / GLOVE}",
        f"iu_boundary_*:task_params.boundaries_csv={IU_BOUNDARIES}",
    ]


def applies(override: str, cells: list[str]) -> bool:
    """Whether a `--set` item applies to any of `cells` (CELLS:PATH=VALUE names some by a
    glob; a suite refuses one that matches none of its cells)."""
    from podbench.experiments.benchmark import override_scope

    pattern = override_scope(override)
    return pattern is None or any(fnmatchcase(c, pattern) for c in cells)


def cell_of(cfg) -> str:
    """The cell a program's point belongs to (null points live under cells/<cell>/)."""
    return Path(cfg.output.results).name if cfg.trial_name == "null" else cfg.trial_name


def record(table: Path, row: dict) -> None:
    """Append one program's row to the table (written at once, so a kill loses no row)."""
    new = not table.is_file()
    with table.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def run(suite_path: Path, overrides: list[str], table: Path, log) -> list[dict]:
    """Run the suite, timing each program into `table`; returns the rows of the programs
    run now."""
    from podbench.experiments.benchmark import is_cell_complete, load_suite, plan_basis, run_suite
    from podbench.experiments.plan import plan_cells, price, program_lanes

    suite = load_suite(suite_path, overrides)
    cells = {c.id: c for c in suite.cells}
    todo = [c for c in suite.cells if not is_cell_complete(c)]
    first = {p.cell: p for p in plan_cells(todo, *plan_basis(suite.cells))} if todo else {}

    def plan(ids: list[str]) -> list:  # priced by the calibrations and the runs there now
        return price([first[i] for i in ids], [cells[i] for i in ids], *plan_basis(suite.cells))

    # cheapest first (by the plan; unknown: first), so a run stopped early has the most cells
    planned = {i: p.estimate_s or 0.0 for i, p in first.items()}
    rss = PeakRss(every_s=0.2).start()
    rows: list[dict] = []
    state: dict = {}

    def close_program() -> None:
        if state:
            started = state.pop("_t0")
            row = {
                **state,
                "wall_s": round(time.perf_counter() - started, 1),
                "peak_rss_gb": round(rss.peak / 2**30, 2),
            }
            rows.append(row)
            record(table, row)
            log(f"timed: {row}")
            state.clear()

    def before_program(number: int, configs: list) -> None:
        close_program()
        ids = list(dict.fromkeys(cell_of(c) for c in configs))
        plans = plan(ids)
        known = [p.estimate_s for p in plans]
        state.update(
            {
                "program": number,
                "cells": " ".join(ids),
                "points": len(configs),
                "lanes": program_lanes(configs),
                "estimate_s": "" if None in known else round(sum(known), 1),
                "_t0": time.perf_counter(),
            }
        )
        release_free_memory(collect=False)  # as the program does: its peak, not earlier ones'
        rss.reset()

    def logged(line: str) -> None:
        log(line)
        if line.startswith("progress:"):
            close_program()

    try:
        run_suite(
            suite, log=logged, before_program=before_program, order=lambda cell: planned[cell.id]
        )
    finally:
        close_program()
        rss.stop()
    return rows


def score_null_times(suite_path: Path, overrides: list[str], log) -> None:
    """Seconds of each cell's score-level null alone (its permutations, every lag and fold)."""
    from podbench.experiments.benchmark import load_suite
    from podbench.experiments.significance import score_null

    suite = load_suite(suite_path, overrides)
    for cell in suite.cells:
        if not cell.significance.permutations:
            continue
        t0 = time.perf_counter()
        score_null(cell.run_dir(), cell.config, cell.significance)
        log(
            f"score-level null of {cell.id}: {cell.significance.permutations} permutations "
            f"in {time.perf_counter() - t0:.2f} s"
        )


def subset_suite(cells: list[str], option: str, path: Path, refit: int | None = None) -> Path:
    """A suite of the named reference cells at `path` (the reference suite's settings), with
    `refit` retrained nulls each if given."""
    import yaml

    from podbench.config import read_yaml

    raw = read_yaml(SUITE, "suite")
    chosen = [dict(c) for c in raw["cells"] if c["name"] in cells]
    missing = sorted(set(cells) - {c["name"] for c in chosen})
    if missing:
        raise SystemExit(f"{option}: no reference cell named {', '.join(missing)}")
    for cell in chosen:
        cell["config"] = str((SUITE.parent / cell["config"]).resolve())
        if refit is not None:
            cell["significance"] = {**raw["defaults"]["significance"], "refit": refit}
    name = raw["name"] if refit is None else "reference_refit"
    path.write_text(yaml.safe_dump({**raw, "name": name, "cells": chosen}, sort_keys=False))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument(
        "--reduced",
        action="store_true",
        help="2 subjects, 120 s, 2 lags, 3 folds, 1 member, 1 epoch",
    )
    parser.add_argument("--data", type=Path, default=None, help="an existing stand-in to use")
    parser.add_argument(
        "--work", type=Path, default=REPO / "stores" / "benchmarks" / "reference-suite"
    )
    parser.add_argument("--cells", default="", help="only these cells (comma-separated)")
    parser.add_argument("--refit-cells", default="", help="cells to run again with retrained nulls")
    parser.add_argument("--refit", type=int, default=20)
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="first calibrate every cell's program (podbench benchmark --plan --calibrate)",
    )
    parser.add_argument(
        "--to-stop",
        action="store_true",
        help="with --calibrate: train a few lanes of each program to their stop (--to-stop)",
    )
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    shape = "reduced" if args.reduced else f"9x{args.duration:g}s"
    work = args.work.resolve() / shape
    work.mkdir(parents=True, exist_ok=True)
    root = args.data.resolve() if args.data else work / "standin"
    log(f"machine: {machine()}")
    if not (root / GROUND_TRUTH).is_file():
        t0 = time.perf_counter()
        if args.reduced:
            synthesize(root, subjects=[1, 3], duration=120)
        else:
            synthesize(root, duration=args.duration)
        log(f"stand-in {root}: {time.perf_counter() - t0:.1f} s")
    overrides = [
        *standin_overrides(root),
        f"output.stores={work / 'stores'}",
        f"output.results={work / 'results'}",
        *(REDUCED if args.reduced else []),
    ]
    table = work / "programs.csv"
    earlier = list(csv.DictReader(table.open())) if table.is_file() else []
    suite, suite_overrides = SUITE, overrides
    if args.cells:
        names = args.cells.split(",")
        suite = subset_suite(names, "--cells", work / "cells.yml")
        suite_overrides = [o for o in overrides if applies(o, names)]
    if args.calibrate:
        from podbench.experiments.benchmark import calibrate_cells, load_suite

        t0 = time.perf_counter()
        cells = load_suite(suite, suite_overrides).cells
        calibrate_cells(cells, work / "results", log, args.to_stop)
        log(f"calibration: {time.perf_counter() - t0:.1f} s wall")
    t0 = time.perf_counter()
    rows = run(suite, suite_overrides, table, log)
    log(f"suite: {time.perf_counter() - t0:.1f} s wall in this invocation")
    score_null_times(suite, suite_overrides, log)
    if args.refit_cells:
        refits = args.refit_cells.split(",")
        refit_path = subset_suite(refits, "--refit-cells", work / "refit.yml", args.refit)
        from podbench.experiments.benchmark import benchmark

        t1 = time.perf_counter()
        benchmark(refit_path, [o for o in overrides if applies(o, refits)], log=log)
        log(
            f"refit: {args.refit_cells} with {args.refit} retrained nulls each: "
            f"{time.perf_counter() - t1:.1f} s wall"
        )
    every = [*earlier, *rows]
    log("| program | cells | points | lanes | wall (s) | peak RSS (GB) | plan estimate (s) |")
    log("|---|---|---|---|---|---|---|")
    for r in every:
        log(
            f"| {r['program']} | {r['cells']} | {r['points']} | {r['lanes']} | {r['wall_s']} | "
            f"{r['peak_rss_gb']} | {r['estimate_s'] or 'none yet'} |"
        )
    total = sum(float(r["wall_s"]) for r in every)
    log(
        f"total: {len(every)} programs, {total / 60:.1f} min of programs, peak RSS "
        f"{max((float(r['peak_rss_gb']) for r in every), default=0):.2f} GB"
    )
    log(f"total_s={total:.1f}")


if __name__ == "__main__":
    main()
