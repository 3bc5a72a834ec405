"""Shared fixtures: stand-in datasets written once per test session by `podbench synth`, and
a small benchmark suite run once per test module that asks for it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _one_compilation_cache() -> None:
    """One XLA compilation cache for the session: its workers and the CLI subprocesses the
    tests start inherit it, so a program that another test (or process) compiled is loaded,
    not compiled again. A loaded executable is the compiled one, so no result changes. The
    process that makes the folder removes it at exit."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    path = tempfile.mkdtemp(prefix="podbench-tests-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    atexit.register(shutil.rmtree, path, ignore_errors=True)


_one_compilation_cache()

from podbench.data.synth import responsive_electrode_csv, synthesize  # noqa: E402

from .helpers import MLP, REPO, RIDGE, small_defaults, write_suite  # noqa: E402


@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> Path:
    """Subjects 1 and 3, first 120 s: small, for data-layer and store tests."""
    out = tmp_path_factory.mktemp("standin") / "ds"
    synthesize(out, subjects=[1, 3], duration=120)
    return out


@pytest.fixture(scope="session")
def decoding_standin(tmp_path_factory) -> tuple[Path, Path]:
    """Subjects 3, 6 and 9, first 600 s (enough frequent words for word AUC), with the ground
    truth's responsive channels as an electrode CSV."""
    out = tmp_path_factory.mktemp("decoding") / "ds"
    synthesize(out, subjects=[3, 6, 9], duration=600)
    return out, responsive_electrode_csv(out)


@pytest.fixture(scope="module")
def small_suite(standin, tmp_path_factory):
    """Two cells (ridge, mlp) on the small stand-in, two lags, a few nulls each."""
    work = tmp_path_factory.mktemp("bench")
    defaults = small_defaults(
        standin,
        work,
        "^(G[1-3][0-9]|LGA[1-3][0-9])$",
        {"min": 0, "max": 400, "step": 200},
        **{"targets.pca_dim": 8, "targets.min_train_freq": 2},
    )
    defaults["significance"] = {"permutations": 300}
    path = write_suite(
        work / "suite.yml",
        [
            {"name": "ridge", "config": str(REPO / "configs/demo.yml"), "set": RIDGE},
            {
                "name": "mlp",
                "config": str(REPO / "configs/demo.yml"),
                "set": MLP,
                "significance": {"permutations": 50, "refit": 2, "mode": "circular"},
            },
        ],
        defaults,
    )
    from podbench.experiments.benchmark import benchmark

    with open(work / "benchmark.log", "w") as log:  # its log, read by a test
        return path, benchmark(path, log=lambda line: print(line, file=log))
