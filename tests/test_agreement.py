"""What a run id pins: the same config trained under another XLA threading agrees within the
tolerance the docs state, `podbench compare --tolerance` says by how much, and run.json says
where each ran."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from cli import main
from podbench import api
from podbench.experiments.agreement import agreement
from tests.helpers import make_config

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 0.02  # docs/getting_started.md, "What a run id pins"


def _train(root: Path, results: Path, stores: Path, xla_flags: str) -> Path:
    """One small MLP run in a fresh process (XLA reads its flags at start)."""
    sets = [
        f"data.root={root}",
        "data.electrodes=responsive",
        "data.lags={min: 0, max: 400, step: 200}",
        f"output.stores={stores}",
        f"output.results={results}",
        "model.name=mlp",
        "model.params={hidden: [16]}",
        "model.members=1",
        "training.epochs=3",
        "training.patience=3",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "XLA_FLAGS": xla_flags}
    cmd = [
        sys.executable,
        "-m",
        "podbench.cli",
        "train",
        "--config",
        str(REPO / "configs" / "demo.yml"),
        *[a for s in sets for a in ("--set", s)],
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p.parent for p in results.rglob("run.json")]
    return run


@pytest.mark.slow
def test_a_run_id_agrees_across_xla_threading_within_the_stated_tolerance(standin, tmp_path):
    stores = tmp_path / "stores"
    one = _train(
        standin,
        tmp_path / "a",
        stores,
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    )
    many = _train(standin, tmp_path / "b", stores, "")
    assert one.name == many.name  # one run id
    hardware = [json.loads((r / "run.json").read_text())["hardware"] for r in (one, many)]
    assert hardware[0]["xla_flags"] != hardware[1]["xla_flags"] and hardware[0]["cpu"]
    result = CliRunner().invoke(
        main, ["compare", str(one), str(many), "--tolerance", str(TOLERANCE)]
    )
    assert result.exit_code == 0, result.output
    assert f"agree within {TOLERANCE:g}" in result.output
    assert (agreement(one, many).differences <= TOLERANCE).all()


def test_compare_tolerance_finds_the_largest_difference(standin, tmp_path):
    cfg = make_config(
        standin,
        tmp_path,
        data={"electrodes": "responsive", "lags": {"min": 0, "max": 400, "step": 200}},
        model={"name": "ridge", "params": {}, "members": 1},
    )
    run = api.train(cfg, log=lambda s: None).run_dir
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    same = CliRunner().invoke(main, ["compare", str(run), str(copy), "--tolerance", "0"])
    assert same.exit_code == 0 and "agree within 0" in same.output
    perf = pd.read_csv(copy / "lag_performance.csv")
    column = next(c for c in perf.columns if c.startswith("test_") and c.endswith("_fold_2"))
    perf.loc[1, column] += 0.05
    perf.to_csv(copy / "lag_performance.csv", index=False)
    assert agreement(run, copy).differences[column.removesuffix("_fold_2")] == pytest.approx(0.05)
    differ = CliRunner().invoke(main, ["compare", str(run), str(copy), "--tolerance", "0.01"])
    assert differ.exit_code == 1 and column.removesuffix("_fold_2") in differ.output
    # another run id is refused (exit 2), naming both keys
    info = json.loads((copy / "run.json").read_text())
    info["keys"]["training"] = "0" * 64
    (copy / "run.json").write_text(json.dumps(info))
    other = CliRunner().invoke(main, ["compare", str(run), str(copy), "--tolerance", "0.01"])
    assert other.exit_code == 2 and "different ids" in other.stderr
    assert yaml.safe_load((run / "config.yml").read_text())["model"]["name"] == "ridge"
