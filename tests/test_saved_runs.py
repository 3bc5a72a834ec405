"""Results open without podbench's trainer: api.load_run restores a run's model from its
orbax checkpoint (its predictions score what the run scored), and checkpoints are optional."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podbench import api
from podbench.tasks import task_for

from .helpers import make_config

FEW = "^(G[1-3][0-9]|LGA[1-3][0-9])$"


@pytest.fixture()
def tiny(standin, tmp_path):
    return make_config(
        standin,
        tmp_path,
        trial_name="saved",
        data={"electrodes": FEW, "lags": {"min": 0, "max": 400, "step": 200}},
        targets={"pca_dim": 8, "min_train_freq": 2},
        model={"members": 2},
        training={"epochs": 2, "patience": 1, "n_folds": 3},
    )


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
        scored = members[
            (members["lag"] == lane["lag"])
            & (members["fold"] == lane["fold"])
            & (members["member"] == str(lane["member"]))
            & (members["metric"] == "test_cosine_sim")
        ]["value"].item()
        assert mine == pytest.approx(scored, abs=1e-6)
        checked += 1
    assert checked == 2 * 3 * 2  # lags x folds x members
    # the held-out predictions as a table: test from test_predictions.npz, val from the model;
    # both are predict() on the fold's rows, and the ensemble's scores are the reported ones
    for split in ("test", "val"):
        table = run.predictions(split)
        assert table["prediction"].shape == (2, 3, 3, len(inputs.words), 8)
        assert list(table["member"].values) == ["0", "1", "ensemble"]
        for i, lane in run.model.lanes.iterrows():
            rows = getattr(folds[lane["fold"]], split)
            got = (
                table["prediction"]
                .sel(lag=lane["lag"], fold=lane["fold"], member=str(lane["member"]))
                .values
            )
            np.testing.assert_allclose(got[rows], preds[i, 0, rows], atol=1e-5)
            outside = np.setdiff1d(np.arange(len(inputs.words)), rows)
            assert np.isnan(got[outside]).all()
        for fold in inputs.folds:
            rows = getattr(fold, split)
            ensemble = table["prediction"].sel(lag=0, fold=fold.number, member="ensemble")
            y = table["target"].sel(fold=fold.number).values[rows]
            reported = run.performance.set_index("lags").loc[
                0, f"{split}_cosine_sim_fold_{fold.number}"
            ]
            assert task.split_metrics(ensemble.values[rows], y)["cosine_sim"] == pytest.approx(
                reported, abs=1e-6
            )
    tidy = run.predictions("test")["prediction"].to_dataframe().dropna()
    assert len(tidy) == 2 * 3 * len(inputs.words) * 8  # lag x member x event x out, once each
    assert list(tidy.index.names) == ["lag", "fold", "member", "event", "out"]
    assert set(tidy["word"]) == set(inputs.labels)


def test_checkpoints_false_writes_none_and_keeps_the_run_id(tiny):
    without = api.train(tiny.replace({"training.checkpoints": False}), log=lambda s: None)
    assert not (without.run_dir / "checkpoints").exists()
    assert api.load_run(without.run_dir).model is None
    again = api.train(tiny, log=lambda s: None)  # same run id: its results are complete
    assert again.run_dir == without.run_dir and again.skipped
    assert np.isfinite(without.performance["test_cosine_sim_mean"]).all()


def test_a_trial_folder_loads_its_one_run_and_refuses_two(tiny):
    from podbench.errors import DataError

    cfg = tiny.replace({"model.name": "ridge", "model.params": {}, "model.members": 1})
    first = api.train(cfg, log=lambda s: None).run_dir
    assert api.load_run(first.parent).path == first
    second = api.train(cfg.replace({"training.n_folds": 2}), log=lambda s: None).run_dir
    with pytest.raises(
        DataError,
        match=f"2 runs .*{first.name}.*{second.name}|2 runs .*{second.name}.*{first.name}",
    ):
        api.load_run(first.parent)
    assert api.load_run(second).path == second
    assert api.load_run(first).predictions("test")["prediction"].notnull().any()
    with pytest.raises(DataError, match="only split='test' is kept"):
        api.load_run(first).predictions("val")
