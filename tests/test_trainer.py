"""The lane trainer: models, lane independence, early stopping, decoding the planted signal,
controls at chance, ridge, determinism and the results folder."""

from __future__ import annotations

import json
from dataclasses import replace

import jax
import numpy as np
import pandas as pd
import pytest
import yaml
from flax import nnx

from podbench import api, registry
from podbench.tasks import task_for
from podbench.train.execute import compile_program, train_lanes
from podbench.train.inputs import lane_inputs, prepare
from podbench.train.lanes import LanePoint, lay_out

from .helpers import make_config

PLANTED_MS = 250
QUIET = dict(log=lambda s: None)


def pitom(n_channels, params=None, n_out=50):
    entry = registry.models.entry("pitom")
    p = {
        "filters": 128,
        "dropout": 0.2,
        "locally_connected": False,
        "reg": 0.0,
        "reg_head": 0.0,
        "head_order": "norm_tanh",
        "init": "torch",
        **(params or {}),
    }
    return entry.obj(
        p, input_shape=(n_channels, 10), output_dim=n_out, head="vector", rngs=nnx.Rngs(0)
    )


def n_params(model) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_pitom_has_the_reference_parameter_count():
    assert n_params(pitom(183)) == 143_254
    # Keras variant: unshared weights per position in the last block (3 positions)
    assert n_params(pitom(183, {"locally_connected": True})) == 143_254 - 32_896 + 3 * (
        2 * 128 * 128 + 128
    )


def test_pitom_max_pool_matches_pytorch():
    import torch

    from podbench.models.layers import max_pool_torch

    x = np.random.default_rng(0).normal(size=(2, 8, 3)).astype(np.float32)  # [B, T, C]
    expected = torch.nn.MaxPool1d(2, 2, padding=1)(torch.from_numpy(x).transpose(1, 2))
    np.testing.assert_array_equal(np.asarray(max_pool_torch(x)), expected.transpose(1, 2).numpy())


@pytest.fixture(scope="module")
def small(standin, tmp_path_factory):
    """A tiny run: 2 lags, 5 folds, 3 members, 3 epochs on a few channels."""
    work = tmp_path_factory.mktemp("small")
    cfg = make_config(
        standin,
        work,
        data={
            "electrodes": "^(G[1-3][0-9]|LGA[1-3][0-9])$",
            "lags": {"min": 0, "max": 400, "step": 200},
        },
        targets={"pca_dim": 8, "min_train_freq": 2},
        model={"members": 3, "params": {"filters": 16}},
        training={"epochs": 3, "patience": 2, "batch_size": 16},
    )
    features = api.build_features(cfg, **QUIET)
    return cfg, prepare(cfg, features)


def lanes_of(cfg, inputs, members=3, group=1, points=None):
    points = points or [
        LanePoint(cfg.training.seed, cfg.training.lr, cfg.training.weight_decay, 0.2)
    ]
    return lay_out(inputs.lags, inputs.folds, members, group, points)


@pytest.mark.slow
@pytest.mark.parametrize("lane_batch", [1, 64], ids=["sequential", "vmapped"])
def test_a_lane_trained_with_others_equals_the_lane_trained_alone(small, lane_batch):
    cfg, inputs = small
    cfg = cfg.replace({"training.epochs": 1, "training.batch_size": 128})  # two steps
    task = task_for(cfg)
    table = lanes_of(cfg, inputs)
    packed = cfg.replace({"training.lane_batch": lane_batch})
    together = train_lanes(packed, task, inputs, table, 1, **QUIET)
    pick = [1, 7, 20]
    sub = replace(table, **{k: getattr(table, k)[pick] for k in table.__dataclass_fields__})
    alone = train_lanes(cfg.replace({"training.lane_chunk": 1}), task, inputs, sub, 1, **QUIET)
    paths = jax.tree_util.tree_leaves_with_path(alone.state["params"])
    for (path, mine), theirs in zip(paths, jax.tree.leaves(together.state["params"])):
        if "conv3" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path):
            # A bias right before BatchNorm has a zero gradient: Adam normalises float noise
            # into steps of up to lr, in any implementation. Bounded by lr x steps.
            assert np.abs(mine - theirs[pick]).max() <= 2 * cfg.training.lr * 2
            continue
        np.testing.assert_allclose(mine, theirs[pick], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(alone.epochs, together.epochs[pick])
    # same config and seed twice: identical predictions
    again = train_lanes(packed, task, inputs, table, 1, **QUIET)
    np.testing.assert_array_equal(again.preds, together.preds)


@pytest.mark.slow
def test_lane_hyper_parameters_and_early_stopping(small):
    cfg, inputs = small
    cfg = cfg.replace({"training.epochs": 6})
    task = task_for(cfg)
    frozen = LanePoint(cfg.training.seed + 1, 0.0, cfg.training.weight_decay, 0.2)
    moving = LanePoint(cfg.training.seed, 1e-2, cfg.training.weight_decay, 0.2)
    table = lanes_of(cfg, inputs, members=1, points=[frozen, moving])
    res = train_lanes(cfg, task, inputs, table, 1, **QUIET)
    lanes = lane_inputs(table, inputs)
    initial = compile_program(cfg, task, inputs, lanes, 1).init(lanes).params
    still = table.point == 0
    for got, init in zip(jax.tree.leaves(res.state["params"]), jax.tree.leaves(initial)):
        np.testing.assert_array_equal(got[still], np.asarray(init)[still])  # lr 0 keeps them
        assert not np.allclose(got[~still], np.asarray(init)[~still])
    # early stopping: a lane stops `patience` epochs after its best one, or at the epoch cap
    expected = np.minimum(cfg.training.epochs, res.best_epoch + 1 + cfg.training.patience)
    np.testing.assert_array_equal(res.epochs, expected)
    assert (res.epochs < cfg.training.epochs).any()


@pytest.mark.slow
def test_joint_ensemble_trains_members_on_their_mean(small):
    cfg, inputs = small
    table = lanes_of(cfg, inputs, members=3, group=3)
    assert len(table) == len(inputs.lags) * len(inputs.folds)
    res = train_lanes(cfg, task_for(cfg), inputs, table, 3, **QUIET)
    assert res.preds.shape[:2] == (len(table), 3)
    kernel = jax.tree.leaves(res.state["params"])[0]
    assert kernel.shape[:2] == (len(table), 3) and not np.allclose(kernel[:, 0], kernel[:, 1])


@pytest.fixture(scope="module")
def decoding(decoding_standin, tmp_path_factory):
    root, csv = decoding_standin
    work = tmp_path_factory.mktemp("decoding")
    cfg = make_config(
        root,
        work,
        trial_name="planted",
        data={"electrodes": str(csv), "lags": {"min": -750, "max": 1000, "step": 500}},
        model={"members": 2},
        training={"epochs": 12, "patience": 3},
    )
    return cfg, api.train(cfg, **QUIET)


@pytest.mark.slow
def test_decoder_finds_the_planted_lag(decoding):
    _, result = decoding
    perf = result.performance.set_index("lags")
    auc = perf["test_word_avg_auc_roc_mean"]
    assert list(auc.index) == [-750, -250, 250, 750]
    assert auc.idxmax() == PLANTED_MS, auc.to_dict()
    assert auc[PLANTED_MS] >= 0.6, auc.to_dict()
    assert auc[-750] < 0.57


def test_results_folder(decoding):
    cfg, result = decoding
    run = result.run_dir
    assert run.parent.name == "planted"
    assert yaml.safe_load((run / "config.yml").read_text()) == cfg.to_dict()
    perf = pd.read_csv(run / "lag_performance.csv")
    assert perf.columns[0] == "lags" and len(perf) == 4
    for key in (
        "test_word_avg_auc_roc",
        "test_word_train_weighted_auc_roc",
        "test_pairwise_accuracy",
        "val_cosine_sim",
        "num_epochs",
        "test_word_top_10",
        "test_occurence_top_1",
    ):
        assert {f"{key}_mean", f"{key}_std", f"{key}_fold_1", f"{key}_fold_5"} <= set(perf.columns)
    folds = perf[[f"test_word_avg_auc_roc_fold_{k}" for k in range(1, 6)]].to_numpy()
    np.testing.assert_allclose(perf["test_word_avg_auc_roc_std"], folds.std(1, ddof=0))
    long = pd.read_csv(run / "metrics.csv")
    assert list(long.columns) == ["lag", "fold", "member", "metric", "value"]
    assert set(long["member"].astype(str)) == {"ensemble", "0", "1"}
    info = json.loads((run / "run.json").read_text())
    assert info["lanes"]["count"] == 4 * 5 * 2 and len(info["lane_table"]) == 40
    assert set(info["keys"]) == {"epochs", "targets", "latents", "training"}
    memory = info["memory_bytes"]  # the program's, as the plan reads it
    assert memory["program_lanes"] == 40 and memory["inputs"] > 0
    assert memory["rss_peak"] >= memory["rss_start"] > memory["inputs"]
    assert (run / "lag_curve.png").stat().st_size > 1000
    assert (run / "checkpoints" / "state").is_dir()
    again = api.train(cfg, **QUIET)
    assert again.skipped and again.run_dir == run


@pytest.mark.slow
def test_ridge_finds_the_planted_lag(decoding):
    cfg, _ = decoding
    result = api.train(cfg.replace({"model.name": "ridge", "model.params": {}}), **QUIET)
    auc = result.performance.set_index("lags")["test_word_avg_auc_roc_mean"]
    assert auc.idxmax() == PLANTED_MS and auc.max() >= 0.6, auc.to_dict()


@pytest.mark.slow
def test_shuffled_targets_are_at_chance(decoding):
    cfg, _ = decoding
    control = cfg.replace(
        {
            "training.shuffle_targets": True,
            "model.members": 1,
            "data.lags": {"min": -750, "max": 500, "step": 1000},
        }
    )
    result = api.train(control, **QUIET)
    auc = result.performance["test_word_avg_auc_roc_mean"]
    assert list(result.performance["lags"]) == [-750, 250]
    assert np.all(np.abs(auc - 0.5) <= 0.05), auc.tolist()


def test_start_from_replaces_the_named_parameters_in_both_copies_and_checks_shapes():
    """A warm start (podbench.train.warm) overwrites exactly the parameters it names, in the
    current and the best copies, as separate buffers; another shape names its source."""
    import jax.numpy as jnp

    from podbench.errors import ConfigError
    from podbench.train.program import State, start_from

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(3, 2, rngs=rngs)
            self.head = nnx.Linear(2, 1, rngs=rngs)

    _, params, rest = nnx.split(Net(nnx.Rngs(0)), nnx.Param, ...)
    params = jax.tree.map(lambda a: jnp.stack([a, a + 1]), params)  # two lanes
    zero = jnp.zeros(2)
    state = State(params, rest, None, params, rest, zero, zero, zero, zero, zero)
    kernel = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    name = "['encoder']['kernel'].value"
    out = start_from(state, {"params": {name: kernel}, "rest": {}, "source": "model.params.x"})
    leaves = {
        jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_flatten_with_path(out.params)[0]
    }
    best = {
        jax.tree_util.keystr(p): a
        for p, a in jax.tree_util.tree_flatten_with_path(out.best_params)[0]
    }
    assert set(leaves) == {
        name,
        "['encoder']['bias'].value",
        "['head']['kernel'].value",
        "['head']['bias'].value",
    }
    np.testing.assert_array_equal(leaves[name], kernel)
    np.testing.assert_array_equal(best[name], kernel)
    assert best[name] is not leaves[name]
    np.testing.assert_array_equal(leaves["['head']['kernel'].value"], params["head"]["kernel"][...])
    with pytest.raises(
        ConfigError,
        match=r"model.params.x: its \['encoder'\]\['kernel'\].value "
        r"has shape \(2, 4, 2\)",
    ):
        start_from(
            state,
            {
                "params": {name: np.zeros((2, 4, 2), np.float32)},
                "rest": {},
                "source": "model.params.x",
            },
        )
