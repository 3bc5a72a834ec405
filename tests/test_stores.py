"""Feature stores: keys and reuse, window arithmetic, targets, crash safety, concurrency, verify."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
import yaml
from sklearn.decomposition import PCA

from podbench import api
from podbench.data.dataset import Dataset, glove_key
from podbench.features.store import COMPLETE, DATA, Stores
from podbench.tasks.folds import folds_for
from podbench.tasks.sources import arbitrary_vector

from .helpers import make_config

PODBENCH = str(Path(sys.executable).parent / "podbench")
FEW = "^(G[1-3][0-9]|LGA[1-3][0-9])$"  # a few dozen channels of subjects 1 and 3


def store_dirs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir())


def test_build_once_then_reuse(standin, tmp_path):
    cfg = make_config(standin, tmp_path, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    first = api.build_features(cfg, log=lambda s: None)
    assert [r.status for r in first.reports] == ["built"] * 3
    before = store_dirs(tmp_path / "stores")
    changed = cfg.replace({"model.params.filters": 32, "training.lr": 1e-2, "model.members": 2})
    again = api.build_features(changed, log=lambda s: None)
    assert [r.status for r in again.reports] == ["hit"] * 3
    table = repr(again).splitlines()  # what a notebook cell shows
    assert table[0].split()[:3] == ["stage", "key", "status"]
    assert [line.split()[0] for line in table[1:]] == ["epochs", "targets", "latents"]
    assert all(line.split()[2] == "hit" for line in table[1:])
    features_only = {k: v for k, v in first.keys.items() if k != "training"}
    assert {k: again.keys[k] for k in features_only} == features_only
    assert store_dirs(tmp_path / "stores") == before
    narrower = api.build_features(cfg.replace({"data.window_width": 0.5}), log=lambda s: None)
    assert [r.status for r in narrower.reports] == ["built", "hit", "built"]
    assert api.open_store(cfg, "latents")["latent"].dims == ("word", "lag", "channel", "bin")


def test_windows_are_sample_exact_slices_of_the_recording(standin, tmp_path):
    cfg = make_config(
        standin,
        tmp_path,
        data={
            "subjects": [1, 3],
            "electrodes": "^(G2|LGA10)$",
            "lags": {"min": -1000, "max": 1000, "step": 200},
        },
    )
    features = api.build_features(cfg, log=lambda s: None)
    epochs, latents = features.open("epochs"), features.open("latents")
    assert list(epochs["channel"].values) == ["sub-01:G2", "sub-03:LGA10"]
    assert epochs.attrs["window_samples"] == 320
    raw = mne.io.read_raw_fif(Dataset(standin).derivative_path(3), verbose="error")
    signal_3 = raw.get_data(picks=["LGA10"])[0].astype(np.float32)
    word = epochs.isel(word=40)
    onset = round(float(word["onset"]) * 512)
    assert int(word["onset_sample"]) == onset
    for i, lag in enumerate(range(-1000, 1000, 200)):
        start = onset + round((lag / 1000 - 0.3125) * 512)  # the reference's arithmetic
        expected = signal_3[start : start + 320]
        s = epochs.attrs["lag_starts"][i]
        np.testing.assert_array_equal(word["ecog"].values[1, s : s + 320], expected)
        np.testing.assert_allclose(
            latents["latent"].values[40, i, 1], expected.reshape(10, 32).mean(1), rtol=1e-6
        )
    # words whose span leaves any recording are dropped once, for every lag, and recorded
    n_words = epochs.attrs["n_words_total"]
    assert len(epochs["word"]) + len(epochs.attrs["dropped_words"]) == n_words
    starts = epochs["onset"].values
    assert starts.min() >= 1.3125 and starts.max() <= (120 * 512 - 1) / 512 - 1.3105


def test_gpt2_targets_average_sub_tokens(standin, tmp_path):
    cfg = make_config(
        standin, tmp_path, targets={"pca_dim": None, "layer": 12}, data={"electrodes": FEW}
    )
    targets = api.build_features(cfg, log=lambda s: None).open("targets")
    tokens = Dataset(standin).token_table()
    multi = tokens["word_idx"].value_counts()
    word = int(multi[multi > 1].index[0])
    with h5py.File(standin / "stimuli/gpt2-xl/features.hdf5") as f:
        rows = f["layer-12"][np.flatnonzero(tokens["word_idx"].to_numpy() == word)]
    np.testing.assert_allclose(targets["target"].sel(word=word).values, rows.mean(0), rtol=1e-5)


def test_arbitrary_embeddings_do_not_depend_on_the_hash_seed():
    code = (
        "from podbench.tasks.sources import arbitrary_vector;"
        "print(arbitrary_vector('monkey', 42, 4).tolist())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1", "random")
    }
    assert len(outs) == 1
    a = arbitrary_vector("monkey", 42, 50)
    assert np.all(np.abs(a) <= 1) and not np.allclose(a, arbitrary_vector("monkeys", 42, 50))
    assert not np.allclose(a, arbitrary_vector("monkey", 43, 50))


def test_arbitrary_targets_share_a_vector_per_word_type(standin, tmp_path):
    cfg = make_config(
        standin,
        tmp_path,
        targets={"kind": "arbitrary", "pca_dim": None},
        data={"label_normalisation": "strip", "electrodes": FEW},
    )
    targets = api.build_features(cfg, log=lambda s: None).open("targets")
    labels = [str(v) for v in targets["label"].values]
    the = [i for i, w in enumerate(labels) if w.lower().strip(".,") == "the"]
    values = targets["target"].values
    assert len(the) > 3 and all(np.array_equal(values[the[0]], values[i]) for i in the)


def test_pca_fitted_on_all_words_or_inside_each_fold(standin, tmp_path):
    raw_cfg = make_config(standin, tmp_path, targets={"pca_dim": None}, data={"electrodes": FEW})
    raw = api.build_features(raw_cfg, log=lambda s: None).open("targets")["target"].values
    every = api.build_features(raw_cfg.replace({"targets.pca_dim": 5}), log=lambda s: None)
    reduced = every.open("targets")["target"].values
    expected = PCA(5, svd_solver="full").fit_transform(raw.astype(np.float64))
    np.testing.assert_allclose(np.abs(reduced), np.abs(expected), rtol=1e-3, atol=1e-3)

    per_fold_cfg = raw_cfg.replace({"targets.pca_dim": 5, "targets.pca_fit": "train"})
    features = api.build_features(per_fold_cfg, log=lambda s: None)
    per_fold = features.open("targets")
    assert per_fold["target"].dims == ("fold", "word", "dim") and per_fold.sizes["fold"] == 5
    words = np.intersect1d(features.open("epochs")["word"].values, per_fold["word"].values)
    rows = np.searchsorted(per_fold["word"].values, words)
    labels = np.array([str(w) for w in per_fold["label"].values[rows]], dtype=object)
    for k, fold in enumerate(folds_for(per_fold_cfg, labels)):
        pca = PCA(5, svd_solver="full").fit(raw[rows[fold.train]].astype(np.float64))
        np.testing.assert_allclose(
            np.abs(per_fold["target"].values[k]),
            np.abs(pca.transform(raw.astype(np.float64))),
            rtol=1e-3,
            atol=1e-3,
        )


def test_glove_targets_drop_and_record_out_of_vocabulary_words(standin, tmp_path):
    glove = tmp_path / "glove.txt"
    rng = np.random.default_rng(0)
    vocab = ["the", "a", "monkey", "and", "one", "act", "theres"]
    glove.write_text(
        "".join(f"{w} {' '.join(f'{v:.4f}' for v in rng.normal(size=6))}\n" for w in vocab)
    )
    cfg = make_config(
        standin,
        tmp_path,
        targets={"kind": "glove", "glove_path": str(glove), "pca_dim": None},
        data={"electrodes": FEW},
    )
    features = api.build_features(cfg, log=lambda s: None)
    targets = features.open("targets")
    kept = {glove_key(str(w)) for w in targets["label"].values}
    assert kept <= set(vocab) and "monkey" in kept
    marker = Stores(cfg.output.stores).marker(
        Stores(cfg.output.stores).path("targets", features.keys["targets"])
    )
    assert marker["dropped_words"] and len(marker["dropped_words"]) + targets.sizes["word"] == len(
        Dataset(standin).token_table()["word_idx"].unique()
    )
    assert glove_key("There's,") == "theres" and glove_key("one,") == "one"


def test_keys_follow_content_not_mtimes(standin, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(standin, copy)
    cfg = make_config(copy, tmp_path, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    first = api.build_features(cfg, log=lambda s: None)
    transcript = copy / "stimuli/gpt2-xl/transcript.tsv"
    os.utime(transcript, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime
    touched = api.build_features(cfg, log=lambda s: None)
    assert [r.status for r in touched.reports] == ["hit"] * 3 and touched.keys == first.keys
    transcript.write_text(transcript.read_text().replace("\t0.", "\t0.0", 1))  # new content
    changed = api.build_features(cfg, log=lambda s: None)
    assert [r.status for r in changed.reports] == ["built"] * 3
    assert all(changed.keys[s] != first.keys[s] for s in ("epochs", "targets", "latents"))


def test_a_rebuilt_parent_makes_its_children_stale(standin, tmp_path):
    cfg = make_config(standin, tmp_path, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    first = api.build_features(cfg, log=lambda s: None)
    shutil.rmtree(Stores(tmp_path / "stores").path("epochs", first.keys["epochs"]))
    # a rebuild inside the first build's second writes a byte-identical marker (its `created`
    # has whole seconds), which rightly leaves the children fresh: rebuild in a later second
    time.sleep(1.01 - time.time() % 1)
    statuses = [r.status for r in api.build_features(cfg, log=lambda s: None).reports]
    assert statuses == ["built", "hit", "rebuilt"]  # the latents list the epochs' marker


def test_a_copied_dataset_and_store_root_hit_the_same_stores(standin, tmp_path):
    work = tmp_path / "a"
    cfg = make_config(standin, work, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    first = api.build_features(cfg, log=lambda s: None)
    marker = Stores(work / "stores").marker(
        Stores(work / "stores").path("epochs", first.keys["epochs"])
    )
    assert str(standin) not in json.dumps(marker["fragment"])  # no absolute path in a key
    assert str(standin) not in json.dumps(marker["sources"])
    moved = tmp_path / "elsewhere" / "ds"
    shutil.copytree(standin, moved)
    same_data = make_config(moved, work, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    again = api.build_features(same_data, log=lambda s: None)
    assert again.keys == first.keys and [r.status for r in again.reports] == ["hit"] * 3
    shutil.copytree(work / "stores", tmp_path / "b" / "stores")  # a store root copied elsewhere
    copied = make_config(moved, tmp_path / "b", data={"subjects": [1], "electrodes": "^G[0-9]$"})
    third = api.build_features(copied, log=lambda s: None)
    assert third.keys == first.keys and [r.status for r in third.reports] == ["hit"] * 3
    cache = json.loads((work / "stores" / ".fingerprints.json").read_text())
    assert any(k.startswith(str(standin.resolve())) for k in cache)  # digested once, cached


def write_config(path: Path, root: Path, work: Path, **data) -> Path:
    raw = {
        "data": {"root": str(root), **data},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_kill_9_mid_build_leaves_no_complete_store(standin, tmp_path):
    cfg_path = write_config(
        tmp_path / "exp.yml",
        standin,
        tmp_path,
        electrodes="^(G|LG)",
        lags={"min": -1000, "max": 1000, "step": 100},
    )
    proc = subprocess.Popen(
        [PODBENCH, "build-features", "--config", str(cfg_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = tmp_path / "stores"
    deadline = time.time() + 120
    while time.time() < deadline and not list(root.glob("*/*.tmp-*/" + DATA)):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stores = Stores(root)
    assert stores.leftovers(), "the build was not interrupted"
    complete_before = {s[1] for s in stores.complete_stores()}
    listing = subprocess.run(
        [PODBENCH, "stores", "ls", "--stores", str(root)], capture_output=True, text=True
    ).stdout
    assert "incomplete leftover" in listing
    done = subprocess.run(
        [PODBENCH, "build-features", "--config", str(cfg_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not stores.leftovers() and len(stores.complete_stores()) == 3
    assert complete_before < {s[1] for s in stores.complete_stores()}
    assert all(not stores.verify(path) for _, _, path, _ in stores.complete_stores())


@pytest.mark.slow
def test_two_simultaneous_builds_leave_one_store(standin, tmp_path):
    cfg_path = write_config(tmp_path / "exp.yml", standin, tmp_path, electrodes=FEW)
    procs = [
        subprocess.Popen(
            [PODBENCH, "build-features", "--config", str(cfg_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stores = Stores(tmp_path / "stores")
    assert len(stores.complete_stores()) == 3 and not stores.leftovers()
    statuses = [line.split()[2] for out, _ in outs for line in out.splitlines()[1:4]]
    assert statuses.count("built") == 3 and statuses.count("hit") == 3


def test_verify_finds_a_corrupted_chunk_and_gc_cleans_leftovers(standin, tmp_path):
    cfg = make_config(standin, tmp_path, data={"subjects": [1], "electrodes": "^G[0-9]+$"})
    features = api.build_features(cfg, log=lambda s: None)
    root = tmp_path / "stores"
    ok = subprocess.run(
        [PODBENCH, "stores", "verify", "--stores", str(root)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.count(" ok") == 3
    chunk = next(
        (Stores(root).path("latents", features.keys["latents"]) / DATA / "latent" / "c").rglob("*")
    )
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    bad = subprocess.run(
        [PODBENCH, "stores", "verify", "--stores", str(root)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "CORRUPT" in bad.stdout and "latent" in bad.stdout
    info = subprocess.run(
        [PODBENCH, "stores", "info", features.keys["epochs"][:8], "--stores", str(root)],
        capture_output=True,
        text=True,
    )
    assert info.returncode == 0 and features.keys["epochs"] in info.stdout
    leftover = root / "epochs" / f"{features.keys['epochs']}.tmp-12345-abcdef"
    leftover.mkdir()
    assert Stores(root).gc() == [leftover] and not leftover.exists()
    assert (Stores(root).path("epochs", features.keys["epochs"]) / COMPLETE).exists()
    unused = Stores(root).gc(older_than_days=-1)  # everything counts as unused
    assert len(unused) == 3 and not Stores(root).complete_stores()


def test_missing_store_is_a_clear_error(tmp_path, standin):
    cfg = make_config(standin, tmp_path)
    with pytest.raises(Exception, match="no complete epochs store"):
        api.open_store(cfg, "epochs")


def test_stores_open_without_podbench_and_locks_stay_apart(standin, tmp_path):
    import warnings

    import xarray as xr

    cfg = make_config(standin, tmp_path, data={"subjects": [1], "electrodes": "^G[0-9]$"})
    features = api.build_features(cfg, log=lambda s: None)
    root = tmp_path / "stores"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata: no warning on open
        epochs = xr.open_zarr(root / "epochs" / features.keys["epochs"] / "data.zarr")
        latents = xr.open_zarr(root / "latents" / features.keys["latents"] / "data.zarr")
    assert epochs["time"].attrs["units"] == "s" and epochs["ecog"].attrs["units"] == "V"
    assert epochs["onset"].attrs["units"] == "s" and latents["lag"].attrs["units"] == "ms"
    assert epochs.attrs["key"] == features.keys["epochs"]
    beside = [
        p.name
        for stage in ("epochs", "targets", "latents")
        for p in (root / stage).iterdir()
        if not p.is_dir()
    ]
    assert beside == []  # no lock (or anything else) next to the stores
    assert not list(root.rglob("*.lock"))  # locks are removed when their builder is done
    assert Stores(root).gc() == []
    assert [r.status for r in api.build_features(cfg, log=lambda s: None).reports] == ["hit"] * 3
