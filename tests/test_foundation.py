"""Tests of the frozen foundation model: MAE pretraining, the `foundation` preprocessor,
training."""

import hashlib
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from podbench import config
from podbench.data.synth import responsive_electrode_csv, synthesize
from podbench.errors import ConfigError
from podbench.features.build import build_features
from podbench.features.keys import stage_keys
from podbench.features.pretrain import pretrain
from podbench.models.foundation.mae import MaskedAutoencoder

PRETRAIN = {
    "depth": 1,
    "width": 16,
    "heads": 2,
    "patch": 32,
    "steps": 30,
    "batch_size": 8,
    "lr": 3e-3,
    "mask_ratio": 0.5,
    "seed": 0,
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, Path]:
    root = synthesize(tmp_path_factory.mktemp("standin"), subjects=[8], duration=120)
    return root, responsive_electrode_csv(root)


def raw_config(standin, tmp: Path, **preprocess) -> dict:
    root, csv = standin
    return {
        "trial_name": "fm",
        "data": {
            "root": str(root),
            "subjects": [8],
            "electrodes": str(csv),
            "window_width": 0.625,
            "lags": {"min": 0, "max": 500, "step": 250},
        },
        "targets": {"kind": "gpt2", "layer": 24, "pca_dim": 10},
        "preprocess": {"name": "foundation", "params": preprocess},
        "model": {"name": "mlp", "members": 2, "params": {"hidden": [32], "dropout": 0.2}},
        "training": {"epochs": 2, "batch_size": 32, "n_folds": 2},
        "pretrain": dict(PRETRAIN),
        "output": {"stores": str(tmp / "stores"), "results": str(tmp / "results")},
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


def pretrain_raw(standin, workdir, **pretrain_overrides) -> dict:
    raw = raw_config(standin, workdir)
    raw["preprocess"] = {}
    raw["pretrain"].update(pretrain_overrides)
    return raw


@pytest.fixture(scope="module")
def pretrained(standin, workdir) -> Path:
    return pretrain(config.from_dict(pretrain_raw(standin, workdir)), log=lambda line: None)


def foundation_cfg(standin, workdir, **params):
    return config.from_dict(raw_config(standin, workdir, **params))


def test_pretraining_writes_a_complete_folder_and_learns(pretrained):
    assert pretrained.parent.name == "pretrain" and len(pretrained.name) == 64  # a keyed artefact
    assert pretrained.parent.parent.name == "stores"  # of the store root
    from podbench.features.inspect import listing
    from podbench.features.store import Stores

    listed = [
        r
        for r in listing(Stores(pretrained.parent.parent)).splitlines()
        if r.startswith("pretrain")
    ]
    assert len(listed) == 1 and listed[0].split()[1] == pretrained.name[:12]
    for name in ("checkpoint.pt", "config.json", "digest", "loss.csv"):
        assert (pretrained / name).is_file()
    digest = hashlib.sha256((pretrained / "checkpoint.pt").read_bytes()).hexdigest()
    assert (pretrained / "digest").read_text().strip() == digest
    meta = json.loads((pretrained / "config.json").read_text())
    assert meta["pretrain"] == PRETRAIN
    assert meta["architecture"]["width"] == 16 and meta["podbench_version"]
    assert "lags" not in meta["data"] and meta["data"]["subjects"] == [8]
    losses = np.loadtxt(pretrained / "loss.csv", delimiter=",", skiprows=1)[:, 1]
    assert len(losses) == PRETRAIN["steps"]
    assert losses[-5:].mean() < losses[:5].mean()
    held = np.loadtxt(pretrained / "held_out.csv", delimiter=",", skiprows=1, ndmin=2)
    assert held[-1, 0] == PRETRAIN["steps"] and len(held) == 10 and np.isfinite(held).all()
    assert held[-1, 1] < held[0, 1]  # windows never trained on get better too
    assert (pretrained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(pretrained.parent.glob("*.tmp-*"))


def test_pretraining_reruns_skip(standin, workdir, pretrained):
    before = (pretrained / "checkpoint.pt").stat().st_mtime_ns
    lines = []
    cfg = config.from_dict(pretrain_raw(standin, workdir))
    assert pretrain(cfg, log=lines.append) == pretrained
    assert "already complete" in lines[0]
    assert (pretrained / "checkpoint.pt").stat().st_mtime_ns == before


def test_latents_are_built_once(standin, workdir, pretrained, monkeypatch):
    cfg = foundation_cfg(standin, workdir, checkpoint=str(pretrained), batch_size=16)
    first = build_features(cfg, log=lambda line: None)
    report = {r.stage: r for r in first.reports}["latents"]
    assert report.status == "built" and "forward passes" in report.note
    latents = first.open("latents")
    assert latents["latent"].dims == ("word", "lag", "feature")
    assert latents.sizes["lag"] == 2 and latents.sizes["feature"] == PRETRAIN["width"]
    assert np.isfinite(latents["latent"].values).all()

    calls = []
    original = MaskedAutoencoder.forward_features
    monkeypatch.setattr(
        MaskedAutoencoder,
        "forward_features",
        lambda self, *a, **k: calls.append(1) or original(self, *a, **k),
    )
    second = build_features(cfg, log=lambda line: None)
    assert {r.stage: r.status for r in second.reports}["latents"] == "hit"
    assert calls == []


def test_electrode_pooling_keeps_one_vector_per_electrode(standin, workdir, pretrained):
    import torch

    cfg = foundation_cfg(standin, workdir, checkpoint=str(pretrained), pool="electrodes")
    latents = build_features(cfg, log=lambda line: None).open("latents")
    n_channels = 9  # responsive channels of sub-08
    assert latents.sizes["feature"] == n_channels * PRETRAIN["width"]
    assert (
        stage_keys(cfg)["latents"]
        != stage_keys(foundation_cfg(standin, workdir, checkpoint=str(pretrained)))["latents"]
    )

    model = MaskedAutoencoder(
        **json.loads((pretrained / "config.json").read_text())["architecture"]
    )
    x, coords = torch.randn(3, n_channels, 320), torch.randn(n_channels, 3) * 50
    per_electrode = model.forward_features(x, coords, pool="electrodes").view(3, n_channels, -1)
    assert torch.allclose(per_electrode.mean(1), model.forward_features(x, coords), atol=1e-6)
    with pytest.raises(ValueError, match="pool = 'time'"):
        model.forward_features(x, coords, pool="time")


def test_checkpoint_may_name_folder_file_or_pretrain_config(standin, workdir, pretrained):
    pretrain_yaml = workdir / "pretrain.yml"
    pretrain_yaml.write_text(yaml.safe_dump(pretrain_raw(standin, workdir)))
    from podbench.features.foundation import depends

    digests = {
        depends(foundation_cfg(standin, workdir, checkpoint=str(spec)))["checkpoint_sha256"]
        for spec in (pretrained, pretrained / "checkpoint.pt", pretrain_yaml)
    }
    assert digests == {(pretrained / "digest").read_text().strip()}


@pytest.mark.slow
def test_mlp_trains_end_to_end(standin, workdir, pretrained):
    from podbench.experiments.config_runs import train_config

    cfg = foundation_cfg(standin, workdir, checkpoint=str(pretrained))
    result = train_config(cfg, log=lambda line: None)
    assert (result.run_dir / "lag_performance.csv").is_file()
    assert "test_word_avg_auc_roc_mean" in result.performance.columns
    assert list(result.performance["lags"]) == [0, 250]


def test_new_checkpoint_gives_new_latents_key(standin, workdir, pretrained, monkeypatch, capsys):
    monkeypatch.setenv("PODBENCH_PROGRESS_EVERY", "0")  # outside a terminal: a line per step
    other = pretrain(
        config.from_dict(pretrain_raw(standin, workdir, seed=1, steps=3)), log=lambda line: None
    )
    progress = [x for x in capsys.readouterr().err.splitlines() if x.startswith("pretraining: ")]
    assert progress[0].startswith("pretraining: 1/3 steps (33 %), ") and " left" in progress[0]
    assert re.fullmatch(r"pretraining: 3/3 steps in \d+ s", progress[-1])
    assert other != pretrained
    keys = [
        stage_keys(foundation_cfg(standin, workdir, checkpoint=str(p))) for p in (pretrained, other)
    ]
    assert keys[0]["epochs"] == keys[1]["epochs"]
    assert keys[0]["latents"] != keys[1]["latents"]


USER_MODULES = {
    "fm_user_plain": """
        import torch
        class Plain(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.ones(1))
            def forward_features(self, x):
                return x.mean(-1) * self.scale
        def build():
            return Plain()
    """,
    "fm_user_coords": """
        import torch
        class WithCoords(torch.nn.Module):
            def forward_features(self, x, coords):
                return x.std(-1) + 0 * coords[:, 0]
        def build():
            return WithCoords()
    """,
    "fm_user_nofeatures": """
        import torch
        def build():
            return torch.nn.Linear(2, 2)
    """,
}


@pytest.fixture
def user_modules(tmp_path, monkeypatch) -> Iterator[Path]:
    """The user modules, importable from this test's folder only: none imported by an earlier
    test (from its folder, removed once it passed) is reused, and none outlives the test."""
    for name, source in USER_MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in USER_MODULES:
        sys.modules.pop(name, None)


def test_user_modules_with_and_without_coordinates(standin, workdir, tmp_path, user_modules):
    import torch

    weights = tmp_path / "plain.pt"
    torch.save({"scale": torch.full((1,), 2.0)}, weights)
    for module, state in (("fm_user_plain:build", str(weights)), ("fm_user_coords:build", None)):
        cfg = foundation_cfg(standin, workdir, module=module, state_dict=state)
        latents = build_features(cfg, log=lambda line: None).open("latents")
        assert latents.sizes["feature"] == 9  # one feature per responsive channel of sub-08
    assert stage_keys(cfg)["latents"]


def test_errors_are_raised_before_anything_is_written(standin, tmp_path, pretrained, user_modules):
    import torch

    bad = tmp_path / "bad"
    shutil.copytree(pretrained, bad)
    meta = json.loads((bad / "config.json").read_text())
    meta["architecture"]["width"] = 24
    (bad / "config.json").write_text(json.dumps(meta))
    wrong_weights = tmp_path / "wrong.pt"
    torch.save({"other": torch.zeros(3)}, wrong_weights)
    cases = [
        ({"checkpoint": str(tmp_path / "nowhere")}, "preprocess.params.checkpoint"),
        ({}, "preprocess.params.checkpoint is required"),
        ({"checkpoint": str(tmp_path / "nowhere.yml")}, "no such pretrain config"),
        ({"checkpoint": str(bad)}, "does not match the model's architecture"),
        ({"module": "fm_no_such_module:build"}, "preprocess.params.module.*cannot import"),
        ({"module": "fm_user_nofeatures:build"}, "has no method forward_features"),
        (
            {"module": "fm_user_plain:build", "state_dict": str(wrong_weights)},
            "preprocess.params.state_dict.*unexpected other",
        ),
        ({"checkpoint": str(pretrained), "module": "fm_user_plain:build"}, "not both"),
        ({"module": "fm_user_plain:build", "pool": "electrodes"}, "only the built-in model pools"),
    ]
    for i, (params, message) in enumerate(cases):
        work = tmp_path / f"case{i}"
        cfg = foundation_cfg(standin, work, **params)
        with pytest.raises(ConfigError, match=message):
            build_features(cfg, log=lambda line: None)
        assert not (work / "stores").exists()


def test_channels_without_coordinates_get_their_subjects_mean(standin):
    from podbench.data.dataset import Dataset, channel_coordinates

    root, _ = standin
    table = Dataset(root).electrodes(8)
    known = [f"sub-08:{n}" for n in table["name"][:2]]
    coords, missing = channel_coordinates(root, [*known, "sub-08:NOT-LOCALISED"])
    assert missing == ["sub-08:NOT-LOCALISED"]
    assert np.allclose(coords[:2], table[["x", "y", "z"]].to_numpy()[:2])
    assert np.allclose(coords[2], table[["x", "y", "z"]].mean().to_numpy(), atol=1e-4)


def test_pretraining_rejects_heads_that_do_not_divide_width(standin, tmp_path):
    cfg = config.from_dict(pretrain_raw(standin, tmp_path, heads=3))
    with pytest.raises(ConfigError, match="pretrain.heads = 3"):
        pretrain(cfg, log=lambda line: None)
    assert not (tmp_path / "results").exists()


def test_a_resumed_steps_time_left_is_paced_by_what_this_run_did(monkeypatch):
    """A training resumed at epoch 90 of 100 that took 10 s for its first epoch has about
    90 s left (9 epochs at this run's pace), not the 1 s that counting the 90 epochs done
    before the resume as this run's would give."""
    import io

    from podbench import progress

    clock = iter([0.0, 10.0])  # the bar's start, then its first update
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = progress.LogProgress(100, "training 50 lanes", "epoch", 0, out, initial=90)
    bar.update(1)
    assert out.getvalue() == "training 50 lanes: 91/100 epochs (91 %), 10 s, about 90 s left\n"


def test_long_steps_write_progress_lines_to_logs(
    standin, pretrained, tmp_path, monkeypatch, capsys
):
    """Outside a terminal every long step writes progress lines to standard error: the epochs,
    the foundation latents, the training epochs and verifying stores (pretraining: the test
    above); with PODBENCH_PROGRESS_EVERY=0 a line per update, so this reduced run shows each; a
    step shorter than the default 10 s writes none."""
    from podbench.experiments.config_runs import train_config
    from podbench.features.inspect import verify
    from podbench.features.store import Stores

    quiet = {"log": lambda line: None}
    monkeypatch.setenv("PODBENCH_PROGRESS_EVERY", "0")
    train_config(
        config.from_dict(raw_config(standin, tmp_path, checkpoint=str(pretrained))), **quiet
    )
    assert verify(Stores(tmp_path / "stores"), None, **quiet)
    err = capsys.readouterr().err.splitlines()
    for step, unit in [
        ("epochs", "words"),
        (r"latents \(foundation\)", "windows"),
        (r"training \d+ lanes[^:]*", "epochs"),
        ("verifying stores", "B"),
    ]:
        lines = [line for line in err if re.match(f"{step}: ", line)]
        assert len(lines) >= 2, (step, err)
        assert re.fullmatch(
            rf"{step}: \d+/\d+ {unit} \(\d+ %\), \d+ s, about \d+ s left.*", lines[0]
        )
        assert re.fullmatch(rf"{step}: \d+/\d+ {unit} in \d+ s( \[.*\])?", lines[-1])
    monkeypatch.delenv("PODBENCH_PROGRESS_EVERY")
    assert verify(Stores(tmp_path / "stores"), None, **quiet)
    assert capsys.readouterr().err == ""
