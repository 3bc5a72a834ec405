"""Electrodes chosen by podbench (`data.electrodes: {select: encoding, ...}`) on real stand-ins
and real stores: recovery of the planted responsive channels, calibration without signal, the
store's key and reuse, fit: train blind to each fold's test events, the CSV round trip, the
per-fold masks of the trainer and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from podbench import config
from podbench.cli import main
from podbench.data.recordings import electrodes_from_csv
from podbench.data.synth import GROUND_TRUTH, synthesize
from podbench.errors import ConfigError
from podbench.features.build import build_features, build_selection_store
from podbench.features.context import resolve
from podbench.features.selection import build_selection, fit_rows
from podbench.tasks.folds import folds_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SUBJECT = 8  # the fewest good channels (72): a quick selection


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("planted") / "ds", subjects=[SUBJECT], duration=600)


@pytest.fixture(scope="module")
def silent(tmp_path_factory) -> Path:
    return synthesize(
        tmp_path_factory.mktemp("silent") / "ds", subjects=[SUBJECT], duration=600, snr=0.0
    )


def selection_config(root: Path, work: Path, **selection) -> config.Config:
    raw = {
        "data": {
            "root": str(root),
            "lags": {"min": 0, "max": 200, "step": 200},
            "electrodes": {"select": "encoding", "fit": "all", "permutations": 300, **selection},
        },
        "model": {"name": "ridge"},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    return config.from_dict(raw)


def responsive(root: Path, channels) -> np.ndarray:
    truth = set(json.loads((root / GROUND_TRUTH).read_text())["responsive_channels"])
    return np.array([c in truth for c in channels])


def test_planted_selection_recovers_the_responsive_channels_and_is_reused(planted, tmp_path):
    cfg = selection_config(planted, tmp_path)
    first = build_selection_store(cfg, log=lambda _: None)
    assert [r.status for r in first.reports] == ["built", "built"]
    sel = first.load("selection")
    truth = responsive(planted, sel["channel"].values)
    chosen = sel["selected"].values[0]
    precision = (chosen & truth).sum() / max(1, chosen.sum())
    recall = (chosen & truth).sum() / truth.sum()
    assert precision >= 0.8 and recall >= 0.8, (precision, recall, chosen.sum(), truth.sum())
    folder = first.stores.path("selection", first.keys["selection"])
    assert all(
        (folder / f"{name}.{ext}").is_file()
        for name in ("electrodes", "correlations")
        for ext in ("png", "svg")
    )
    again = build_selection_store(cfg, log=lambda _: None)
    assert [r.status for r in again.reports] == ["hit", "hit"]
    from podbench.features.inspect import listing

    assert "selection" in listing(first.stores)
    other = selection_config(planted, tmp_path, alpha=0.01)
    assert (
        resolve(other)
        and first.keys["selection"]
        != build_selection_store(other, log=lambda _: None).keys["selection"]
    )


def test_without_signal_few_electrodes_are_selected(silent, tmp_path):
    bh = build_selection_store(selection_config(silent, tmp_path), log=lambda _: None)
    assert bh.load("selection")["selected"].values.mean() <= 0.05
    loose = build_selection_store(
        selection_config(silent, tmp_path, correction="none", alpha=0.1), log=lambda _: None
    )
    assert loose.load("selection")["selected"].values.mean() <= 0.2  # about alpha's share


def test_fit_train_never_looks_at_a_folds_test_events(planted, tmp_path):
    cfg = selection_config(
        planted, tmp_path, fit="train", permutations=40, alpha=0.2, correction="none"
    )
    features = build_selection_store(cfg, log=lambda _: None)
    stored = features.load("selection")
    targets = features.load("targets")
    words = stored["word"].values
    labels = np.array([str(w) for w in targets["label"].sel(word=words).values], dtype=object)
    fold = folds_for(cfg, labels)[1]  # fold 2: its test block sits between training rows
    changed = targets.copy(deep=True)
    rng = np.random.default_rng(0)
    rows = np.searchsorted(targets["word"].values, words[fold.test])
    changed["target"].values[rows] = rng.standard_normal((len(rows), changed.sizes["dim"]))
    build_selection(resolve(cfg), changed, tmp_path / "again" / "data.zarr")
    import xarray as xr

    again = xr.open_zarr(tmp_path / "again" / "data.zarr", consolidated=False).load()
    assert [n for n, _ in fit_rows(cfg, labels)] == [1, 2, 3, 4, 5]
    for var in ("r", "p", "selected"):
        np.testing.assert_array_equal(again[var].sel(fold=2).values, stored[var].sel(fold=2).values)
    assert not np.array_equal(again["r"].sel(fold=1).values, stored["r"].sel(fold=1).values)


def test_electrodes_command_writes_a_csv_that_data_electrodes_reads(planted, tmp_path):
    cfg = selection_config(planted, tmp_path)
    path = tmp_path / "select.yml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    out = tmp_path / "chosen.csv"
    result = CliRunner().invoke(main, ["electrodes", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    features = build_selection_store(cfg, log=lambda _: None)
    sel = features.load("selection")
    picks = electrodes_from_csv(resolve(cfg).dataset, out)
    expected = [str(n) for n in sel["name"].values[sel["selected"].values[0]]]
    assert picks == {SUBJECT: expected}
    reread = cfg.replace({"data.electrodes": str(out)})
    assert resolve(reread).electrodes == str(out.resolve())


@pytest.mark.parametrize(
    "setting, message",
    [
        ("data.electrodes.alpha=2", "data.electrodes.alpha = 2"),
        ("data.electrodes.alpah=0.1", "did you mean 'data.electrodes.alpha'"),
        ("data.electrodes.stop=-10", "data.electrodes.stop = -10"),
        ("data.electrodes.fit=test", "data.electrodes.fit = 'test'"),
        ("data.electrodes=[1]", "data.electrodes"),
    ],
)
def test_bad_selection_settings_exit_2_naming_the_key(planted, tmp_path, setting, message):
    path = tmp_path / "select.yml"
    path.write_text(yaml.safe_dump(selection_config(planted, tmp_path).to_dict()))
    result = CliRunner().invoke(
        main,
        ["electrodes", "--config", str(path), "--out", str(tmp_path / "x.csv"), "--set", setting],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_selection_needs_channel_latents_and_targets_fitted_on_all_words(planted, tmp_path):
    with pytest.raises(ConfigError, match="no leading channel axis"):
        config.from_dict(
            {
                "data": {"root": str(planted), "electrodes": {"select": "encoding"}},
                "preprocess": {"name": "foundation", "params": {"checkpoint": "x"}},
            }
        )
    cfg = selection_config(planted, tmp_path).replace({"targets.pca_fit": "train"})
    with pytest.raises(ConfigError, match="fit them on all words"):
        build_selection_store(cfg, log=lambda _: None)
    plain = cfg.replace({"data.electrodes": None})
    result = CliRunner().invoke(
        main,
        ["electrodes", "--config", str(_dump(plain, tmp_path)), "--out", str(tmp_path / "x.csv")],
    )
    assert result.exit_code == 2 and "not a selection" in result.output


def _dump(cfg: config.Config, folder: Path) -> Path:
    path = folder / "cfg.yml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


@pytest.fixture(scope="module")
def shared_stores(tmp_path_factory) -> Path:
    """One store root for the decoders below: a task's selections are built once."""
    return tmp_path_factory.mktemp("shared-stores")


@pytest.mark.parametrize(
    "task, model",
    [
        ("word_embedding", "ridge"),
        ("word_embedding", "pitom"),
        ("content_word", "linear"),
        ("content_word", "mlp"),
    ],
)
def test_both_fits_train_every_kind_of_decoder(planted, shared_stores, tmp_path, task, model):
    from podbench.train.inputs import prepare
    from podbench.train.run import train_points

    for fit in ("all", "train"):
        cfg = selection_config(
            planted, tmp_path, fit=fit, permutations=40, alpha=0.3, correction="none"
        ).replace(
            {
                "task": task,
                "model": {"name": model, "members": 1},
                "training.epochs": 1,
                "trial_name": f"{fit}-{model}",
                "output.stores": str(shared_stores),
            }
        )
        [result] = train_points([cfg], log=lambda _: None)
        assert np.isfinite(result.performance.filter(like="test_").values.astype(float)).any()
        features = build_features(cfg, log=lambda _: None)
        inputs = prepare(cfg, features)
        sel = features.load("selection")
        channels = features.load("latents")["channel"].values
        if fit == "all" or sel["selected"].values.all():
            assert inputs.keep is None
            assert list(channels) == list(sel["channel"].values[sel["selected"].values[0]])
            continue
        assert inputs.keep.shape[:3] == (5, 1, len(channels))
        np.testing.assert_array_equal(
            inputs.keep[:, 0, :, 0] > 0, sel["selected"].sel(channel=channels).values
        )


def test_the_shipped_selection_config_trains_on_a_standin_without_a_table(planted, tmp_path):
    """configs/reference/gpt2_selected.yml as shipped (1,000 shifts, BH at 0.05, fit: train),
    shrunk only: one subject, one lag, one member, one epoch."""
    sets = {
        "data.root": str(planted),
        "data.subjects": f"[{SUBJECT}]",
        "data.lags": "{min: 200, max: 400, step: 200}",
        "model.members": "1",
        "training.epochs": "1",
        "output.stores": str(tmp_path / "stores"),
        "output.results": str(tmp_path / "results"),
    }
    path = REPO / "configs" / "reference" / "gpt2_selected.yml"
    args = [
        "train",
        "--config",
        str(path),
        *(a for k, v in sets.items() for a in ("--set", f"{k}={v}")),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cfg = config.load(path).replace({k: yaml.safe_load(v) for k, v in sets.items()})
    assert cfg.data.selection is not None and cfg.data.selection.permutations == 1000
    features = build_features(cfg, log=lambda _: None)
    assert [r.status for r in features.reports if r.stage == "selection"] == ["hit"]
    sel = features.load("selection")
    assert list(sel["fold"].values) == [1, 2, 3, 4, 5]
    truth = responsive(planted, sel["channel"].values)
    per_fold = sel["selected"].values
    assert per_fold.any(axis=1).all() and (per_fold & truth).sum() >= 0.8 * per_fold.sum()
    (run,) = [p.parent for p in (tmp_path / "results").rglob("run.json")]
    performance = (run / "lag_performance.csv").read_text()
    assert "test_word_avg_auc_roc" in performance
