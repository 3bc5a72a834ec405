"""The Ray engine on a real two-node Ray cluster started on this machine (one CPU per node).

Results equal the local engine's, both nodes work, a node lost mid-program costs nothing but
time, the shared-storage check names the node and path, and a missing Ray is exit 2.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from podbench.cli import main
from podbench.errors import ConfigError, DataError
from podbench.experiments.benchmark import benchmark
from podbench.experiments.config_runs import train_config
from podbench.experiments.sweep import sweep
from podbench.train.run import Program, train_points

from .helpers import make_config

pytestmark = pytest.mark.slow  # Ray clusters: tens of seconds each

try:
    import ray
    from ray.cluster_utils import Cluster

    from podbench.experiments.cluster import RayEngine
except ImportError:  # the CLI test below still runs
    ray = None

needs_ray = pytest.mark.skipif(
    ray is None, reason="ray is not installed (pip install 'podbench[cluster]')"
)

FEW = "^(G[1-3][0-9]|LGA[1-3][0-9])$"
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
GRID = {"model.params.hidden": [[16], [32]], "training.lr": [1e-3, 3e-3]}  # 2 programs x 2 points
POINT_LINE = re.compile(r"point (\d+) (trained|already complete) on (\S+) \(node ([0-9a-f]{8})\)")


def start_cluster(request) -> tuple:
    """A head and a worker node; everything is shut down at the end, even on failure."""
    cluster = None

    def stop():
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()

    request.addfinalizer(stop)
    try:
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        worker = cluster.add_node(**NODE)
        cluster.wait_for_nodes()
    except Exception as exc:  # noqa: BLE001 - any failure to start Ray here is a skip
        pytest.skip(f"cannot start a Ray cluster on this machine: {exc!r}")
    return cluster, worker


@pytest.fixture(scope="module")
def two_nodes(request):
    return start_cluster(request)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """A store root the tests on the module's cluster share (built once, then found)."""
    return tmp_path_factory.mktemp("cluster")


def base_config(standin: Path, work: Path, results: Path | str):
    """Stores under `work`; results in `results` (relative: under `work`)."""
    cfg = make_config(
        standin,
        work,
        trial_name="cl",
        data={"electrodes": FEW, "lags": {"min": 0, "max": 400, "step": 200}},
        targets={"pca_dim": 8, "min_train_freq": 2},
        model={"name": "mlp", "members": 1},
        training={"epochs": 2, "patience": 1},
    )
    return cfg.replace({"output.results": str(work / results)})


def write_grid(path: Path) -> Path:
    path.write_text(yaml.safe_dump(GRID))
    return path


def point_lines(lines: list[str]) -> list[tuple]:
    return [m.groups() for m in map(POINT_LINE.search, lines) if m]


def no_duplicates(folder: Path) -> None:
    """The sweep's points folder holds exactly one result folder per point, each with unique
    rows."""
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) == 4 and summary["run_id"].is_unique
    points = folder / "points"
    runs = sorted(p.name for p in points.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == sorted(summary["run_id"])
    for run in runs:
        metrics = pd.read_csv(points / run / "metrics.csv")
        assert not metrics.duplicated().any()
        perf = pd.read_csv(points / run / "lag_performance.csv")
        assert perf["lags"].is_unique


@needs_ray
def test_ray_sweep_equals_local_on_both_nodes_and_resumes(two_nodes, shared, standin, tmp_path):
    cluster, worker = two_nodes
    grid = write_grid(tmp_path / "grid.yml")
    lines: list[str] = []
    engine = RayEngine(cluster.address, log=lines.append)  # each sweep joins and leaves
    on_ray = sweep(
        base_config(standin, shared, tmp_path / "ray"), grid, log=lines.append, engine=engine
    )
    records = list(engine.records)
    assert [b["status"] for b in engine.builds] == ["built"] * 3  # each store once, on Ray
    # both nodes trained a program, and every point has a line naming its node
    assert {r.node_id for r in records} == {cluster.head_node.node_id, worker.node_id}
    done = point_lines(lines)
    assert sorted(int(p) for p, state, _, _ in done if state == "trained") == [0, 1, 2, 3]
    assert {node for *_, node in done} == {r.node_id[:8] for r in records}

    # a program whose task finds one point complete trains only the missing one
    lost = on_ray.folder / "points" / on_ray.summary["run_id"][1]
    for f in lost.iterdir():
        if f.is_file():
            f.unlink()
    again: list[str] = []
    engine.log = again.append
    sweep(base_config(standin, shared, tmp_path / "ray"), grid, log=again.append, engine=engine)
    assert engine.records[-1].trained == [1] and len(engine.records) == len(records) + 1
    assert {int(p): state for p, state, _, _ in point_lines(again)} == {
        0: "already complete",
        1: "trained",
    }  # in the task
    assert sum("results already complete" in line for line in again) == 2  # program 2

    local = sweep(base_config(standin, shared, tmp_path / "local"), grid, log=lambda s: None)
    pd.testing.assert_frame_equal(on_ray.summary, local.summary)
    assert (on_ray.folder / "summary.csv").read_text() == (local.folder / "summary.csv").read_text()
    assert (on_ray.folder / "summary.png").exists()
    for run_id in local.summary["run_id"]:
        for table in ("lag_performance.csv", "metrics.csv"):
            ray_table = pd.read_csv(on_ray.folder / "points" / run_id / table)
            local_table = pd.read_csv(local.folder / "points" / run_id / table)
            pd.testing.assert_frame_equal(ray_table, local_table, check_exact=True)
    no_duplicates(on_ray.folder)


@needs_ray
def test_storage_check_names_the_node_and_path(two_nodes, standin, tmp_path):
    cluster, _ = two_nodes
    cfg = base_config(standin, tmp_path, "results").replace(
        {"data.root": str(tmp_path / "not-mounted")}
    )
    with (
        RayEngine(cluster.address, log=lambda s: None) as engine,
        pytest.raises(ConfigError) as err,
    ):
        engine.check_shared_storage([cfg])
    message = str(err.value)
    for node in (cluster.head_node, two_nodes[1]):
        assert f"(node {node.node_id[:8]})" in message
    assert f"data.root {tmp_path / 'not-mounted'}" in message and "same path" in message
    assert not list((tmp_path / "stores").glob(".podbench-shared-*"))  # markers removed
    assert not list((tmp_path / "results").glob(".podbench-shared-*"))


@needs_ray
def test_podbench_errors_are_not_retried_and_train_runs_on_ray(
    two_nodes, shared, standin, tmp_path
):
    cluster, _ = two_nodes
    cfg = base_config(standin, shared, tmp_path / "results")
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def bad_input(configs, force=False, log=None):
        (attempts / str(time.time_ns())).touch()
        raise DataError("words.tsv: no column 'onset'")

    with (
        RayEngine(cluster.address, program_fn=bad_input, log=lambda s: None) as engine,
        pytest.raises(DataError, match=r"program 1/1 \(points \[0\]\): words.tsv"),
    ):
        engine.run_programs([Program([0], [cfg])])
    assert len(list(attempts.iterdir())) == 1  # not retried

    lines: list[str] = []
    result = train_config(
        cfg, log=lines.append, engine=RayEngine(cluster.address, log=lines.append)
    )
    assert not result.skipped and (result.run_dir / "run.json").exists()
    assert len(point_lines(lines)) == 1 and lines[-1] == f"results ({cfg.task}): {result.run_dir}"
    again = train_config(
        cfg, log=lambda s: None, engine=RayEngine(cluster.address, log=lambda s: None)
    )
    assert again.skipped and again.run_dir == result.run_dir


def pause_until_released(marks: Path):
    """A program function that says where it started and waits for the test's go-ahead."""

    def program(configs, force=False, log=None):
        node = ray.get_runtime_context().get_node_id()
        (marks / f"started-{node}-{os.getpid()}-{time.time_ns()}").touch()
        deadline = time.time() + 120
        while not (marks / "release").exists() and time.time() < deadline:
            time.sleep(0.1)
        return train_points(configs, force=force, log=log)

    return program


@needs_ray
def test_a_node_lost_mid_program_costs_only_time(request, standin, tmp_path):
    cluster, worker = start_cluster(request)
    ray.init(address=cluster.address)  # the driver, on the head node, survives the loss
    assert ray.get_runtime_context().get_node_id() == cluster.head_node.node_id
    marks = tmp_path / "marks"
    marks.mkdir()
    removed = []

    def remove_worker_once_it_trains():
        deadline = time.time() + 180
        while time.time() < deadline and not list(marks.glob(f"started-{worker.node_id}-*")):
            time.sleep(0.1)
        if list(marks.glob(f"started-{worker.node_id}-*")):
            cluster.remove_node(worker)
            removed.append(time.time())
        (marks / "release").touch()

    killer = threading.Thread(target=remove_worker_once_it_trains, daemon=True)
    killer.start()
    cfg = base_config(standin, tmp_path, "results")
    lines: list[str] = []
    engine = RayEngine(cluster.address, program_fn=pause_until_released(marks), log=lines.append)
    result = sweep(cfg, write_grid(tmp_path / "grid.yml"), log=lines.append, engine=engine)
    killer.join(timeout=10)
    assert removed, "no program started on the worker node"
    started = sorted(p.name.split("-")[1] for p in marks.glob("started-*"))
    assert started.count(worker.node_id) == 1 and started.count(cluster.head_node.node_id) == 2
    assert {r.node_id for r in engine.records} == {cluster.head_node.node_id}  # retried there
    assert sorted(len(r.trained) for r in engine.records) == [2, 2]
    assert sorted(int(p) for p, state, _, _ in point_lines(lines) if state == "trained") == [
        0,
        1,
        2,
        3,
    ]
    no_duplicates(result.folder)
    verify = CliRunner().invoke(main, ["stores", "verify", "--stores", str(tmp_path / "stores")])
    assert verify.exit_code == 0, verify.output
    assert verify.output.count("  ok") == 3 and "leftover" not in verify.output


def test_ray_engine_without_ray_is_exit_2(standin, tmp_path, monkeypatch):
    config = tmp_path / "exp.yml"
    config.write_text(yaml.safe_dump(base_config(standin, tmp_path, "results").to_dict()))
    grid = write_grid(tmp_path / "grid.yml")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    runner = CliRunner()
    for args in (["sweep", "--grid", str(grid)], ["train"]):
        result = runner.invoke(main, [*args, "--config", str(config), "--engine", "ray"])
        assert result.exit_code == 2, result.output
        assert "pip install 'podbench[cluster]'" in result.output
    result = runner.invoke(main, ["train", "--config", str(config), "--address", "auto"])
    assert result.exit_code == 2 and "--address needs --engine ray" in result.output
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- benchmarks on Ray
# (here, beside the other Ray tests: a test file runs in one worker, so two Ray clusters never
# start side by side when the suite runs in parallel)


@pytest.mark.slow
@needs_ray
def test_ray_benchmark_equals_local_and_resumes(two_nodes, small_suite, tmp_path):
    path, local = small_suite
    cluster, _ = two_nodes  # the module's cluster (the sweep tests' engines have left it)
    results = f"output.results={tmp_path / 'ray'}"
    on_ray = benchmark(
        path, [results], RayEngine(cluster.address, log=lambda s: None), log=lambda s: None
    )
    assert on_ray.folder.name == local.folder.name  # the suite id ignores the output roots
    pd.testing.assert_frame_equal(on_ray.leaderboard, local.leaderboard)
    assert (on_ray.folder / "report" / "index.html").is_file()

    # interrupted: the mlp cell lost its cell.json and one null point's results
    mlp = next(on_ray.folder.glob("cells/mlp/*/cell.json"))
    mlp.unlink()
    shutil.rmtree(next((mlp.parent.parent / "null").iterdir()))
    lines: list[str] = []
    again = benchmark(
        path, [results], RayEngine(cluster.address, log=lines.append), log=lines.append
    )
    trained = [m.group(2) for m in map(POINT_LINE.search, lines) if m]
    assert trained.count("trained") == 1 and trained.count("already complete") == 2, lines
    assert again.trained_cells == ["mlp"] and again.skipped_cells == ["ridge"]
    pd.testing.assert_frame_equal(again.leaderboard, local.leaderboard)
