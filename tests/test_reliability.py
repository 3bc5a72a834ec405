"""Reliability table: damaged chunks, kills, concurrent trainers, full and read-only roots.

Each fault has its expected outcome: a damaged store is reported by `stores verify` and
refused by `train` with one line (exit 2); a kill leaves the old or the new complete folder and
nothing listed that is not published; two identical trainers train once; a full or read-only
root fails before training (a disk filling during a write, orbax's checkpoint included: exit
1, nothing half left); the demo runs on a read-only stand-in. Runs the real CLI on the small
stand-in, mostly with the closed-form ridge decoder (seconds per run).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from podbench.features.store import DATA, Stores
from podbench.publish import TMP_TAG

PODBENCH = str(Path(sys.executable).parent / "podbench")
pytestmark = pytest.mark.slow


def cli(*args, cwd=None, prefix=()):
    return subprocess.run(
        [*prefix, PODBENCH, *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def write_config(path: Path, root: Path, stores: Path, results: Path, **changes) -> Path:
    raw = {
        "trial_name": "rel",
        "data": {
            "root": str(root),
            "subjects": [1],
            "electrodes": "^G[0-9]+$",
            "lags": {"min": -200, "max": 200, "step": 200},
        },
        "targets": {"pca_dim": 5},
        "model": {"name": "ridge", "members": 1},
        "training": {"n_folds": 2},
        "output": {"stores": str(stores), "results": str(results)},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def built(standin, tmp_path_factory) -> Path:
    """A work folder whose `stores/` holds the ridge config's three complete stores."""
    work = tmp_path_factory.mktemp("reliability")
    cfg = write_config(work / "exp.yml", standin, work / "stores", work / "results")
    done = cli("build-features", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    return work


def fresh_work(work: Path, standin: Path) -> Path:
    """A config with its own (empty) store and results roots under `work`."""
    return write_config(work / "exp.yml", standin, work / "stores", work / "results")


def first_chunk(store: Path, array: str) -> Path:
    chunk = store / DATA / array / "c"
    while chunk.is_dir():
        chunk = sorted(chunk.iterdir())[0]
    return chunk


def damage(chunk: Path, fault: str) -> None:
    if fault == "deleted":
        chunk.unlink()
    elif fault == "truncated":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0x01
        chunk.write_bytes(bytes(data))


EXPECTED = {"deleted": "is missing", "truncated": "is truncated", "flipped": "is altered"}
DAMAGES = [
    (array, fault)
    for array in ("latent", "label", "word")
    for fault in ("deleted", "truncated", "flipped")
]


def test_damaged_chunks_are_reported_and_refused(built):
    """Numeric data, string labels and the word coordinate, each deleted / truncated / flipped
    (one at a time, then restored): verify names the array and the fault; train refuses with
    one line naming the store and the array, and writes no results."""
    cfg = built / "exp.yml"
    stores = Stores(built / "stores")
    ((_, key, store, _),) = [s for s in stores.complete_stores() if s[0] == "latents"]
    for array, fault in DAMAGES:
        chunk = first_chunk(store, array)
        original = chunk.read_bytes()
        damage(chunk, fault)
        try:
            verify = cli("stores", "verify", "--stores", str(built / "stores"))
            train = cli("train", "--config", str(cfg))
        finally:
            chunk.write_bytes(original)
        assert verify.returncode == 1, (array, fault, verify.stdout)
        assert f"array {array!r}" in verify.stdout and EXPECTED[fault] in verify.stdout, (
            array,
            fault,
            verify.stdout,
        )
        lines = train.stderr.strip().splitlines()
        assert train.returncode == 2 and len(lines) == 1, (array, fault, train.stderr[-1500:])
        assert key[:12] in lines[0] or key in lines[0], lines[0]
        assert f"array {array!r}" in lines[0], lines[0]
        assert not list((built / "results").glob("rel/*/run.json"))
    assert cli("stores", "verify", "--stores", str(built / "stores")).returncode == 0


def test_a_truncated_array_metadata_is_refused_in_one_line(built):
    """latent/zarr.json cut short: train names the store and the file (exit 2), no traceback."""
    stores = Stores(built / "stores")
    ((_, key, store, _),) = [s for s in stores.complete_stores() if s[0] == "latents"]
    meta = store / DATA / "latent" / "zarr.json"
    original = meta.read_bytes()
    meta.write_bytes(original[:100])
    try:
        train = cli("train", "--config", str(built / "exp.yml"))
    finally:
        meta.write_bytes(original)
    lines = train.stderr.strip().splitlines()
    assert train.returncode == 2 and len(lines) == 1, train.stderr[-1500:]
    assert key in lines[0] and "latent/zarr.json is truncated" in lines[0], lines[0]


def test_gc_removes_a_damaged_store_and_build_features_rebuilds_it(standin, tmp_path):
    cfg = fresh_work(tmp_path, standin)
    assert cli("build-features", "--config", str(cfg)).returncode == 0
    stores = Stores(tmp_path / "stores")
    ((_, key, store, _),) = [s for s in stores.complete_stores() if s[0] == "latents"]
    damage(first_chunk(store, "latent"), "deleted")
    gc = cli("stores", "gc", "--stores", str(tmp_path / "stores"))
    assert gc.returncode == 0 and str(store) in gc.stdout
    again = cli("build-features", "--config", str(cfg))
    assert again.returncode == 0 and "latents" in again.stdout and "built" in again.stdout
    assert not stores.verify(store)


def test_a_missing_epochs_chunk_never_publishes_latents(standin, tmp_path):
    cfg = fresh_work(tmp_path, standin)
    assert cli("build-features", "--config", str(cfg)).returncode == 0
    stores = Stores(tmp_path / "stores")
    ((_, key, store, _),) = [s for s in stores.complete_stores() if s[0] == "epochs"]
    damage(first_chunk(store, "ecog"), "deleted")
    other = cli(
        "build-features", "--config", str(cfg), "--set", "preprocess.params.num_average_samples=16"
    )
    lines = other.stderr.strip().splitlines()
    assert other.returncode == 2 and len(lines) == 1 and key[:12] in lines[0], other.stderr
    assert len([s for s in stores.complete_stores() if s[0] == "latents"]) == 1
    assert not stores.leftovers()


def results_state(run_dir: Path) -> str:
    """'complete' (run.json and every file it implies), 'absent' or 'half'."""
    if not run_dir.exists():
        return "absent"
    needed = [
        "config.yml",
        "lag_performance.csv",
        "metrics.csv",
        "lag_curve.png",
        "run.json",
        "checkpoints/lanes.json",
    ]
    return "complete" if all((run_dir / n).is_file() for n in needed) else "half"


def test_kill_during_train_force_leaves_the_old_results(standin, tmp_path):
    cfg = fresh_work(tmp_path, standin)
    first = cli("train", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    (run_dir,) = [p for p in (tmp_path / "results" / "rel").iterdir() if p.is_dir()]
    reference = (run_dir / "lag_performance.csv").read_text()
    trial = run_dir.parent
    rng = random.Random(0)
    for attempt in range(4):
        proc = subprocess.Popen(
            [PODBENCH, "train", "--config", str(cfg), "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while (
            time.time() < deadline
            and proc.poll() is None
            and not any(TMP_TAG in p.name for p in trial.iterdir())
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.3) * attempt)  # 0: as the temporary folder appears
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert results_state(run_dir) == "complete", attempt
        assert (run_dir / "lag_performance.csv").read_text() == reference
    gc = cli(
        "stores",
        "gc",
        "--stores",
        str(tmp_path / "stores"),
        "--results",
        str(tmp_path / "results"),
        "--grace",
        "0",
    )
    assert gc.returncode == 0, gc.stderr
    assert sorted(p.name for p in trial.iterdir()) == [run_dir.name]


def test_a_killed_training_goes_on_from_its_snapshot_with_the_same_results(standin, tmp_path):
    """A trained program killed mid-training, started again with the same command, goes on
    from its last resume snapshot (not from epoch 0) and ends with the results of a run that
    was never killed, bit for bit; its snapshots are gone once the results are written."""
    import numpy as np

    trained = {
        "model__name": "mlp",
        "model__params": {"hidden": [16]},
        "training__epochs": 60,
        "training__patience": 60,
        "training__snapshot_every_s": 0,
    }
    stores = tmp_path / "stores"
    straight = write_config(tmp_path / "a.yml", standin, stores, tmp_path / "a", **trained)
    assert (done := cli("train", "--config", str(straight))).returncode == 0, done.stderr
    killed = write_config(tmp_path / "b.yml", standin, stores, tmp_path / "b", **trained)
    proc = subprocess.Popen(
        [PODBENCH, "train", "--config", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def snapshots() -> list[Path]:
        return [p for p in stores.glob("snapshots/*/chunk-*.npz") if TMP_TAG not in p.name]

    deadline = time.time() + 300
    while time.time() < deadline and not snapshots():
        assert proc.poll() is None, "the run ended before its first snapshot"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((tmp_path / "b").rglob("lag_performance.csv"))  # killed before its results
    again = cli("train", "--config", str(killed))
    assert again.returncode == 0, again.stderr
    resumed = [line for line in again.stdout.splitlines() if line.startswith("resuming")]
    assert len(resumed) == 1 and "at epoch 1 " not in resumed[0], again.stdout
    (a,) = (tmp_path / "a").rglob("lag_performance.csv")
    (b,) = (tmp_path / "b").rglob("lag_performance.csv")
    assert a.read_bytes() == b.read_bytes()
    with (
        np.load(a.parent / "test_predictions.npz") as pa,
        np.load(b.parent / "test_predictions.npz") as pb,
    ):
        assert sorted(pa.files) == sorted(pb.files)
        for name in pa.files:
            np.testing.assert_array_equal(pa[name], pb[name])
    assert not list(stores.glob("snapshots/*"))


def test_kill_during_a_stale_rebuild_lists_nothing_unpublished(standin, tmp_path):
    from .helpers import mirror

    channels = "sub-01/ieeg/sub-01_task-podcast_channels.tsv"
    data = mirror(standin, tmp_path / "ds", {channels: (standin / channels).read_bytes()})
    cfg = write_config(tmp_path / "exp.yml", data, tmp_path / "stores", tmp_path / "results")
    assert cli("build-features", "--config", str(cfg)).returncode == 0
    root = tmp_path / "stores"
    with open(data / channels, "a") as handle:  # a changed table: new stores, killed mid-build
        handle.write("\n")
    proc = subprocess.Popen(
        [PODBENCH, "build-features", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(root.glob(f"*/*{TMP_TAG}*/{DATA}")):
        time.sleep(0.002)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stores = Stores(root)
    listed = cli("stores", "ls", "--stores", str(root)).stdout
    assert TMP_TAG not in listed
    for _stage, key, path, _ in stores.complete_stores():
        assert TMP_TAG not in path.name and not stores.verify(path)
        info = cli("stores", "info", key[:8], "--stores", str(root))
        assert info.returncode == 0, info.stderr  # never "ambiguous"
    gc = cli("stores", "gc", "--stores", str(root))
    assert gc.returncode == 0 and not stores.leftovers()
    again = cli("build-features", "--config", str(cfg))
    assert again.returncode == 0
    from podbench import config
    from podbench.features.keys import stage_keys

    wanted = {k for stage, k in stage_keys(config.load(cfg)).items() if stage != "training"}
    assert wanted <= {key for _, key, _, _ in stores.complete_stores()}  # the edited table's


def test_two_identical_trainers_train_once(standin, tmp_path):
    """From empty roots: one builds the stores while the other waits, then one trains."""
    cfg = fresh_work(tmp_path, standin)
    procs = [
        subprocess.Popen(
            [PODBENCH, "train", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [out for out, _ in outs if "training " in out and " lanes (" in out]
    assert len(trained) == 1, outs
    assert sum("already complete" in out for out, _ in outs) == 1
    trial = tmp_path / "results" / "rel"
    assert [p.name for p in trial.iterdir() if not p.is_dir()] == []  # no lock file left


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def in_mount(mounts: str, *args) -> subprocess.CompletedProcess:
    """Run the CLI in a private mount namespace after `mounts` (shell commands)."""
    command = " ".join(f"'{a}'" for a in (PODBENCH, *args))
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"{mounts} && exec {command}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


needs_unshare = pytest.mark.skipif(not unshare_works(), reason="needs unshare -rm (mounts)")


@needs_unshare
@pytest.mark.parametrize(
    "root, mount, fragment",
    [
        ("results", "mount -t tmpfs -o size=1m,ro tmpfs {dir}", "output.results"),
        ("results", "mount -t tmpfs -o size=1m tmpfs {dir}", "needs about"),
        ("stores", "mount -t tmpfs -o size=1m,ro tmpfs {dir}", "output.stores"),
        ("stores", "mount -t tmpfs -o size=1m tmpfs {dir}", "needs about"),
    ],
)
def test_full_or_read_only_roots_fail_before_anything_is_built(
    standin, tmp_path, root, mount, fragment
):
    (tmp_path / "stores").mkdir()
    (tmp_path / "results").mkdir()
    cfg = write_config(tmp_path / "exp.yml", standin, tmp_path / "stores", tmp_path / "results")
    result = in_mount(mount.format(dir=tmp_path / root), "train", "--config", str(cfg))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert "training" not in result.stdout and not list((tmp_path / "stores").iterdir())


@needs_unshare
def test_a_read_only_store_root_with_every_store_trains(built, standin, tmp_path):
    cfg = write_config(tmp_path / "exp.yml", standin, built / "stores", tmp_path / "results")
    ro = (
        f"mount --bind {built / 'stores'} {built / 'stores'} && "
        f"mount -o remount,bind,ro {built / 'stores'}"
    )
    result = in_mount(ro, "train", "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hit" in result.stdout and "built" not in result.stdout


@needs_unshare
def test_the_demo_runs_on_a_read_only_stand_in(standin, tmp_path):
    """A reduced demo (ridge, 1 subject, 2 lags, 2 folds) on a read-only mount of the stand-in:
    nothing is written outside output.stores and output.results (the responsive-electrodes
    table goes into the stores)."""
    ro = f"mount --bind {standin} {standin} && mount -o remount,bind,ro {standin}"
    sets = [
        "model.name=ridge",
        "model.params={}",
        "model.members=1",
        "training.n_folds=2",
        "data.subjects=[1]",
        "data.lags={min: 0, max: 400, step: 200}",
        "targets.pca_dim=5",
        f"output.stores={tmp_path / 'stores'}",
        f"output.results={tmp_path / 'results'}",
    ]
    args = ["demo", "--data", str(standin), *(a for s in sets for a in ("--set", s))]
    result = in_mount(ro, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "stores" / "electrodes").glob("responsive-*.csv"))
    assert list((tmp_path / "results" / "demo").glob("*/run.json"))


def disk_full_run(blocks: int, *args, before: str = "") -> str:
    """The CLI under `ulimit -f blocks` (a write past it fails as a full disk would: EFBIG),
    after the shell command `before`; checks exit 1 and one line on stderr, and returns it."""
    limit = f"{before}; ulimit -f {blocks}" if before else f"ulimit -f {blocks}"
    result = subprocess.run(
        ["bash", "-c", f"{limit}; exec {PODBENCH} {' '.join(args)}"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )  # no progress bars
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


def test_disk_full_while_building_is_one_line_and_leaves_nothing(standin, tmp_path):
    cfg = write_config(tmp_path / "exp.yml", standin, tmp_path / "stores", tmp_path / "results")
    assert "building the epochs store: disk full" in disk_full_run(
        2048, "build-features", "--config", str(cfg)
    )
    stores = Stores(tmp_path / "stores")
    assert not stores.complete_stores() and not stores.leftovers()
    assert not [p for p in (tmp_path / "stores").rglob("*") if p.is_file()]


SAVE_A_CHECKPOINT = """
import sys
from pathlib import Path
import numpy as np
from podbench.train.results import save_checkpoint
rng = np.random.default_rng(0)  # incompressible: tensorstore compresses its chunks
state = {f"w{i}": rng.standard_normal((256, 512), np.float32) for i in range(8)}
try:
    save_checkpoint(Path(sys.argv[1]), state, [])
except OSError as exc:
    sys.exit(f"error: {exc}")
"""


def test_a_checkpoint_write_on_a_full_disk_is_one_oserror_and_nothing_more(tmp_path):
    """Eight 512-kB arrays past `ulimit -f 300`: the writes still in flight when the first
    fails finish on tensorstore's threads after orbax closed its event loop; their "Event
    loop is closed" tracebacks must not reach stderr (they did, most runs, before
    results.save_checkpoint filtered them)."""
    for attempt in range(2):
        done = subprocess.run(
            [
                "bash",
                "-c",
                'ulimit -f 300; exec "$0" -c "$1" "$2"',
                sys.executable,
                SAVE_A_CHECKPOINT,
                str(tmp_path / f"ck{attempt}"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [f"error: [Errno 27] {os.strerror(27)}"], (
            done.stderr
        )


def test_disk_full_while_writing_results_keeps_the_old_results(built, standin, tmp_path):
    """The disk fills while orbax writes a network decoder's checkpoint (MB, past 300 kB; the
    small files before it fit): one line naming the stage, no traceback from orbax's threads,
    exit 1, the old results untouched."""
    cfg = write_config(
        tmp_path / "exp.yml",
        standin,
        built / "stores",
        tmp_path / "results",
        model__name="mlp",
        model__params={"hidden": [512]},
        training__epochs=1,
    )
    assert cli("train", "--config", str(cfg)).returncode == 0
    (run_dir,) = (tmp_path / "results" / "rel").iterdir()
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    fonts = f"{sys.executable} -c 'import matplotlib.font_manager'"  # its cache, written first
    line = disk_full_run(300, "train", "--config", str(cfg), "--force", before=fonts)
    assert "writing the results: disk full" in line
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # the old complete results, untouched
    assert not [p for p in (tmp_path / "results").rglob("*") if TMP_TAG in p.name]
