"""window_rms, the time_pool decoder and the reference's loudness baseline config."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from podbench import api, config, registry
from podbench.errors import ConfigError
from podbench.features.preprocessors import EpochsContext
from podbench.models.layers import Call

REPO = Path(__file__).resolve().parents[1]
QUIET = {"log": lambda s: None}
CTX = EpochsContext(
    sfreq=512.0, window=10, channels=["sub-01:A", "sub-01:B"], subjects=[1, 1], root="."
)


def test_window_rms_per_window_and_per_block():
    rms = registry.preprocessors.get("window_rms")
    x = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10) - 20
    whole = rms({"num_average_samples": None}, CTX)(x)
    np.testing.assert_allclose(
        whole, np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True)), rtol=1e-6
    )
    blocks = rms({"num_average_samples": 4}, CTX)(x)  # two blocks of 4, the last 2 dropped
    expected = np.sqrt((x[..., :8].astype(np.float64) ** 2).reshape(2, 3, 2, 4).mean(-1))
    np.testing.assert_allclose(blocks, expected, rtol=1e-6)
    schema = registry.preprocessors.spec("window_rms").params
    with pytest.raises(ConfigError, match="num_average_samples = 0: expected a value >= 1"):
        config.build_params(schema, {"num_average_samples": 0}, "preprocess.params")  # before work


def test_time_pool_averages_over_time_then_two_dense_layers():
    build = registry.models.get("time_pool")
    params = {"hidden": 8, "dropout": 0.5, "output_activation": "tanh", "init": "torch"}
    model = build(params, input_shape=(5, 3), output_dim=2, head="vector", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (4, 5, 3))
    out = model(x, Call(train=False))
    h = np.maximum(np.asarray(x).mean(-1) @ model.hidden.kernel[...] + model.hidden.bias[...], 0)
    expected = np.tanh(h @ model.out.kernel[...] + model.out.bias[...])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # permuting time leaves the output unchanged; dropout acts in training only
    np.testing.assert_allclose(model(x[..., ::-1], Call(train=False)), out, rtol=1e-5, atol=1e-6)
    trained = model(x, Call(train=True, rng=jax.random.key(2), dropout=0.5))
    assert not np.allclose(trained, out)
    logits = build(params, input_shape=(5, 3), output_dim=1, head="binary", rngs=nnx.Rngs(0))
    assert np.abs(np.asarray(logits(10 * x, Call(train=False)))).max() > 1  # no tanh on logits


@pytest.mark.slow
def test_reference_loudness_config_decodes_the_planted_loudness(decoding_standin, tmp_path):
    root, csv = decoding_standin
    raw = config.load(REPO / "configs/tasks/loudness_reference.yml").to_dict()
    raw["data"].update(
        root=str(root), electrodes=str(csv), lags={"min": 250, "max": 251, "step": 250}
    )
    raw["training"].update(epochs=10, n_folds=3)
    raw["output"] = {"stores": str(tmp_path / "stores"), "results": str(tmp_path / "results")}
    cfg = config.from_dict(raw)
    assert (
        cfg.preprocess.name,
        cfg.model.name,
        cfg.training.lr,
        cfg.training.batch_size,
        cfg.data.window_width,
    ) == ("window_rms", "time_pool", 0.005, 64, 0.2)
    planted = api.train(cfg, **QUIET).performance
    control = api.train(cfg.replace({"training.shuffle_targets": True}), **QUIET).performance
    r, r0 = planted["test_pearson_r_mean"].iloc[0], control["test_pearson_r_mean"].iloc[0]
    print(f"\nloudness_reference: test r planted {r:.3f}, shuffled {r0:.3f}")
    assert r >= 0.4 and abs(r0) < 0.1
    n_channels = api.open_store(cfg, "epochs").sizes["channel"]
    assert api.open_store(cfg, "latents")["latent"].shape[-2:] == (n_channels, 1)  # one RMS
