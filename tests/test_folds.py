"""Sequential folds with a gap: the words next to each test block train nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from podbench import config
from podbench.errors import ConfigError
from podbench.tasks.folds import make_folds, sequential_folds


@pytest.mark.parametrize("fold", range(5))
def test_a_gap_leaves_out_the_words_next_to_the_test_block(fold):
    plain, gapped = sequential_folds(103, 5, 0.25)[fold], sequential_folds(103, 5, 0.25, 7)[fold]
    np.testing.assert_array_equal(plain.test, gapped.test)
    fitted = np.concatenate([gapped.train, gapped.val])
    assert np.abs(fitted[:, None] - gapped.test[None]).min() == 8  # 7 words between
    left_out = np.setdiff1d(np.concatenate([plain.train, plain.val]), fitted)
    edges = [e for e in (plain.test[0] - 1, plain.test[-1] + 1) if 0 <= e < 103]
    assert len(left_out) == 7 * len(edges)
    assert np.abs(left_out[:, None] - np.array(edges)[None]).min(axis=1).max() < 7
    assert len(gapped.val) == int(np.ceil(0.25 * len(fitted)))  # validation: the tail, as before
    np.testing.assert_array_equal(gapped.val, fitted[len(fitted) - len(gapped.val) :])


def test_gap_errors_name_the_setting():
    with pytest.raises(ConfigError, match="training.gap = 5: only sequential folds"):
        config.from_dict({"training": {"gap": 5, "fold_type": "zero_shot"}})
    with pytest.raises(ConfigError, match="training.gap"):
        config.from_dict({"training": {"gap": -1}})
    with pytest.raises(ConfigError, match="training.gap = 60: leaves a fold of 100 words"):
        make_folds(np.array(["w"] * 100, dtype=object), 5, "sequential", 0.25, 0, gap=60)


@pytest.mark.slow
def test_without_signal_the_words_next_to_training_words_decode_unless_a_gap_parts_them(
    tmp_path,
):
    """On a stand-in with no signal, slow drifts shared by the signals and the (context-
    carrying) targets let the test words next to a training block match their targets; a gap
    of 60 words removes that."""
    from podbench.data.synth import synthesize
    from podbench.train.run import train_points

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from electrode_leakage import edge_advantage  # the benchmark's measure

    root = synthesize(tmp_path / "ds", subjects=[8], duration=300, snr=0.0)
    cfg = config.from_dict(
        {
            "data": {"root": str(root), "lags": {"min": 200, "max": 400, "step": 200}},
            "model": {"name": "ridge"},
            "output": {"stores": str(tmp_path / "stores"), "results": str(tmp_path / "results")},
        }
    )
    [adjacent] = train_points([cfg], log=lambda _: None)
    [parted] = train_points([cfg.replace({"training.gap": 60})], log=lambda _: None)
    near, far = edge_advantage(adjacent.run_dir, 10)
    assert near > far + 0.05, (near, far)
    near, far = edge_advantage(parted.run_dir, 10)
    assert abs(near - far) < 0.05, (near, far)
