"""kill -9 at many moments: does any interrupted build or results write leave a half or listed
but unpublished folder?

    python benchmarks/faults.py [--kills 30] [--quick] [--work DIR]

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
Prints one line of counts per phase and `faults_ok=1` when every count of damage is 0.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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
RESULTS_FILES = ("config.yml", "lag_performance.csv", "metrics.csv", "lag_curve.png", "run.json",
                 "checkpoints/lanes.json")


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([PODBENCH, *args], capture_output=True, text=True)


def killed(args: list[str], delay: float) -> None:
    proc = subprocess.Popen([PODBENCH, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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


def write_config(work: Path, data: Path) -> Path:
    raw = {"trial_name": "faults",
           "data": {"root": str(data), "subjects": [1], "electrodes": "^G[0-9]+$",
                    "lags": {"min": -200, "max": 200, "step": 200}},
           "targets": {"pca_dim": 5}, "model": {"name": "ridge", "members": 1},
           "training": {"n_folds": 2},
           "output": {"stores": str(work / "stores"), "results": str(work / "results")}}
    path = work / "faults.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def build_phase(work: Path, data: Path, cfg: Path, kills: int, rng: random.Random) -> dict:
    root = work / "stores"
    stores = Stores(root)
    shutil.rmtree(root, ignore_errors=True)
    clean = timed("build-features", "--config", str(cfg))
    counts = {"kills": 0, "clean_reruns": 0, "corrupt": 0, "listed_unpublished": 0,
              "leftovers_after_gc": 0}
    for i in range(kills):
        if i % 2 == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            with open(data / CHANNELS, "a") as handle:
                handle.write("\n")  # same table, changed file: every store is stale
        killed(["build-features", "--config", str(cfg)], rng.uniform(0, clean))
        counts["kills"] += 1
        if root.exists():
            counts["corrupt"] += sum(bool(stores.verify(path))
                                     for _, _, path, _ in stores.complete_stores())
            listing = cli("stores", "ls", "--stores", str(root)).stdout
            counts["listed_unpublished"] += sum(TMP_TAG in line for line in listing.splitlines()
                                                if not line.startswith("("))
            cli("stores", "gc", "--stores", str(root))
            counts["leftovers_after_gc"] += len(stores.leftovers())
        rerun = cli("build-features", "--config", str(cfg))
        # the config's three stores are complete (a stale rebuild leaves the old keys beside
        # them: keys follow content) and every complete store verifies
        wanted = {(stage, key) for stage, key in stage_keys(config.load(cfg)).items()
                  if stage != "training"}
        complete = stores.complete_stores()
        ok = rerun.returncode == 0 and wanted <= {(s, k) for s, k, _, _ in complete} \
            and not any(stores.verify(path) for _, _, path, _ in complete)
        counts["clean_reruns"] += ok
        if not ok:
            report_rerun("build-features", counts["kills"], rerun)
    return counts


def report_rerun(phase: str, kill: int, rerun: subprocess.CompletedProcess) -> None:
    """Say what a rerun that was not clean printed (its exit code and last lines)."""
    tail = (rerun.stdout.strip().splitlines()[-3:] + rerun.stderr.strip().splitlines()[-3:])
    print(f"{phase}: rerun after kill {kill} not clean (exit {rerun.returncode}): "
          + " | ".join(tail), flush=True)


def train_phase(work: Path, cfg: Path, kills: int, rng: random.Random) -> dict:
    trial = work / "results" / "faults"
    shutil.rmtree(work / "results", ignore_errors=True)
    cli("build-features", "--config", str(cfg))
    clean = timed("train", "--config", str(cfg))
    (run_dir,) = [p for p in trial.iterdir() if p.is_dir()]
    reference = (run_dir / "lag_performance.csv").read_text()
    counts = {"kills": 0, "clean_reruns": 0, "half_results": 0, "changed_numbers": 0,
              "leftovers_after_gc": 0}
    for _ in range(kills):
        killed(["train", "--config", str(cfg), "--force"], rng.uniform(0, clean))
        counts["kills"] += 1
        complete = all((run_dir / name).is_file() for name in RESULTS_FILES)
        counts["half_results"] += not complete
        if complete:
            counts["changed_numbers"] += (run_dir / "lag_performance.csv").read_text() != reference
        cli("stores", "gc", "--stores", str(work / "stores"), "--results", str(work / "results"),
            "--grace", "0")
        counts["leftovers_after_gc"] += sum(is_temp(p) or is_lock(p) for p in trial.iterdir())
        rerun = cli("train", "--config", str(cfg))
        ok = rerun.returncode == 0 and "already complete" in rerun.stdout
        counts["clean_reruns"] += ok
        if not ok:
            report_rerun("train", counts["kills"], rerun)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="kills per phase")
    parser.add_argument("--quick", action="store_true", help="5 kills per phase")
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--seed", type=int, default=0)
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
        build = build_phase(work, data, cfg, kills, rng)
        print("build-features: " + ", ".join(f"{k} {v}" for k, v in build.items()), flush=True)
        train = train_phase(work, cfg, kills, rng)
        print("train --force: " + ", ".join(f"{k} {v}" for k, v in train.items()), flush=True)
        damage = [v for k, v in {**build, **train}.items() if k not in ("kills", "clean_reruns")]
        reruns_ok = build["clean_reruns"] == kills and train["clean_reruns"] == kills
        print(f"elapsed {time.perf_counter() - t0:.0f} s")
        print(f"faults_ok={int(not any(damage) and reruns_ok)}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
