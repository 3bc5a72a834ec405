"""Tests of benchmarks/reference_loop.py, the PyTorch re-implementation of the reference loop."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from podbench import config
from podbench.data.synth import synthesize
from podbench.features.build import build_features
from podbench.train.inputs import prepare

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_loop.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("reference_loop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ref = _load_module()
# One torch thread: behaviour is what is tested here, and two OpenMP threads on a busy machine
# can run many times slower (see the module docstring).
QUIET = dict(members=2, epochs=3, patience=2, threads=1, log=lambda _: None)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference_loop")
    root = synthesize(tmp / "ds", subjects=[8], duration=120)
    cfg = config.from_dict(
        {
            "data": {
                "root": str(root),
                "subjects": [8],
                "lags": {"min": 0, "max": 400, "step": 200},
            },
            "model": {"members": 2},
            "training": {"epochs": 3, "patience": 2},
            "output": {"stores": str(tmp / "stores"), "results": str(tmp / "results")},
        }
    )
    return prepare(cfg, build_features(cfg, log=lambda _: None))


def test_pitom_member_matches_reference_parameter_count():
    member = ref.PitomModel(183, 50)
    assert sum(p.numel() for p in member.parameters()) == 143_254
    ensemble = ref.EnsemblePitomModel(10, 183, 50)
    assert sum(p.numel() for p in ensemble.parameters()) == 1_432_540
    ensemble.eval()
    x = torch.randn(4, 183, 10)
    with torch.no_grad():
        out = ensemble(x)
        mean = torch.stack([m(x) for m in ensemble.models]).mean(0)
    assert out.shape == (4, 50)
    torch.testing.assert_close(out, mean)


def test_batch_metrics_on_known_cases():
    y = torch.eye(4)
    assert ref.cosine_sim(y, y).item() == pytest.approx(1.0)
    assert ref.pairwise_accuracy(y, y).item() == pytest.approx(1.0)
    # cos(pred_i, y_i) = 1 and cos(pred_i, y_j) = 0: CE = log(e + 3) - 1
    assert ref.nll_embedding(y, y).item() == pytest.approx(np.log(np.e + 3) - 1, rel=1e-6)
    # identical predictions tie with every other target: ties count as failures
    assert ref.pairwise_accuracy(torch.ones(4, 4), y).item() == 0.0


def test_flop_count_matches_torch_counter():
    E, T, D, members, batch = 183, 10, 50, 3, 8
    model = ref.EnsemblePitomModel(members, E, D)
    with FlopCounterMode(display=False) as forward:
        out = model(torch.randn(batch, E, T))
    with FlopCounterMode(display=False) as backward:
        torch.nn.functional.mse_loss(out, torch.randn(batch, D)).backward()
    flops = forward.get_total_flops()
    assert ref.count_flops_per_step(E, T, D, members, batch, backward=False) == flops
    flops += backward.get_total_flops()
    assert ref.count_flops_per_step(E, T, D, members, batch) == flops


def test_runs_every_lag_and_fold_deterministically(inputs):
    full = ref.run_reference(inputs, **QUIET)
    n_runs = len(inputs.lags) * len(inputs.folds)
    assert len(full.epochs) == len(full.test_cosine) == len(full.lags) == n_runs
    assert full.lags == [lag for lag in inputs.lags for _ in inputs.folds]
    assert all(1 <= e <= 3 for e in full.epochs)
    assert all(np.isfinite(full.test_cosine)) and full.seconds > 0
    # One torch stream seeded once: the first two runs come out the same when run alone.
    head = ref.run_reference(inputs, lags=inputs.lags[:1], folds=[1, 2], **QUIET)
    assert head.lags == inputs.lags[:1] * 2
    assert head.epochs == full.epochs[:2]
    assert head.test_cosine == full.test_cosine[:2]
    with pytest.raises(ValueError, match="not in the inputs"):
        ref.run_reference(inputs, lags=[-5000], **QUIET)


@pytest.mark.parametrize("patience", [2, 4])
def test_early_stopping_after_patience_non_improving_epochs(inputs, patience):
    # Zero validation targets make the validation cosine 0 at every epoch: epoch 1 improves on
    # -inf, no later epoch is strictly greater, so training stops at epoch 1 + patience.
    fold = inputs.folds[0]
    y = inputs.y.copy()
    y[:, fold.val] = 0.0
    flat = dataclasses.replace(inputs, y=y)
    res = ref.run_reference(
        flat,
        members=1,
        epochs=20,
        patience=patience,
        lags=[0],
        folds=[fold.number],
        threads=1,
        log=lambda _: None,
    )
    assert res.epochs == [1 + patience]
