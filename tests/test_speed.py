"""Trainer speed machinery: the sort-based early-stopping ROC-AUC, 16-bit dropout masks from
hashed bits, vmapped lanes compacted into width buckets as they stop."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics as skm
import yaml

from podbench import api
from podbench.tasks.scoring import masked_auc, masked_macro_auc

from .helpers import make_config


@pytest.mark.parametrize("n", [7, 64, 1500])
def test_sorted_auc_equals_sklearn_with_ties_and_masks(n):
    rng = np.random.default_rng(n)
    for decimals in (0, 1, 6):  # many ties, some ties, almost none
        score = np.round(rng.normal(size=n), decimals).astype(np.float32)
        positive = (rng.random(n) < 0.3).astype(np.float32)
        positive[:2] = [0, 1]
        mask = (rng.random(n) < 0.7).astype(np.float32)
        mask[:2] = 1
        score[mask == 0] = score[0]  # masked rows tied with valid ones change nothing
        valid = mask > 0
        got = masked_auc(jnp.asarray(score), jnp.asarray(positive), jnp.asarray(mask))
        assert float(got) == pytest.approx(
            skm.roc_auc_score(positive[valid], score[valid]), abs=1e-6
        )
    one_class = masked_auc(jnp.asarray(score), jnp.zeros(n), jnp.asarray(mask))
    assert float(one_class) == 0.5


def test_sorted_macro_auc_equals_sklearn_over_present_classes():
    rng = np.random.default_rng(1)
    n, k = 400, 5
    label = rng.integers(0, k, n)
    logits = np.round(rng.normal(size=(n, k)) + np.eye(k)[label], 1).astype(np.float32)
    mask = (rng.random(n) < 0.8).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))
    valid = mask > 0
    got = masked_macro_auc(jnp.asarray(logits), jnp.asarray(label, jnp.float32), jnp.asarray(mask))
    expected = skm.roc_auc_score(label[valid], probs[valid], multi_class="ovr", average="macro")
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # a class absent from the valid rows is left out of the mean
    mask[label == 3] = 0
    valid = mask > 0
    got = masked_macro_auc(jnp.asarray(logits), jnp.asarray(label, jnp.float32), jnp.asarray(mask))
    per_class = [skm.roc_auc_score(label[valid] == c, probs[valid, c]) for c in (0, 1, 2, 4)]
    assert float(got) == pytest.approx(np.mean(per_class), abs=1e-6)


def test_sorted_auc_memory_is_linear_in_rows():
    """500 lanes x 2,000 validation rows x 5 classes: an n x n comparison would need 40 GB."""
    lanes, n, k = 500, 2000, 5
    compiled = (
        jax.jit(jax.vmap(masked_macro_auc))
        .lower(jnp.zeros((lanes, n, k)), jnp.zeros((lanes, n)), jnp.zeros((lanes, n)))
        .compile()
    )
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < 40 * lanes * n * k  # a few arrays of n per lane and class


def test_dropout_keeps_the_rate_and_the_mean():
    from podbench.models.layers import Call, dropout

    x = jnp.ones((64, 50, 40))
    key = jax.random.key(3)
    for rate in (0.0, 0.2, 0.5):
        out = np.asarray(dropout(x, Call(True, key, jnp.float32(rate)), salt=1))
        kept = out != 0
        assert abs(kept.mean() - (1 - rate)) < 0.01
        # inverted dropout, the rate rounded to a multiple of 1/65,536
        np.testing.assert_allclose(out[kept], 1 / (1 - rate), rtol=2 / 65536)
    a = dropout(x, Call(True, key, 0.2), salt=1)
    np.testing.assert_array_equal(a, dropout(x, Call(True, key, 0.2), salt=1))  # reproducible
    assert (np.asarray(a) != np.asarray(dropout(x, Call(True, key, 0.2), salt=2))).mean() > 0.2
    assert (np.asarray(dropout(x, Call(True, key, 1.0), salt=1)) == 0).all()
    np.testing.assert_array_equal(dropout(x, Call(False, key, 0.2), salt=1), x)  # eval mode


def test_mask_bits_are_balanced_and_each_key_keeps_its_own_stream():
    from podbench.models.layers import random_bits

    keys = jax.random.split(jax.random.key(7), 4)
    words = np.asarray(random_bits(keys[0], 1 << 16)).astype(np.uint32)
    bits = np.unpackbits(words.view(np.uint8)).reshape(-1, 32)
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 0.01  # every bit position balanced
    low, high = (words & 0xFFFF).astype(float), (words >> 16).astype(float)
    assert (
        abs(np.corrcoef(low, high)[0, 1]) < 0.02
        and abs(np.corrcoef(low[1:], low[:-1])[0, 1]) < 0.02
    )
    batched = np.asarray(jax.vmap(lambda k: random_bits(k, 1000))(keys))
    for i, key in enumerate(keys):  # under vmap each key draws what it draws alone
        np.testing.assert_array_equal(batched[i], np.asarray(random_bits(key, 1000)))
    assert len({row.tobytes() for row in batched}) == 4


# ---------------------------------------------------------------- compaction of vmapped lanes

LEARNING_RATES = (0.0, 3e-4, 1e-3, 1e-2)
COMPACTION_RUN = textwrap.dedent(
    """
    import logging, sys, numpy as np, jax
    from podbench import api, config
    from podbench.tasks import task_for
    from podbench.train.execute import train_lanes
    from podbench.train.inputs import prepare
    from podbench.train.lanes import LanePoint, lay_out

    class Compiles(logging.Handler):
        count = 0
        def emit(self, record):
            message = record.getMessage()
            Compiles.count += message.startswith("Finished XLA compilation of jit(lane_epoch)")

    LEARNING_RATES = %r
    cfg = config.load(sys.argv[1])
    inputs = prepare(cfg, api.build_features(cfg, log=lambda s: None))
    t = cfg.training
    points = [LanePoint(t.seed, lr, t.weight_decay, 0.2) for lr in LEARNING_RATES]
    table = lay_out(inputs.lags, inputs.folds, 1, 1, points)
    logging.getLogger("jax").addHandler(Compiles())
    with jax.log_compiles(True):
        res = train_lanes(cfg, task_for(cfg), inputs, table, 1, log=lambda s: None)
    leaves = jax.tree_util.tree_leaves_with_path(res.state["params"])
    np.savez(sys.argv[2], epochs=res.epochs, devices=len(jax.devices()), compiles=Compiles.count,
             widths=np.array(res.widths[0]), **{jax.tree_util.keystr(p): a for p, a in leaves})
"""
    % (LEARNING_RATES,)
)


@pytest.fixture(scope="module")
def stopping_config(standin, tmp_path_factory):
    """40 lanes (4 learning rates, one of them 0, x 2 lags x 5 folds) that stop at different
    epochs."""
    work = tmp_path_factory.mktemp("stopping")
    cfg = make_config(
        standin,
        work,
        data={
            "electrodes": "^(G[1-3][0-9]|LGA[1-3][0-9])$",
            "lags": {"min": 0, "max": 400, "step": 200},
        },
        targets={"pca_dim": 8, "min_train_freq": 2},
        model={"members": 1, "params": {"filters": 8}},
        training={"epochs": 10, "patience": 1, "batch_size": 128},
    )
    api.build_features(cfg, log=lambda s: None)
    path = work / "exp.yml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path, run_lanes(path, work / "sequential.npz", 1, 1)


def run_lanes(path, out, lane_batch, devices):
    cfg = yaml.safe_load(path.read_text())
    cfg["training"]["lane_batch"] = lane_batch
    here = out.with_suffix(".yml")
    here.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run(
        [sys.executable, "-c", COMPACTION_RUN, str(here), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 4])
def test_vmapped_lanes_compact_with_bounded_compiles_and_equal_sequential(
    stopping_config, tmp_path, devices
):
    path, sequential = stopping_config
    vmapped = run_lanes(path, tmp_path / "vmap.npz", 64, devices)  # all lanes vmapped
    assert int(vmapped["devices"]) == devices
    epochs = sequential["epochs"]
    assert len(set(epochs.tolist())) >= 3  # lanes stop at different epochs
    # the same epochs but for validation scores within float noise of a tie (vmapped matmuls
    # sum in another order, and training amplifies it: parameters drift up to ~1e-4 apart in
    # 2 epochs, ~1e-3 in 10)
    same = vmapped["epochs"] == epochs
    drift = 2.5e-4 * epochs[same]  # bound per lane, growing with its epochs
    assert same.mean() >= 0.9
    widths = vmapped["widths"].tolist()
    assert widths[0] == 40
    assert len(set(widths)) >= 2 and widths == sorted(widths, reverse=True)  # compacted
    # one compilation per width bucket, never one per count of active lanes
    assert int(vmapped["compiles"]) == len(set(widths)) <= 1 + math.log2(64)
    assert int(sequential["compiles"]) == 1 and set(sequential["widths"].tolist()) == {40}
    for name in sequential.files:
        if name in ("epochs", "devices", "compiles", "widths"):
            continue
        diff = np.abs(sequential[name] - vmapped[name])[same].reshape(same.sum(), -1).max(1)
        if "conv3" in name and "bias" in name:
            # a bias right before BatchNorm has a zero gradient: Adam turns float noise into
            # steps of up to lr
            assert diff.max() <= max(LEARNING_RATES) * 10 * 4, name
        else:
            assert (diff <= drift).all(), (name, diff.max())


@pytest.mark.slow
def test_gpu_script_runs_reduced_on_cpu(tmp_path):
    """benchmarks/gpu.py end to end in its reduced mode, so the GPU run cannot rot."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "--reduced",
            "--reference-lanes",
            "1",
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("podbench, whole standard run on cpu") for line in lines)
    assert any("reference loop on cpu" in line for line in lines)
    assert float(lines[-1].removeprefix("ratio=")) > 0


def test_memory_estimate_counts_lane_state_and_chooses_the_widest_fitting_chunk():

    from podbench import registry
    from podbench.tasks.folds import sequential_folds
    from podbench.tasks.scoring import cosine_rows, masked_mean
    from podbench.train.execute import auto_chunk, memory_estimate
    from podbench.train.lanes import key_data, padded
    from podbench.train.program import CompiledProgram, Data, Lanes

    n, c, d, lanes = 300, 8, 4, 6
    rng = np.random.default_rng(0)
    folds = sequential_folds(n, 5, 0.1)
    train_idx, train_n = padded([folds[i % 5].train for i in range(lanes)])
    val_idx, val_n = padded([folds[i % 5].val for i in range(lanes)])
    ones = np.ones(lanes, np.float32)
    lanes_np = Lanes(
        np.stack([key_data(i) for i in range(lanes)]),
        np.zeros(lanes, np.int32),
        np.zeros(lanes, np.int32),
        np.zeros(lanes, np.int32),
        1e-3 * ones,
        1e-4 * ones,
        0.2 * ones,
        train_idx,
        train_n,
        val_idx,
        val_n,
    )
    data = Data(
        jnp.asarray(rng.normal(size=(n, 1, c, 10)), jnp.float32),
        jnp.asarray(rng.normal(size=(1, n, d)), jnp.float32),
        jnp.zeros((1, 1, c, 1)),
        jnp.ones((1, 1, c, 1)),
    )
    p = {
        "filters": 8,
        "dropout": 0.2,
        "locally_connected": False,
        "reg": 0.0,
        "reg_head": 0.0,
        "head_order": "norm_tanh",
        "init": "torch",
    }
    entry = registry.models.entry("pitom")
    compiled = CompiledProgram(
        lambda rngs: entry.obj(p, input_shape=(c, 10), output_dim=d, head="vector", rngs=rngs),
        group=2,
        batch_size=32,
        patience=3,
        optimizer_name="adamw",
        loss_fn=lambda a, b: jnp.mean((a - b) ** 2, axis=-1),
        stop_fn=lambda a, b, m: masked_mean(cosine_rows(a, b), m),
        stop_mode="max",
        n_train_max=train_idx.shape[1],
        n_val_max=val_idx.shape[1],
        lane_batch=1,
    )
    data_bytes, held, flight = compiled.memory_model(lanes_np, data, exact=True)
    _, _, bound = compiled.memory_model(lanes_np, data, exact=False)
    state = compiled.init(jax.tree.map(lambda a: a[:1], lanes_np))
    real = sum(a.nbytes for a in jax.tree.leaves(state)) + sum(
        a[:1].nbytes for a in jax.tree.leaves(lanes_np)
    )
    assert held == real and data_bytes == sum(a.nbytes for a in jax.tree.leaves(data))
    assert 0 < flight <= bound  # the cheap bound is an upper bound of XLA's figure
    estimate = memory_estimate(compiled, lanes_np, data, 1)
    assert estimate(4) - estimate(3) == 2 * held  # one lane in flight on the sequential path
    assert auto_chunk(lanes, 1, estimate, 2 * estimate(4)) == 4
    assert auto_chunk(lanes, 1, estimate, 1.0) == 1 and auto_chunk(lanes, 1, estimate, 1e15) == 6
