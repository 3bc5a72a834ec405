"""Results open without podbench's trainer: api.load_run restores a run's model from its
orbax checkpoint (its predictions score what the run scored), and checkpoints are optional."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podbench import api
from podbench.tasks import task_for

from .conftest import make_config

FEW = "^(G[1-3][0-9]|LGA[1-3][0-9])$"


@pytest.fixture()
def tiny(standin, tmp_path):
    return make_config(standin, tmp_path, trial_name="saved",
                       data={"electrodes": FEW, "lags": {"min": 0, "max": 400, "step": 200}},
                       targets={"pca_dim": 8, "min_train_freq": 2}, model={"members": 2},
                       training={"epochs": 2, "patience": 1, "n_folds": 3})


def test_load_run_predicts_what_the_run_scored(tiny):
    result = api.train(tiny, log=lambda s: None)
    run = api.load_run(result.run_dir)
    assert run.config.to_dict() == tiny.to_dict()
    pd.testing.assert_frame_equal(run.performance, result.performance)
    preds = run.model.predict()
    inputs, task = run.model.inputs, task_for(tiny)
    assert preds.shape == (len(run.model.lanes), 1, len(inputs.words), 8)
    members = run.metrics[run.metrics["member"] != "ensemble"]
    folds = {f.number: f for f in inputs.folds}
    checked = 0
    for i, lane in run.model.lanes.iterrows():
        test = folds[lane["fold"]].test
        mine = task.split_metrics(preds[i, 0, test], inputs.y[0][test])["cosine_sim"]
        scored = members[(members["lag"] == lane["lag"]) & (members["fold"] == lane["fold"]) &
                         (members["member"] == str(lane["member"])) &
                         (members["metric"] == "test_cosine_sim")]["value"].item()
        assert mine == pytest.approx(scored, abs=1e-6)
        checked += 1
    assert checked == 2 * 3 * 2  # lags x folds x members


def test_checkpoints_false_writes_none_and_keeps_the_run_id(tiny):
    without = api.train(tiny.replace({"training.checkpoints": False}), log=lambda s: None)
    assert not (without.run_dir / "checkpoints").exists()
    assert api.load_run(without.run_dir).model is None
    again = api.train(tiny, log=lambda s: None)  # same run id: its results are complete
    assert again.run_dir == without.run_dir and again.skipped
    assert np.isfinite(without.performance["test_cosine_sim_mean"]).all()
