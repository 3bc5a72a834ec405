"""kill -9 at many moments: does any interrupted build or results write leave a half or listed
but unpublished folder?

    python benchmarks/faults.py [--kills 30] [--quick] [--refusals-only] [--work DIR]

On a small stand-in (2 subjects, 120 s) with the closed-form ridge decoder:

1. build-features, killed with SIGKILL after a uniform random delay in [0, one clean build's
   time]; odd iterations start from an empty store root, even ones are stale rebuilds (a
   source file changed). After each kill: complete stores that fail `verify` (corrupt), folders
   listed by `stores ls` under a temporary name (listed but unpublished), then `stores gc`
   (temporaries left after it), then build-features again (clean rerun: exit 0, three stores
   that verify);
2. train --force over complete results, killed the same way: the results folder must be the
   old or the new complete one (half results otherwise) with the reference numbers, then
   `stores gc --results --grace 0` (temporaries and lock files left after it), then `train`
   again (clean rerun: exit 0, "already complete").
3. refusals: each bad input and damage of issue #27 (suite files, reports of damaged benchmark
   folders, incomplete dataset copies, out-of-range values, damaged stores, full disks)
   through the CLI, each with its expected outcome (`REFUSALS`: exit 2 and one line naming the
   file, key or value, nothing under the case's output roots; exit 1 and one line for a full
   disk; or exit 0 and the correct result). Prints a line per case that misses its outcome.
Prints one line of counts per phase and `faults_ok=1` when every count of damage is 0.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from trainer_speed import machine  # noqa: E402

from podbench import config  # noqa: E402
from podbench.data.synth import synthesize  # noqa: E402
from podbench.features.keys import stage_keys  # noqa: E402
from podbench.features.store import Stores  # noqa: E402
from podbench.publish import TMP_TAG, is_lock, is_temp  # noqa: E402

PODBENCH = str(Path(sys.executable).parent / "podbench")
CHANNELS = "sub-01/ieeg/sub-01_task-podcast_channels.tsv"
RESULTS_FILES = (
    "config.yml",
    "lag_performance.csv",
    "metrics.csv",
    "lag_curve.png",
    "run.json",
    "checkpoints/lanes.json",
)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([PODBENCH, *args], capture_output=True, text=True)


def killed(args: list[str], delay: float) -> None:
    proc = subprocess.Popen([PODBENCH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def timed(*args) -> float:
    t0 = time.perf_counter()
    done = cli(*args)
    if done.returncode != 0:
        raise SystemExit(f"clean run failed: {done.stderr}")
    return time.perf_counter() - t0


def make_data(work: Path) -> Path:
    """The stand-in, with the channels table a real file (changed for stale rebuilds)."""
    data = work / "ds"
    if not data.exists():
        synthesize(data, subjects=[1, 3], duration=120)
    return data


def write_config(work: Path, data: Path, changes: dict | None = None) -> Path:
    """work/faults.yml: ridge on subject 1, two lags, two folds, roots under `work`; `changes`
    (section -> fields) merged in."""
    raw = {
        "trial_name": "faults",
        "data": {
            "root": str(data),
            "subjects": [1],
            "electrodes": "^G[0-9]+$",
            "lags": {"min": -200, "max": 200, "step": 200},
        },
        "targets": {"pca_dim": 5},
        "model": {"name": "ridge", "members": 1},
        "training": {"n_folds": 2},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    for section, fields in (changes or {}).items():
        raw[section] = {**raw.get(section, {}), **fields}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "faults.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def build_phase(work: Path, data: Path, cfg: Path, kills: int, rng: random.Random) -> dict:
    root = work / "stores"
    stores = Stores(root)
    shutil.rmtree(root, ignore_errors=True)
    clean = timed("build-features", "--config", str(cfg))
    counts = {
        "kills": 0,
        "clean_reruns": 0,
        "corrupt": 0,
        "listed_unpublished": 0,
        "leftovers_after_gc": 0,
    }
    for i in range(kills):
        if i % 2 == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            with open(data / CHANNELS, "a") as handle:
                handle.write("\n")  # same table, changed file: every store is stale
        killed(["build-features", "--config", str(cfg)], rng.uniform(0, clean))
        counts["kills"] += 1
        if root.exists():
            counts["corrupt"] += sum(
                bool(stores.verify(path)) for _, _, path, _ in stores.complete_stores()
            )
            listing = cli("stores", "ls", "--stores", str(root)).stdout
            counts["listed_unpublished"] += sum(
                TMP_TAG in line for line in listing.splitlines() if not line.startswith("(")
            )
            cli("stores", "gc", "--stores", str(root))
            counts["leftovers_after_gc"] += len(stores.leftovers())
        rerun = cli("build-features", "--config", str(cfg))
        # the config's three stores are complete (a stale rebuild leaves the old keys beside
        # them: keys follow content) and every complete store verifies
        wanted = {
            (stage, key)
            for stage, key in stage_keys(config.load(cfg)).items()
            if stage != "training"
        }
        complete = stores.complete_stores()
        ok = (
            rerun.returncode == 0
            and wanted <= {(s, k) for s, k, _, _ in complete}
            and not any(stores.verify(path) for _, _, path, _ in complete)
        )
        counts["clean_reruns"] += ok
        if not ok:
            report_rerun("build-features", counts["kills"], rerun)
    return counts


def report_rerun(phase: str, kill: int, rerun: subprocess.CompletedProcess) -> None:
    """Say what a rerun that was not clean printed (its exit code and last lines)."""
    tail = rerun.stdout.strip().splitlines()[-3:] + rerun.stderr.strip().splitlines()[-3:]
    print(
        f"{phase}: rerun after kill {kill} not clean (exit {rerun.returncode}): "
        + " | ".join(tail),
        flush=True,
    )


def train_phase(work: Path, cfg: Path, kills: int, rng: random.Random) -> dict:
    trial = work / "results" / "faults"
    shutil.rmtree(work / "results", ignore_errors=True)
    cli("build-features", "--config", str(cfg))
    clean = timed("train", "--config", str(cfg))
    (run_dir,) = [p for p in trial.iterdir() if p.is_dir()]
    reference = (run_dir / "lag_performance.csv").read_text()
    counts = {
        "kills": 0,
        "clean_reruns": 0,
        "half_results": 0,
        "changed_numbers": 0,
        "leftovers_after_gc": 0,
    }
    for _ in range(kills):
        killed(["train", "--config", str(cfg), "--force"], rng.uniform(0, clean))
        counts["kills"] += 1
        complete = all((run_dir / name).is_file() for name in RESULTS_FILES)
        counts["half_results"] += not complete
        if complete:
            counts["changed_numbers"] += (run_dir / "lag_performance.csv").read_text() != reference
        cli(
            "stores",
            "gc",
            "--stores",
            str(work / "stores"),
            "--results",
            str(work / "results"),
            "--grace",
            "0",
        )
        counts["leftovers_after_gc"] += sum(is_temp(p) or is_lock(p) for p in trial.iterdir())
        rerun = cli("train", "--config", str(cfg))
        ok = rerun.returncode == 0 and "already complete" in rerun.stdout
        counts["clean_reruns"] += ok
        if not ok:
            report_rerun("train", counts["kills"], rerun)
    return counts


# --------------------------------------------------------------------------- refusals


@dataclass
class Refusal:
    """One case: `command(case folder, dataset, built work folder)` prepares what it needs in
    the case folder and returns the argv; the outcome expected is `exit` with `fragment` in
    the one stderr line (exit 0: in stdout)."""

    exit: int
    fragment: str
    command: Callable[[Path, Path, Path], list[str]]
    stream: str = "stderr"  # where a refusal's line is: stdout for check-data's problem lines
    result: Callable[[Path], bool] | None = None  # exit 0: is the case folder's result right?


def value(**changes) -> Callable[[Path, Path, Path], list[str]]:
    """`train` of the faults config with `changes`, on the case's own empty roots."""
    return lambda case, data, built: [
        PODBENCH,
        "train",
        "--config",
        str(write_config(case, data, changes)),
    ]


def suite_text(case: Path, data: Path, body: str) -> list[str]:
    """`benchmark --suite` of a suite file whose text is `body` (CONFIG: the faults config)."""
    path = case / "suite.yml"
    path.write_bytes(body.replace("CONFIG", str(write_config(case, data))).encode("latin-1"))
    return [PODBENCH, "benchmark", "--suite", str(path)]


def mirror(data: Path, dst: Path, removed: list[str]) -> Path:
    """A copy of the dataset made of symlinks, without the `removed` files."""
    for folder, _, names in os.walk(data):
        rel = Path(folder).relative_to(data)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            if str(rel / name) not in removed and not (str(rel) == "." and name in removed):
                (dst / rel / name).symlink_to(Path(folder) / name)
    return dst


def benchmark_copy(case: Path, built: Path, damage: Callable[[Path], None]) -> list[str]:
    """`report` of a damaged copy of the two-cell benchmark folder `refusal_phase` ran."""
    (folder,) = (built / "refusals-suite" / "results" / "rs").iterdir()
    copy = case / "bench"
    shutil.copytree(folder, copy)
    damage(copy)
    return [PODBENCH, "report", str(copy)]


def index_of(case: Path) -> str:
    return (case / "bench" / "report" / "index.html").read_text()


def cell_dir(folder: Path, cell: str) -> Path:
    return next((folder / "cells" / cell).glob("*/cell.json")).parent


def truncated_metadata(case: Path, data: Path, built: Path) -> list[str]:
    """train over the built stores with latent/zarr.json cut short in a copy of them."""
    shutil.copytree(built / "stores", case / "stores", symlinks=True)
    (meta,) = (case / "stores" / "latents").glob("*/data.zarr/latent/zarr.json")
    meta.write_bytes(meta.read_bytes()[:100])
    cfg = write_config(case, data)
    return [PODBENCH, "train", "--config", str(cfg)]


DUPLICATE_SET = (
    "name: s\nversion: 1\ncells:\n- name: a\n  config: CONFIG\n"
    "  set: {model.members: 1}\n  set: {model.members: 2}\n"
)
REFUSALS: dict[str, Refusal] = {
    "suite: a cell's set: twice": Refusal(
        2,
        "key 'set' appears twice (lines 6 and 7)",
        lambda c, d, b: suite_text(c, d, DUPLICATE_SET),
    ),
    "suite: name twice": Refusal(
        2,
        "key 'name' appears twice",
        lambda c, d, b: suite_text(
            c, d, "name: s\nname: t\nversion: 1\ncells: [{name: a, config: CONFIG}]\n"
        ),
    ),
    "suite: a path twice in defaults.set": Refusal(
        2,
        "key 'model.members' appears twice",
        lambda c, d, b: suite_text(
            c,
            d,
            (
                "name: s\nversion: 1\ndefaults: {set: {model.members: 1, model.members: 2}}\n"
                "cells: [{name: a, config: CONFIG}]\n"
            ),
        ),
    ),
    "suite: name ..": Refusal(
        2,
        "name = '..': expected one folder name",
        lambda c, d, b: suite_text(
            c, d, "name: ..\nversion: 1\ncells: [{name: a, config: CONFIG}]\n"
        ),
    ),
    "suite: name .": Refusal(
        2,
        "name = '.': expected one folder name",
        lambda c, d, b: suite_text(
            c, d, "name: .\nversion: 1\ncells: [{name: a, config: CONFIG}]\n"
        ),
    ),
    "suite: not UTF-8": Refusal(
        2,
        "not UTF-8 text",
        lambda c, d, b: suite_text(
            c, d, "name: caf\xe9\nversion: 1\ncells: [{name: a, config: CONFIG}]\n"
        ),
    ),
    "suite: YAML syntax error": Refusal(
        2,
        "suite.yml:4:1: not valid YAML",
        lambda c, d, b: suite_text(c, d, "name: s\nversion: 1\ncells: [\n"),
    ),
    "--set: YAML syntax error": Refusal(
        2,
        "--set training.lr=[1, (column 4): not valid YAML",
        lambda c, d, b: [
            PODBENCH,
            "train",
            "--config",
            str(write_config(c, d)),
            "--set",
            "training.lr=[1,",
        ],
    ),
    "report: a cell folder deleted": Refusal(
        2,
        "1 of 2 cells",
        lambda c, d, b: benchmark_copy(c, b, lambda f: shutil.rmtree(f / "cells" / "b")),
    ),
    "report: a cell.json deleted, --partial": Refusal(
        0,
        "report:",
        lambda c, d, b: [
            *benchmark_copy(c, b, lambda f: (cell_dir(f, "b") / "cell.json").unlink()),
            "--partial",
        ],
        result=lambda c: "partial: 1 of 2 cells" in index_of(c),
    ),
    "report: a temporary copy of a cell's folder": Refusal(
        0,
        "report:",
        lambda c, d, b: benchmark_copy(
            c,
            b,
            lambda f: shutil.copytree(
                cell_dir(f, "a"),
                cell_dir(f, "a").with_name(f"{cell_dir(f, 'a').name}{TMP_TAG}99-abcdef12"),
            ),
        ),
        result=lambda c: index_of(c).count('href="cell-a.html"') == 1,
    ),
    "report: a truncated cell.json": Refusal(
        2,
        "damaged cell record",
        lambda c, d, b: benchmark_copy(
            c,
            b,
            lambda f: (cell_dir(f, "a") / "cell.json").write_text(
                '{"schema": "podbench.cell", "ce'
            ),
        ),
    ),
    "check-data: no transcript": Refusal(
        2,
        "stimuli/gpt2-xl/transcript.tsv: missing",
        lambda c, d, b: [
            PODBENCH,
            "check-data",
            "--root",
            str(mirror(d, c / "ds", ["stimuli/gpt2-xl/transcript.tsv"])),
        ],
        "stdout",
    ),
    "check-data: no features.hdf5": Refusal(
        2,
        "stimuli/gpt2-xl/features.hdf5: missing",
        lambda c, d, b: [
            PODBENCH,
            "check-data",
            "--root",
            str(mirror(d, c / "ds", ["stimuli/gpt2-xl/features.hdf5"])),
        ],
        "stdout",
    ),
    "ridge alphas [-1.0]": Refusal(
        2, "model.params.alphas[0] = -1.0", value(model={"params": {"alphas": [-1.0]}})
    ),
    "permutation_seed -1, no shuffle": Refusal(
        2, "training.permutation_seed = -1", value(training={"permutation_seed": -1})
    ),
    "permutation_seed -1, shuffled": Refusal(
        2,
        "training.permutation_seed = -1",
        value(training={"permutation_seed": -1, "shuffle_targets": True}),
    ),
    "mlp hidden [-4]": Refusal(
        2, "model.params.hidden[0] = -4", value(model={"name": "mlp", "params": {"hidden": [-4]}})
    ),
    "num_average_samples 1000": Refusal(
        2, "larger than a lag window", value(preprocess={"params": {"num_average_samples": 1000}})
    ),
    "window_rms num_average_samples 0": Refusal(
        2,
        "num_average_samples = 0",
        value(preprocess={"name": "window_rms", "params": {"num_average_samples": 0}}),
    ),
    "hf model /no/such": Refusal(
        2, "targets.hf_model = '/no/such'", value(targets={"kind": "hf", "hf_model": "/no/such"})
    ),
    "truncated latent/zarr.json": Refusal(2, "latent/zarr.json is truncated", truncated_metadata),
    "disk full while orbax writes": Refusal(
        1,
        "writing the results: disk full",
        lambda c, d, b: [
            "bash",
            "-c",
            f"{sys.executable} -c 'import matplotlib.font_manager'; ulimit -f 300; "
            f"exec {PODBENCH} train --config "
            + str(
                write_config(
                    c,
                    d,
                    {
                        "model": {"name": "mlp", "params": {"hidden": [512]}},
                        "training": {"epochs": 1},
                        "output": {"stores": str(b / "stores"), "results": str(c / "results")},
                    },
                )
            ),
        ],
    ),
    "electrodes: responsive, data root untouched": Refusal(
        0,
        "training",
        lambda c, d, b: [
            PODBENCH,
            "train",
            "--config",
            str(write_config(c, d, {"data": {"electrodes": "responsive"}})),
        ],
        result=lambda c: any((c / "stores" / "electrodes").glob("responsive-*.csv")),
    ),
}


def files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def outcome(
    result: subprocess.CompletedProcess, expected: Refusal, case: Path, written: set[Path]
) -> str | None:
    """What differs from the expected outcome (None: nothing); `written`: the files the
    command added to the case folder (a refusal adds none)."""
    text = result.stdout if expected.stream == "stdout" else result.stderr
    lines = [line for line in text.splitlines() if line.startswith(("error:", "problem:"))]
    lines += [
        line
        for line in result.stderr.splitlines()
        if "Traceback" in line or "Task was destroyed" in line
    ]
    if result.returncode != expected.exit:
        return f"exit {result.returncode}, expected {expected.exit}: {result.stderr[-300:]!r}"
    if expected.exit == 0:
        if expected.fragment not in result.stdout:
            return f"no {expected.fragment!r} in stdout"
        return None if expected.result is None or expected.result(case) else "a wrong result"
    if len(lines) != 1 or expected.fragment not in lines[0]:
        return f"stderr {lines!r}, expected one line with {expected.fragment!r}"
    return f"wrote {sorted(map(str, written))[:3]}" if written else None


def refusal_phase(work: Path, data: Path) -> dict:
    """Every case of REFUSALS in its own folder; the reports read a two-cell ridge benchmark
    run first (seconds)."""
    suite_dir = work / "refusals-suite"
    write_config(suite_dir, data)
    (suite_dir / "s.yml").write_text(
        yaml.safe_dump(
            {
                "name": "rs",
                "version": 1,
                "cells": [
                    {"name": "a", "config": "faults.yml"},
                    {
                        "name": "b",
                        "config": "faults.yml",
                        "set": {"model.params": {"alphas": [10.0]}},
                    },
                ],
            }
        )
    )
    if cli("benchmark", "--suite", str(suite_dir / "s.yml")).returncode != 0:
        raise SystemExit("the refusal phase's benchmark failed")
    dataset = files(data)
    counts = {"cases": 0, "as_expected": 0, "missed": 0}
    for number, (name, expected) in enumerate(REFUSALS.items()):
        case = work / "refusals" / f"{number:02d}"
        case.mkdir(parents=True)
        command = expected.command(case, data, work)
        prepared = files(case)
        result = subprocess.run(command, capture_output=True, text=True)
        problem = outcome(result, expected, case, files(case) - prepared)
        counts["cases"] += 1
        counts["as_expected" if problem is None else "missed"] += 1
        if problem is not None:
            print(f"refusal {name!r}: {problem}", flush=True)
    changed = files(data) ^ dataset
    if changed:
        counts["missed"] += 1
        print(
            f"refusals: files added to or removed from the dataset: {sorted(changed)[:3]}",
            flush=True,
        )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="kills per phase")
    parser.add_argument("--quick", action="store_true", help="5 kills per phase")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="working folder (default: a temporary one, removed afterwards)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--refusals-only", action="store_true", help="only phase 3 (the refusals; about a minute)"
    )
    args = parser.parse_args()
    kills = 5 if args.quick else args.kills
    work = args.work or Path(tempfile.mkdtemp(prefix="podbench-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    print(f"machine: {machine()}; {kills} kills per phase; work folder {work}", flush=True)
    try:
        data = make_data(work)
        cfg = write_config(work, data)
        t0 = time.perf_counter()
        damage, reruns_ok = [], True
        if args.refusals_only:
            timed("build-features", "--config", str(cfg))  # the stores some cases damage a copy of
        else:
            build = build_phase(work, data, cfg, kills, rng)
            print("build-features: " + ", ".join(f"{k} {v}" for k, v in build.items()), flush=True)
            train = train_phase(work, cfg, kills, rng)
            print("train --force: " + ", ".join(f"{k} {v}" for k, v in train.items()), flush=True)
            damage = [
                v for k, v in {**build, **train}.items() if k not in ("kills", "clean_reruns")
            ]
            reruns_ok = build["clean_reruns"] == kills and train["clean_reruns"] == kills
        refusals = refusal_phase(work, data)
        print("refusals: " + ", ".join(f"{k} {v}" for k, v in refusals.items()), flush=True)
        damage.append(refusals["missed"])
        print(f"elapsed {time.perf_counter() - t0:.0f} s")
        print(f"faults_ok={int(not any(damage) and reruns_ok)}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
