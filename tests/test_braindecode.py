"""The braindecode preprocessor: a frozen braindecode.models class per lag window.

`test_with_braindecode` runs a real braindecode model (EEGNeX) whose weights the test saves
with `save_pretrained`; it is skipped where braindecode cannot be imported (here: braindecode
1.8.1 imports torchaudio, and the only torchaudio wheels on this machine's indexes are CUDA
builds for other torch versions, which fail to load next to torch 2.13.0+cpu).
`test_with_a_package_of_braindecodes_interface` runs the same checks everywhere, on a small
package named `braindecode` written by the test, whose model has braindecode's interface:
huggingface_hub's PyTorchModelHubMixin (save_pretrained / from_pretrained, the machinery
braindecode's models inherit), the n_outputs / n_chans / n_times / sfreq constructor
arguments and a `final_layer` head.
"""

from __future__ import annotations

import json
import sys

import mne
import numpy as np
import pytest

from podbench import api, config
from podbench.data.synth import responsive_electrode_csv
from podbench.errors import ConfigError
from podbench.features.build import build_features
from podbench.features.keys import stage_keys

QUIET = {"log": lambda s: None}
MODEL_RATE = 256.0  # the saved model's rate: windows are resampled from 512 Hz


def _braindecode():
    try:
        import braindecode.models  # noqa: F401

        return None
    except (ImportError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


PACKAGE = '''
"""A package with braindecode's model interface, for podbench's tests."""
__version__ = "0.0-test"
'''
MODELS = '''
import torch
from huggingface_hub import PyTorchModelHubMixin


class TinyConv(torch.nn.Module, PyTorchModelHubMixin):
    """conv over time -> mean over time -> final_layer (the head)."""

    def __init__(self, n_outputs=None, n_chans=None, n_times=None, sfreq=None,
                 input_window_seconds=None, chs_info=None, width=6):
        super().__init__()
        if n_times is not None and sfreq is not None and input_window_seconds is not None \\
                and n_times != round(input_window_seconds * sfreq):
            raise ValueError(f"{n_times=} different from {input_window_seconds=} * {sfreq=}")
        if chs_info is not None and len(chs_info) != n_chans:
            raise ValueError(f"{n_chans=} different from the {len(chs_info)} chs_info entries")
        self.n_times = n_times
        self.conv = torch.nn.Conv1d(n_chans, width, 5)
        self.final_layer = torch.nn.Linear(width, n_outputs)

    def forward(self, x):
        assert x.shape[-1] == self.n_times
        return self.final_layer(torch.relu(self.conv(x)).mean(-1))
'''


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 120-s stand-in of one subject, its responsive channels and a work folder."""
    from podbench.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("bd") / "ds", subjects=[8], duration=120)
    return root, responsive_electrode_csv(root), tmp_path_factory.mktemp("bd-work")


def raw_config(small, preprocess: dict) -> dict:
    root, csv, work = small
    return {
        "trial_name": "braindecode",
        "task": "content_word",
        "data": {
            "root": str(root),
            "subjects": [8],
            "electrodes": str(csv),
            "lags": {"min": 250, "max": 251, "step": 250},
        },
        "preprocess": preprocess,
        "model": {"name": "linear", "params": {"alphas": [1.0, 100.0], "max_iter": 30}},
        "training": {"n_folds": 2},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }


def hooked_features(model, x):
    """The input of the model's final_layer for windows x (numpy [n, channel, time])."""
    import torch

    captured = []
    hook = model.final_layer.register_forward_pre_hook(lambda _m, a: captured.append(a[0]))
    with torch.inference_mode():
        model(torch.from_numpy(x.astype(np.float32)))
    hook.remove()
    return captured[0].reshape(len(x), -1).numpy()


def check_preprocessor(small, name: str, make_model, tmp_path):
    """Weights saved locally, latents built once, equal to the model run by hand on the
    MNE-resampled windows, decoded by `linear`; new weights give a new latents key."""
    import torch

    plain = config.from_dict(raw_config(small, {"name": "window_average"}))
    epochs = build_features(plain, **QUIET).open("epochs")
    n_chans, window = epochs.sizes["channel"], int(epochs.attrs["window_samples"])
    n_times = int(round(window * MODEL_RATE / 512.0))
    torch.manual_seed(0)
    model = make_model(n_outputs=2, n_chans=n_chans, n_times=n_times, sfreq=MODEL_RATE)
    model.save_pretrained(tmp_path / "weights")
    assert json.loads((tmp_path / "weights/config.json").read_text())["sfreq"] == MODEL_RATE

    cfg = config.from_dict(
        raw_config(
            small,
            {
                "name": "braindecode",
                "params": {"model": name, "weights": str(tmp_path / "weights"), "batch_size": 16},
            },
        )
    )
    first = build_features(cfg, **QUIET)
    report = {r.stage: r for r in first.reports}["latents"]
    assert report.status == "built" and "forward passes" in report.note
    latents = first.open("latents")
    assert latents["latent"].dims == ("word", "lag", "feature")
    start = int(epochs.attrs["lag_starts"][0])
    x = epochs["ecog"].values[:5, :, start : start + window].astype(np.float64)
    resampled = mne.filter.resample(x, up=MODEL_RATE, down=512.0, axis=-1, verbose="error")
    expected = hooked_features(model.eval(), resampled)
    np.testing.assert_allclose(latents["latent"].values[:5, 0], expected, rtol=1e-4, atol=1e-5)
    assert {r.stage: r.status for r in build_features(cfg, **QUIET).reports}["latents"] == "hit"

    perf = api.train(cfg, **QUIET).performance
    assert np.isfinite(perf["test_roc_auc_mean"]).all()

    torch.manual_seed(1)
    make_model(n_outputs=2, n_chans=n_chans, n_times=n_times, sfreq=MODEL_RATE).save_pretrained(
        tmp_path / "other"
    )
    other = cfg.replace({"preprocess.params.weights": str(tmp_path / "other")})
    assert stage_keys(other)["epochs"] == stage_keys(cfg)["epochs"]
    assert stage_keys(other)["latents"] != stage_keys(cfg)["latents"]
    for bad, message in (
        (str(tmp_path / "nowhere"), "no such directory"),
        (str(tmp_path), "no config.json"),
    ):
        with pytest.raises(ConfigError, match=message):
            stage_keys(cfg.replace({"preprocess.params.weights": bad}))
    with pytest.raises(ConfigError, match="not a braindecode.models class"):
        stage_keys(cfg.replace({"preprocess.params.model": "NoSuchNet"}))


@pytest.mark.skipif(
    _braindecode() is not None,
    reason=f"braindecode is not importable here ({_braindecode()}); install it "
    "with pip install -e '.[foundation]' and a torchaudio built for the "
    "installed torch",
)
def test_with_braindecode(small, tmp_path):
    from braindecode.models import EEGNeX

    check_preprocessor(small, "EEGNeX", EEGNeX, tmp_path)


@pytest.fixture
def interface_package(tmp_path, monkeypatch):
    """A package named braindecode (see the module docstring) first on sys.path."""
    folder = tmp_path / "site" / "braindecode"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(PACKAGE)
    (folder / "models.py").write_text(MODELS)
    for name in [m for m in sys.modules if m == "braindecode" or m.startswith("braindecode.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield
    for name in [m for m in sys.modules if m == "braindecode" or m.startswith("braindecode.")]:
        del sys.modules[name]


def test_with_a_package_of_braindecodes_interface(small, tmp_path, interface_package):
    from braindecode.models import TinyConv

    check_preprocessor(small, "TinyConv", TinyConv, tmp_path)
    # chs_info: every channel's name and MNI position in metres, in MNE's layout
    from podbench.data.dataset import channel_coordinates
    from podbench.features.braindecode import _chs_info
    from podbench.features.latents import epochs_context

    cfg = config.from_dict(
        raw_config(
            small,
            {
                "name": "braindecode",
                "params": {
                    "model": "TinyConv",
                    "weights": str(tmp_path / "weights"),
                    "chs_info": True,
                },
            },
        )
    )
    from podbench.features.context import resolve

    epochs = build_features(cfg, **QUIET).open("epochs")
    ctx = epochs_context(epochs, resolve(cfg))
    info = _chs_info(ctx)
    coords, _ = channel_coordinates(ctx.root, ctx.channels)
    assert [ch["ch_name"] for ch in info] == ctx.channels
    np.testing.assert_allclose([ch["loc"][:3] for ch in info], coords / 1000.0, rtol=1e-6)
    plain = build_features(cfg.replace({"preprocess.params.chs_info": False}), **QUIET)
    np.testing.assert_array_equal(
        build_features(cfg, **QUIET).open("latents")["latent"].values,
        plain.open("latents")["latent"].values,
    )
