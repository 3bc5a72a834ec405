"""The gallery's shared stand-in: a 120-s, three-subject stand-in of ds005574 made once and
cached, with the stores and results of every example beside it.

Every example calls `config(...)` for a config on it: `configs/demo.yml` with the stand-in's
data root, the cache's store and results roots and reduced settings (6 lags around the
planted 250-ms response, one member, few epochs), plus the example's own overrides.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("PODBENCH_GALLERY_CACHE", REPO / "docs" / "_build" / "standin"))
DATA = CACHE / "data"
STORES = CACHE / "stores"
RESULTS = CACHE / "results"
SUBJECTS = [3, 6, 9]
DURATION = 120.0

REDUCED = [
    f"data.root={DATA}",
    "data.electrodes=responsive",
    "data.lags={min: -500, max: 1000, step: 250}",
    "model.members=1",
    "training.epochs=8",
    "training.patience=3",
    f"output.stores={STORES}",
    f"output.results={RESULTS}",
]


def data() -> Path:
    """The stand-in, made on first use (`podbench synth`); later calls find it."""
    marker = DATA / "derivatives" / "podbench-synth" / "ground_truth.json"
    if not marker.is_file():
        podbench(
            "synth",
            "--out",
            str(DATA),
            "--duration",
            str(DURATION),
            "--subjects",
            *map(str, SUBJECTS),
        )
    return DATA


def config(*overrides: str, base: str = "configs/demo.yml"):
    """A podbench Config on the stand-in: `base` (relative to the repository) with the
    gallery's reduced settings, then `overrides` (PATH=VALUE, as `--set` takes them)."""
    from podbench import api

    data()
    return api.load_config(REPO / base, [*REDUCED, *overrides])


def podbench(*args: str) -> str:
    """Run the podbench command line (as `podbench ARGS...` would) and return its output."""
    done = subprocess.run(
        [sys.executable, "-m", "podbench.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    if done.returncode != 0:
        raise RuntimeError(f"podbench {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def set_args(*overrides: str) -> list[str]:
    """The gallery's reduced settings and `overrides` as `--set` arguments of the CLI."""
    return [arg for item in [*REDUCED, *overrides] for arg in ("--set", item)]
