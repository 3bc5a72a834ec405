"""The iu_boundary task: events from a boundary table, the stand-in's planted boundary response."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podbench import api, config
from podbench.data.synth import GROUND_TRUTH, IU_BOUNDARIES
from podbench.errors import ConfigError, DataError
from podbench.tasks.iu_boundary import iu_events

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
PLANTED_MS = 250
QUIET = {"log": lambda s: None}


def iu_config(root, **task_params):
    return config.from_dict(
        {
            "task": "iu_boundary",
            "data": {"root": str(root)},
            "task_params": {"boundaries_csv": str(IU_BOUNDARIES), **task_params},
        }
    )


def test_events_lie_inside_ius_away_from_every_boundary(standin):
    cfg = iu_config(standin)
    events = iu_events(cfg)
    table = pd.read_csv(standin / IU_BOUNDARIES)
    bounds = np.sort(table["start"].to_numpy())
    truth = json.loads((standin / GROUND_TRUTH).read_text())
    assert truth["iu_boundaries"]["n_boundaries"] == len(bounds) > 20
    pos = events[events["word"] == "boundary"]
    neg = events[events["word"] == "inside"]
    np.testing.assert_array_equal(pos["start"].to_numpy(), bounds)
    assert len(neg) == 2 * len(pos)
    gap = np.abs(neg["start"].to_numpy()[:, None] - bounds[None, :]).min(axis=1)
    assert gap.min() >= 0.5 - 1e-9
    assert (neg["start"] > bounds[0]).all() and (neg["start"] < bounds[-1]).all()
    assert (np.diff(events["start"]) >= 0).all() and (
        events["word_idx"] == np.arange(len(events))
    ).all()
    pd.testing.assert_frame_equal(iu_events(cfg), events)  # deterministic from the task seed
    other = iu_events(cfg.replace({"task_params.seed": 1}))
    assert not np.array_equal(other["start"], events["start"])
    # the reference's column name `time` reads the same
    table.rename(columns={"start": "time"}).to_csv(standin.parent / "time.csv", index=False)
    same = iu_events(cfg.replace({"task_params.boundaries_csv": str(standin.parent / "time.csv")}))
    pd.testing.assert_frame_equal(same, events)


def test_boundary_channels_respond_to_boundaries(standin):
    """The stand-in's boundary channels peak 250 ms after IU boundaries more than after points
    inside IUs; the other responsive channels do not."""
    import mne

    truth = json.loads((standin / GROUND_TRUTH).read_text())
    events = iu_events(iu_config(standin))
    peak = np.round((events["start"].to_numpy() + 0.25) * 512).astype(int)
    usable = peak < truth["n_times"]
    boundary = (events["word"] == "boundary").to_numpy()[usable]
    for subject in truth["subjects"]:
        label = f"sub-{subject:02d}"
        path = (
            standin / f"derivatives/ecogprep/{label}/ieeg/"
            f"{label}_task-podcast_desc-highgamma_ieeg.fif"
        )
        raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
        at_peak = np.log(raw.get_data())[:, peak[usable]]
        difference = at_peak[:, boundary].mean(1) - at_peak[:, ~boundary].mean(1)
        names = [f"{label}:{n}" for n in raw.ch_names]
        bounding = np.isin(names, truth["boundary_channels"])
        others = np.isin(names, truth["responsive_channels"]) & ~bounding
        assert (
            bounding.any() and not (bounding & ~np.isin(names, truth["responsive_channels"])).any()
        )
        assert difference[bounding].mean() > difference[others].mean() + 0.1


def test_bad_boundary_tables(standin, tmp_path):
    with pytest.raises(ConfigError, match="boundaries_csv is required"):
        config.from_dict({"task": "iu_boundary", "data": {"root": str(standin)}})
    with pytest.raises(ConfigError, match="no such file"):
        iu_events(iu_config(standin, boundaries_csv="nope.csv"))
    (tmp_path / "cols.csv").write_text("onset\n1.0\n2.0\n")
    with pytest.raises(DataError, match="expected a column start"):
        iu_events(iu_config(standin, boundaries_csv=str(tmp_path / "cols.csv")))
    (tmp_path / "text.csv").write_text("start\n1.0\nsoon\n")
    with pytest.raises(DataError, match="row 3 is 'soon'"):
        iu_events(iu_config(standin, boundaries_csv=str(tmp_path / "text.csv")))
    (tmp_path / "close.csv").write_text("start\n1.0\n1.5\n")
    with pytest.raises(DataError, match="room for negatives"):
        iu_events(iu_config(standin, boundaries_csv=str(tmp_path / "close.csv")))


@pytest.mark.slow
def test_boundaries_are_decoded_at_the_planted_lag_from_the_shipped_config(
    decoding_standin, tmp_path
):
    root, csv = decoding_standin
    shipped = config.load(REPO / "configs/tasks/iu_boundary.yml")
    raw = shipped.to_dict()
    raw["data"].update(
        root=str(root),
        electrodes=str(csv),
        lags={"min": PLANTED_MS, "max": PLANTED_MS + 1, "step": 250},
    )
    raw["model"].update(members=1, params={"filters": 32})
    raw["training"].update(epochs=8, patience=5, n_folds=3)
    raw["output"] = {"stores": str(tmp_path / "stores"), "results": str(tmp_path / "results")}
    cfg = config.from_dict(raw)
    planted = api.train(cfg, **QUIET).performance.set_index("lags")
    control = api.train(cfg.replace({"training.shuffle_targets": True}), **QUIET).performance
    auc, chance = planted.loc[PLANTED_MS, "test_roc_auc_mean"], control["test_roc_auc_mean"].iloc[0]
    print(
        f"\niu_boundary: test ROC-AUC at {PLANTED_MS} ms planted {auc:.3f}, shuffled {chance:.3f}"
    )
    assert auc >= 0.7
    assert abs(chance - 0.5) < 0.07
    labels = api.open_store(cfg, "epochs")["label"].values
    assert (labels == "inside").sum() == 2 * (labels == "boundary").sum()
