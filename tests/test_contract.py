"""The contract of every registered decoder, task and preprocessor (braindecode's pattern: one
test over the whole registry, so a new entry is checked the moment it is registered).

- decoders: build for each head kind, jit, run under vmap over two lanes with a padded mask,
  a scalar penalty, outputs [batch, out]; closed-form decoders fit and predict;
- tasks: the targets table built on the stand-in, the loss per example, the stopping value a
  scalar, the whole-split metrics finite, ROC-AUCs equal to scikit-learn's;
- preprocessors: one lag slice [word, channel, time] -> [word, *declared dims].
An entry without an example below fails the test: add one with it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from podbench import registry

from .helpers import make_config, tiny_gpt2

HEADS = {"vector": 6, "scalar": 1, "binary": 1, "classes": 3}
INPUT = (5, 10)  # channels x bins: the smallest that every built-in decoder takes
TASK_PARAMS: dict[str, dict] = {  # tasks whose defaults do not run on the 120-s stand-in
    "iu_boundary": {"boundaries_csv": "derivatives/podbench-synth/iu_boundaries.csv"},
}
PREPROCESS_PARAMS = {
    "window_average": {"num_average_samples": 32},
    "zscore": {"num_average_samples": 32},
    "identity": {},
    "foundation": {"module": "contract_fm:build"},
    "window_rms": {"num_average_samples": 32},
    "braindecode": {"model": "EEGNeX"},  # needs braindecode (the [foundation] extra)
}
FOUNDATION_MODULE = """
    import torch
    class Mean(torch.nn.Module):
        def forward_features(self, x):
            return x.mean(-1)
    def build():
        return Mean()
"""


@pytest.mark.parametrize("name", registry.models.names())
def test_decoder_contract(name):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from podbench.config import build_params
    from podbench.models.layers import Call

    entry = registry.models.entry(name)
    if entry.spec.uses_frozen:
        pytest.skip("built on a task's frozen model (llm_prefix: tests/test_llm_decoding.py)")
    params = build_params(entry.spec.params, {}, "model.params")
    if entry.spec.closed_form:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(40, 7)))
        mask = jnp.ones(40)
        for head, n_out in HEADS.items():
            if head == "classes" and not entry.spec.classifier:
                continue  # a regression cannot give one logit per class (refused at config time)
            labels = rng.integers(0, 3 if head == "classes" else 2, size=(40, 1))
            y = jnp.asarray(
                labels if head in ("binary", "classes") else rng.normal(size=(40, n_out)),
                jnp.float32,
            )
            fit, predict = entry.obj(params, head=head, output_dim=n_out)
            fitted = fit(
                x,
                y,
                mask,
                x,
                y,
                mask,
                jnp.asarray([1.0, 10.0]),
                lambda p, t, m: -jnp.mean((p[:, :1] - t[:, :1]) ** 2),
            )
            pred = predict(x, *fitted[:4])
            assert len(fitted) == 7 and int(fitted[6]) >= 1, head  # ... and its steps
            assert pred.shape == (40, n_out) and np.isfinite(np.asarray(pred)).all(), head
        return
    for head, n_out in HEADS.items():
        model = entry.obj(params, input_shape=INPUT, output_dim=n_out, head=head, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(model)
        x = jnp.ones((2, 4, *INPUT)) * jnp.arange(4.0)[None, :, None, None]
        mask = jnp.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # padded rows

        def lane(xs, m, key):
            net = nnx.merge(graphdef, state, copy=True)  # noqa: B023 (traced in this iteration)
            out = net(xs, Call(True, key, 0.1, m))
            return out, net.penalty()

        keys = jax.random.split(jax.random.key(0), 2)
        out, penalty = jax.jit(jax.vmap(lane))(x, mask, keys)
        assert out.shape == (2, 4, n_out), (name, head)
        assert penalty.shape == (2,) and np.isfinite(np.asarray(out)).all()
        eval_out = nnx.merge(graphdef, state)(x[0], Call(False))
        assert eval_out.shape == (4, n_out)


@pytest.fixture(scope="module")
def contract_cfgs(standin, tmp_path_factory):
    work = tmp_path_factory.mktemp("contract")

    def cfg(task):
        params = dict(TASK_PARAMS.get(task, {}))
        if task.startswith("llm_"):  # a tiny random GPT-2 saved like a Hugging Face directory
            lm = work / "gpt2"
            params["lm_dir"] = str(lm if lm.is_dir() else tiny_gpt2(lm))
        model = {"name": "llm_prefix", "members": 1} if task == "llm_decoding" else {}
        return make_config(
            standin,
            work,
            task=task,
            task_params=params,
            model=model,
            data={"subjects": [1]},
            training={"n_folds": 3},
        )

    return cfg


@pytest.mark.parametrize("name", registry.tasks.names())
def test_task_contract(name, contract_cfgs):
    import jax.numpy as jnp
    from sklearn.metrics import roc_auc_score

    from podbench.data.dataset import Dataset
    from podbench.tasks import task_for

    cfg = contract_cfgs(name)
    task = task_for(cfg)
    dataset = Dataset(cfg.data.root)
    events = task.events(cfg, dataset)
    assert {"word_idx", "word", "start", "end"} <= set(events.columns)
    assert np.all(np.diff(events["word_idx"].to_numpy()) > 0)
    epoch_events = events["word_idx"].to_numpy() if task.per_fold(cfg) else None
    ds, attrs = task.target_dataset(cfg, dataset, epoch_events)
    target = ds["target"]
    assert target.dims in (("word", "dim"), ("fold", "word", "dim")) and "label" in ds.coords
    y = target.values if target.ndim == 2 else target.values[0]
    assert np.isfinite(y).all() and len(y) > 10
    n_out = task.output_dim(target.values[None] if target.ndim == 2 else target.values, cfg)
    expected_out = {"binary": 1, "classes": len(getattr(task, "class_names", ()))}
    if task.head in expected_out:
        assert n_out == expected_out[task.head]
    else:  # vector, scalar: the target's width; a task's own head (llm_decoding: tokens) its own
        assert n_out == y.shape[1] if task.head in ("vector", "scalar") else n_out > 0
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(len(y), n_out)).astype(np.float32)
    loss = task.loss(jnp.asarray(pred), jnp.asarray(y), cfg)
    assert loss.shape == (len(y),) and np.isfinite(np.asarray(loss)).all()
    stop = task.stop_value(jnp.asarray(pred), jnp.asarray(y), jnp.ones(len(y)))
    assert np.ndim(stop) == 0 and np.isfinite(float(stop))
    metrics = task.split_metrics(pred, y)
    assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics
    if task.head == "binary":
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y[:, 0], pred[:, 0]), abs=1e-9)
    if task.head == "classes" and len(np.unique(y[:, 0])) == n_out:
        from scipy.special import softmax

        expected = roc_auc_score(
            y[:, 0].astype(int),
            softmax(pred.astype(np.float64), axis=1),
            multi_class="ovr",
            average="macro",
        )
        assert metrics["macro_roc_auc"] == pytest.approx(expected, abs=1e-9)
    assert task.headline.startswith("test_") and task.stop_mode in ("max", "min")


@pytest.mark.parametrize("name", registry.preprocessors.names())
def test_preprocessor_contract(name, tmp_path, monkeypatch, standin):
    from podbench.config import build_params
    from podbench.features.preprocessors import EpochsContext

    assert name in PREPROCESS_PARAMS, f"add an example for preprocessor {name!r}"
    if name == "braindecode":
        from podbench.errors import ConfigError
        from podbench.features.braindecode import _braindecode

        try:
            _braindecode()
        except ConfigError as exc:
            pytest.skip(str(exc))
    (tmp_path / "contract_fm.py").write_text(textwrap.dedent(FOUNDATION_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = registry.preprocessors.entry(name)
    params = build_params(entry.spec.params, PREPROCESS_PARAMS[name], "preprocess.params")
    channels = ["sub-01:G1", "sub-01:G2", "sub-01:G3"]
    ctx = EpochsContext(
        sfreq=512.0, window=320, channels=channels, subjects=[1, 1, 1], root=str(standin)
    )
    transform = entry.obj(params, ctx)
    x = np.random.default_rng(0).normal(size=(4, 3, 320)).astype(np.float32)
    out = np.asarray(transform(x))
    dims = entry.spec.dims
    assert out.shape[0] == 4 and out.ndim == 1 + len(dims) and np.isfinite(out).all()
    if "channel" in dims:
        assert out.shape[1 + dims.index("channel")] == 3


def test_a_task_missing_a_required_hook_fails_at_registration():
    from podbench.errors import ConfigError
    from podbench.registry import register_task
    from podbench.tasks.common import RegressionTask

    with pytest.raises(
        ConfigError,
        match=r"task 'no_values' .* required hook\(s\) target_sources, "
        r"values",
    ):

        @register_task("no_values")
        class NoValues(RegressionTask):
            pass

    assert "no_values" not in registry.tasks


@dataclass
class RateParams:
    rate: float = 0.3


@pytest.fixture()
def scratch_models(monkeypatch):
    """The model registry, restored after the test."""
    registry.load_builtins()
    monkeypatch.setattr(registry.models, "_entries", dict(registry.models._entries))
    return registry.models


@pytest.mark.parametrize(
    "keywords, message",
    [
        (
            {"input_dim": None},
            r"model 'bad_spec': unknown keyword 'input_dim'; did you mean "
            r"'input_dims'\?",
        ),
        (
            {"params": RateParams, "dropout": "dropout"},
            r"'dropout' is not a field of params "
            r"\(rate\)",
        ),
        (
            {"kind": "closed_form", "takes_targets": True},
            "a closed-form decoder declares none of takes_targets",
        ),
        ({"kind": "ridge"}, "kind = 'ridge': expected 'trained' or 'closed_form'"),
        ({"params": dict}, "params = <class 'dict'>: expected a dataclass"),
    ],
)
def test_a_decoder_spec_is_checked_at_registration(scratch_models, keywords, message):
    from podbench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        registry.register_model("bad_spec", **keywords)(lambda params, **_: None)
    assert "bad_spec" not in registry.models


def test_every_registry_refuses_an_unknown_keyword():
    from podbench.errors import ConfigError

    for register, typo, meant in (
        (registry.register_preprocessor, "dim", "dims"),
        (registry.register_target_source, "field", "fields"),
        (registry.register_task, "param", "params"),
        (registry.register_metric, "higher_is_better", None),
    ):
        hint = f"; did you mean '{meant}'" if meant else r" \(Spec declares: none\)"
        with pytest.raises(ConfigError, match=f"unknown keyword '{typo}'{hint}"):
            register("typo", **{typo: None})(lambda: None)


def test_the_lane_dropout_is_the_parameter_the_spec_names(scratch_models):
    from podbench import config
    from podbench.train.lanes import lane_point
    from podbench.train.run import per_lane_fields

    registry.register_model("rate_dropout", params=RateParams, dropout="rate")(
        lambda params, **_: None
    )
    cfg = config.from_dict({"model": {"name": "rate_dropout", "params": {"rate": 0.1}}})
    assert lane_point(cfg).dropout == pytest.approx(0.1)
    assert "model.params.rate" in per_lane_fields(cfg)
    ridge = config.from_dict({"model": {"name": "ridge"}})
    assert lane_point(ridge).dropout == 0.0
    assert not any(f.startswith("model.params") for f in per_lane_fields(ridge))
