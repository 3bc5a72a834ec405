"""The plan's estimates replayed against a reference-suite run's measured programs: for each
program that `reference_suite.py` timed (<work>/9x600s/programs.csv, in the order they ran),
the estimate podbench's plan gives now from the runs that were there before it, beside the
measured time (`program_seconds`: its wall time less its store builds) and the estimate
recorded at the time. Then the plan of the cells not yet
complete, from every run there.

    python benchmarks/plan_replay.py --work /work/measure           # every timed program
    python benchmarks/plan_replay.py --work /work/measure --part 5  # one invocation
    python benchmarks/plan_replay.py --work /work/measure --leave-one-out

`--leave-one-out`: each program's latest timing against the plan from the runs of every
other cell (the cost model judged on what it has not seen, whatever order the cells ran in);
prints one row per program and last `loo_within=N loo_estimated=N`.

`--calibrated`: each program's latest timing against the plan from calibrations alone (no
run: `podbench benchmark --plan --calibrate`), kept in the results root (<work>/9x600s/results/
calibrations, where `reference_suite.py --calibrate` keeps them); calibrates first every cell
of the suite that has none (this trains: a few lanes of each program for 3
epochs; with `--to-stop`, until early stopping ends them, as `podbench benchmark --plan
--calibrate --to-stop` does), then prints one row per program (estimated from calibrations
alone, and with the epochs early stopping trains taken from every other cell's runs; its peak
RSS against the calibrations' memory estimate), the plan of every cell of the suite with the
calibrations' own seconds, and last `cal_within=N cal_runs_within=N cal_estimated=N calibration_s=S
cal_memory_within=N cal_memory_estimated=N`. Before the plan, the run's time left after each
program, weighed by the calibrated plan and by lanes (`time_left_replay`).

A part is one invocation of reference_suite.py: a run of rows whose program numbers increase
(each invocation numbers its programs from 1). The runs there before a program: those of the
cells complete before the table began, and of the cells of earlier rows, less the cells that
the program's own invocation had still to run (that row's and its part's later rows': a cell
timed again was removed before its part). Prints one row per program (its time and peak
memory, measured and estimated), the pending cells' estimates, each decoder's measured rate
per task (G units of its declared work per second: flops for PITOM, ridge and linear), the
share of programs within 30 % of their time (now and as recorded) and of their peak
RSS, and last
`within_now=N within_then=N estimated=N memory_within=N memory_estimated=N`. Reads results
only; trains nothing. A cell's
run.json keeps the timings of its latest training only, so the replay is faithful for the
last part and for rows whose predecessors were not timed again later (a retimed cell lends
its later timing to the rows before it). A cell's runs are those in any folder of the
reference suite there (`reference_suite.py --cells` runs a subset as a suite of its own). A
program resumed from its snapshots (`training.snapshot_every_s`) has in programs.csv the
wall time of its last run only; its run.json counts the training of every run, so a program
is timed at no less than its training and scoring (`program_seconds`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference_suite import REDUCED, REPO, SUITE, standin_overrides  # noqa: E402

WITHIN = 0.30


def parts(rows: list[dict]) -> list[int]:
    """Each row's part (1-based): a new part starts where the program number does not grow."""
    out, part, last = [], 0, None
    for row in rows:
        number = int(row["program"])
        if last is None or number <= last:
            part += 1
        out.append(part)
        last = number
    return out


def error(estimate: float | None, wall: float) -> str:
    return "none" if estimate is None else f"{estimate:.1f} ({(estimate / wall - 1) * 100:+.0f} %)"


def program_seconds(row: dict, runs: dict) -> float:
    """A program's time as the plan estimates it: its wall time in programs.csv less the time
    its cells' runs took to build or read their stores (the plan lists the stores to build
    but does not time them), or, where more (a program resumed from its snapshots, whose
    earlier runs that wall leaves out), its training as its cells' run.json count it (every
    run's epochs) plus their scoring."""
    records = [json.loads(r.read_text()) for c in row["cells"].split() for r in runs[c]]
    training = max((r["timings_s"]["training"] for r in records), default=0.0)
    scoring = sum(r["timings_s"].get("evaluation", 0.0) for r in records)
    stores = sum(r["timings_s"].get("features", 0.0) for r in records)
    return round(max(float(row["wall_s"]) - stores, training + scoring), 1)


def cell_runs(cell) -> list[Path]:
    """A cell's run.json files in every folder of the reference suite under the results root
    (a `reference_suite.py --cells` run is a suite of its own, with its own folder)."""
    suites = cell.run_dir().parents[3]  # <results>/reference/<suite id>/cells/<cell>/<run>
    return sorted(p for d in suites.glob(f"*/cells/{cell.id}") for p in d.rglob("run.json"))


def program_estimate(plans: list) -> float | None:
    """A program's estimate: the sum over its cells' plans, None unless every cell has one."""
    known = [p.estimate_s for p in plans if p.estimate_s is not None]
    return sum(known) if len(known) == len(plans) else None


def latest_timings(rows: list[dict]) -> dict[str, dict]:
    """Each program's last row (a program timed again: its last timing), keyed by its cells
    in sorted order (whatever order they were named in)."""
    return {" ".join(sorted(row["cells"].split())): row for row in rows}


def within(estimate: float | None, wall: float) -> bool:
    return estimate is not None and abs(estimate / wall - 1) <= WITHIN


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=REPO / "stores" / "benchmarks" / "reference-suite"
    )
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--data", type=Path, default=None, help="the stand-in the run read")
    parser.add_argument("--reduced", action="store_true", help="replay a --reduced run")
    parser.add_argument("--part", type=int, default=None, help="only this part's programs")
    parser.add_argument(
        "--leave-one-out", action="store_true", help="each program from every other cell's runs"
    )
    parser.add_argument(
        "--calibrated", action="store_true", help="each program from calibrations alone"
    )
    parser.add_argument(
        "--to-stop",
        action="store_true",
        help="with --calibrated: calibrations train a few lanes to their stop (--to-stop)",
    )
    args = parser.parse_args(argv)

    from podbench.experiments.benchmark import is_cell_complete, load_suite
    from podbench.experiments.plan import plan_cells, rates_of

    work = args.work.resolve() / ("reduced" if args.reduced else f"9x{args.duration:g}s")
    rows = list(csv.DictReader((work / "programs.csv").open()))
    part_of = parts(rows)
    overrides = [
        *standin_overrides(args.data.resolve() if args.data else work / "standin"),
        f"output.stores={work / 'stores'}",
        f"output.results={work / 'results'}",
        *(REDUCED if args.reduced else []),
    ]
    suite = load_suite(SUITE, overrides)
    cells = {c.id: c for c in suite.cells}
    runs = {name: cell_runs(c) for name, c in cells.items()}
    named = [row["cells"].split() for row in rows]
    before_table = set(cells) - {c for names in named for c in names}
    if args.leave_one_out:
        leave_one_out(rows, cells, runs)
        return
    if args.calibrated:
        calibrated(rows, cells, runs, work / "results", args.to_stop)
        return

    print(
        "| part | program | cells | time (s) | estimate now (s) | estimate then (s) "
        "| peak RSS (GB) | memory estimate now (GB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    counted = now_ok = then_ok = memory_counted = memory_ok = 0
    for i, row in enumerate(rows):
        if args.part is not None and part_of[i] != args.part:
            continue
        pending = {c for j in range(i, len(rows)) if part_of[j] == part_of[i] for c in named[j]}
        ran = (before_table | {c for j in range(i) for c in named[j]}) - pending
        rates = rates_of([r for c in sorted(ran) for r in runs[c]])
        plans = plan_cells([cells[c] for c in named[i]], rates)
        total = program_estimate(plans)
        now = None if total is None else round(total, 1)  # as programs.csv
        then = float(row["estimate_s"]) if row["estimate_s"] else None
        wall = program_seconds(row, runs)
        peak_gb = float(row["peak_rss_gb"])
        memory = plans[0].peak_bytes  # a program's cells share its peak
        memory_gb = None if memory is None else memory / 2**30
        print(
            f"| {part_of[i]} | {row['program']} | {row['cells']} | {wall} | "
            f"{error(now, wall)} | {error(then, wall)} | {peak_gb} | {error(memory_gb, peak_gb)} |"
        )
        if memory_gb is not None:
            memory_counted += 1
            memory_ok += within(memory_gb, peak_gb)
        if now is not None or then is not None:
            counted += 1
            now_ok += within(now, wall)
            then_ok += within(then, wall)
    left = [c for c in suite.cells if not is_cell_complete(c)]
    everything = rates_of([r for c in cells for r in runs[c]])
    for plan in plan_cells(left, everything):
        estimate = "none" if plan.estimate_s is None else f"{plan.estimate_s:.0f} s"
        peak = "none" if plan.peak_bytes is None else f"{plan.peak_bytes / 2**30:.2f} GB"
        print(f"pending {plan.cell}: {plan.lanes} lanes, plan estimate {estimate}, peak {peak}")
    for decoder, rate in sorted(everything.items()):  # its declared work per second, by task
        tasks = ", ".join(f"{t} {1e-9 / v:.1f}" for t, v in sorted(rate.per_task.items()))
        print(f"rate of {decoder} (G units of its work per second): {tasks}")
    print(
        f"within {WITHIN:.0%} of the time: {now_ok} of {counted} estimated programs now, "
        f"{then_ok} as recorded then"
    )
    print(
        f"peak memory within {WITHIN:.0%}: {memory_ok} of {memory_counted} programs with an "
        "estimate (from runs that recorded their memory)"
    )
    print(
        f"within_now={now_ok} within_then={then_ok} estimated={counted} "
        f"memory_within={memory_ok} memory_estimated={memory_counted}"
    )


def leave_one_out(rows: list[dict], cells: dict, runs: dict) -> None:
    """Each program's latest timing against the plan from every other cell's runs."""
    from podbench.experiments.plan import plan_cells, rates_of

    latest = latest_timings(rows)
    print("| program | time (s) | estimate from the other cells' runs (s) |")
    print("|---|---|---|")
    counted = ok = 0
    for names, row in latest.items():
        own = set(names.split())
        others = [r for c in sorted(cells) if c not in own for r in runs[c]]
        estimate = program_estimate(plan_cells([cells[c] for c in names.split()], rates_of(others)))
        wall = program_seconds(row, runs)
        print(f"| {names} | {wall} | {error(estimate, wall)} |")
        counted += estimate is not None
        ok += within(estimate, wall)
    print(f"within {WITHIN:.0%} of the time: {ok} of {counted} estimated programs")
    print(f"loo_within={ok} loo_estimated={counted}")


def calibrated(rows: list[dict], cells: dict, runs: dict, root: Path, to_stop: bool) -> None:
    """Each program's latest timing against the plan from calibrations alone (kept in
    `root`), calibrating first each cell's program that has none (with `to_stop`: none whose
    lanes trained to their stop)."""
    import time

    from podbench.experiments.benchmark import calibrate_cells
    from podbench.experiments.plan import plan_cells, rates_of
    from podbench.train.calibrate import calibrations

    t0 = time.perf_counter()
    calibrate_cells(
        list(cells.values()), root, log=lambda line: print(line, flush=True), to_stop=to_stop
    )
    print(f"calibrating: {time.perf_counter() - t0:.1f} s wall in this invocation")
    kept = calibrations(root)
    latest = latest_timings(rows)
    print(
        "| program | time (s) | estimate from calibrations (s) | the same, epochs from the "
        "other cells' runs (s) | the same at the lane-epochs it trained (s) | peak RSS (GB) "
        "| memory estimate from calibrations (GB) |"
    )
    print("|---|---|---|---|---|---|---|")
    counted = ok = ok_runs = memory_counted = memory_ok = 0
    timed: list[tuple[str, float, float | None, int]] = []  # cells, time, estimate, lanes
    for names, row in latest.items():
        own = set(names.split())
        others = rates_of([r for c in sorted(cells) if c not in own for r in runs[c]])
        wall = program_seconds(row, runs)
        shown = []
        for rates in ({}, others):
            plans = plan_cells([cells[c] for c in names.split()], rates, kept)
            estimate = program_estimate(plans)
            bound = "<= " if any(p.upper_bound for p in plans) else ""
            shown.append((estimate, f"{bound}{error(estimate, wall)}", plans[0].peak_bytes))
        trained = at_trained(cells, names.split(), runs, kept)
        peak_gb = float(row["peak_rss_gb"])
        memory = shown[0][2]  # from calibrations alone; a program's cells share its peak
        memory_gb = None if memory is None else memory / 2**30
        print(
            f"| {names} | {wall} | {shown[0][1]} | {shown[1][1]} | {error(trained, wall)} "
            f"| {peak_gb} | {error(memory_gb, peak_gb)} |"
        )
        timed.append((names, wall, shown[0][0], int(row["lanes"])))
        memory_counted += memory_gb is not None
        memory_ok += within(memory_gb, peak_gb)
        counted += shown[0][0] is not None
        ok += within(shown[0][0], wall)
        ok_runs += within(shown[1][0], wall)
    time_left_replay(timed, cells, runs, kept)
    plans = plan_cells(list(cells.values()), {}, kept)
    for plan in plans:
        bound = "<= " if plan.upper_bound else ""
        peak = "none" if plan.peak_bytes is None else f"{plan.peak_bytes / 2**30:.2f} GB"
        print(f"plan {plan.cell}: {plan.lanes} lanes, {bound}{plan.estimate_s:.0f} s, peak {peak}")
    total = sum(p.estimate_s for p in plans if p.estimate_s is not None)
    spent = sum(c.seconds(c.lanes, c.stop_epochs or max(1, c.epochs)) for c in kept.values())
    print(
        f"within {WITHIN:.0%} of the time: {ok} of {counted} estimated programs from "
        f"calibrations alone, {ok_runs} with epochs from the other cells' runs"
    )
    print(f"plan total: {total:.0f} s; the calibrations' own training: {spent:.0f} s")
    print(
        f"peak memory within {WITHIN:.0%}: {memory_ok} of {memory_counted} programs with an "
        "estimate from calibrations"
    )
    print(
        f"cal_within={ok} cal_runs_within={ok_runs} cal_estimated={counted} "
        f"calibration_s={spent:.1f} cal_memory_within={memory_ok} "
        f"cal_memory_estimated={memory_counted}"
    )


def time_left_replay(
    timed: list[tuple[str, float, float | None, int]], cells: dict, runs: dict, kept: dict
) -> None:
    """The run's time left after each program, the programs run cheapest first by the
    calibrated plan as `reference_suite.py` orders them, each taking its measured time: the
    plan of the programs left, made again from the calibrations and the runs of the programs
    done (as `podbench benchmark` does after each program), beside the programs left weighed
    by lanes at the pace so far (`podbench.experiments.benchmark.time_left`), against the time
    that was left. Last `eta_median_error_plan=P eta_median_error_lanes=P` (the median
    absolute error, in %, over the programs but the last)."""
    import numpy as np

    from podbench.experiments.benchmark import time_left
    from podbench.experiments.plan import plan_cells, price, rates_of

    order = sorted(timed, key=lambda t: t[2] or 0.0)
    seconds, lanes = [t[1] for t in order], [float(t[3]) for t in order]
    # planned once, as the run plans as it begins; priced again after each program
    members = {t[0]: [cells[c] for c in t[0].split()] for t in order}
    planned_once = {names: plan_cells(own, {}, kept) for names, own in members.items()}
    errors: dict[str, list[float]] = {"plan": [], "lanes": []}
    print("| after program | time so far (s) | left (s) | by the plan (s) | by lanes (s) |")
    print("|---|---|---|---|---|")
    for k in range(1, len(order)):
        elapsed, left = sum(seconds[:k]), sum(seconds[k:])
        rates = rates_of([r for t in order[:k] for c in t[0].split() for r in runs[c]])
        planned = [
            program_estimate(price(planned_once[t[0]], members[t[0]], rates, kept))
            for t in order[k:]
        ]
        guess = {
            "plan": None if None in planned else sum(p or 0.0 for p in planned),
            "lanes": time_left(lanes, list(range(k)), elapsed),
        }
        for w in errors:
            errors[w].append(abs((guess[w] or 0.0) / left - 1) * 100)
        print(
            f"| {k} | {elapsed:.1f} | {left:.1f} | {error(guess['plan'], left)} | "
            f"{error(guess['lanes'], left)} |"
        )
    print(
        f"eta_median_error_plan={np.median(errors['plan']):.0f} "
        f"eta_median_error_lanes={np.median(errors['lanes']):.0f}"
    )


def at_trained(cells: dict, names: list[str], runs: dict, kept: dict) -> float | None:
    """A program's calibrated cost at the lane-epochs its cells' latest runs trained (the
    calibration's cost per lane-epoch judged apart from how many epochs early stopping
    trains); None for a closed-form program (its fits are its lanes) or one without runs."""
    from podbench.train.calibrate import calibration_key

    calibration = kept.get(calibration_key(cells[names[0]].config))
    if calibration is None or calibration.epochs == 0 or not all(runs[c] for c in names):
        return None
    latest = [json.loads(max(runs[c], key=lambda p: p.stat().st_mtime).read_text()) for c in names]
    return calibration.seconds(1, sum(r["lanes"]["epochs_total"] for r in latest))  # lane-epochs


if __name__ == "__main__":
    main()
