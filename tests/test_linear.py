"""The linear baselines: closed-form ridge and L-BFGS logistic regression against scikit-learn,
and the `linear` decoder trained end to end for every task kind."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from podbench import api, registry
from podbench.models.linear import logistic_fit
from podbench.models.ridge import ridge_fit, ridge_predict
from podbench.tasks.scoring import masked_auc
from tests.helpers import make_config

QUIET = {"log": lambda s: None}


def problem(n=300, f=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)) * rng.uniform(0.5, 3.0, f) + rng.uniform(-2, 2, f)
    w = rng.standard_normal(f)
    return x, x @ w, rng


def fit_args(x, y, n_train, alphas, score_fn):
    """ridge_fit / logistic_fit arguments: the first n_train rows train, the rest validate."""
    m_tr = np.ones(n_train, np.float32)
    m_va = np.ones(len(x) - n_train, np.float32)
    return (
        jnp.asarray(x[:n_train], jnp.float32),
        jnp.asarray(y[:n_train], jnp.float32),
        jnp.asarray(m_tr),
        jnp.asarray(x[n_train:], jnp.float32),
        jnp.asarray(y[n_train:], jnp.float32),
        jnp.asarray(m_va),
        jnp.asarray(alphas, jnp.float32),
        score_fn,
    )


def standardised(x, n_train):
    """The features as podbench standardises them: training mean and (population) sd."""
    mean, sd = x[:n_train].mean(0), x[:n_train].std(0)
    return (x - mean) / sd


def neg_mse(pred, y, mask):
    return -jnp.sum(((pred - y) ** 2).mean(-1) * mask) / mask.sum()


def test_ridge_equals_scikit_learn_ridge():
    from sklearn.linear_model import Ridge

    x, signal, rng = problem()
    y = np.stack([signal, -0.5 * signal], 1) + rng.standard_normal((len(x), 2))
    for alpha in (0.1, 10.0, 1000.0):
        w, b, mu, sd, chosen, _, _ = ridge_fit(*fit_args(x, y, 200, [alpha], neg_mse))
        ours = np.asarray(ridge_predict(jnp.asarray(x, jnp.float32), w, b, mu, sd))
        xs = standardised(x, 200)
        theirs = Ridge(alpha=alpha).fit(xs[:200], y[:200]).predict(xs)
        np.testing.assert_allclose(ours, theirs, atol=1e-5 * np.abs(theirs).max())
        assert float(chosen) == pytest.approx(alpha)


def test_ridge_keeps_the_alpha_best_on_validation():
    x, signal, rng = problem(n=120, f=40)
    y = (signal + 3 * rng.standard_normal(len(x)))[:, None]
    grid = [1e-2, 1.0, 1e2, 1e4]
    scores = [float(ridge_fit(*fit_args(x, y, 80, [a], neg_mse))[5]) for a in grid]
    _, _, _, _, chosen, best, _ = ridge_fit(*fit_args(x, y, 80, grid, neg_mse))
    assert float(chosen) == grid[int(np.argmax(scores))] and float(best) == pytest.approx(
        max(scores)
    )


def test_binary_logistic_equals_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    x, signal, rng = problem()
    label = (signal + rng.standard_normal(len(x)) > 0).astype(float)
    xs = standardised(x, 200)
    auc = lambda p, y, m: masked_auc(p[:, 0], y[:, 0], m)  # noqa: E731
    for alpha in (1.0, 30.0):
        w, b, mu, sd, _, _, _ = logistic_fit(
            *fit_args(x, label[:, None], 200, [alpha], auc), n_out=1, max_iter=200, tol=1e-6
        )
        ours = np.asarray(ridge_predict(jnp.asarray(x, jnp.float32), w, b, mu, sd))[:, 0]
        sk = LogisticRegression(C=1 / alpha, tol=1e-10, max_iter=10_000).fit(xs[:200], label[:200])
        np.testing.assert_allclose(ours, sk.decision_function(xs), atol=2e-3)
        np.testing.assert_allclose(np.asarray(w)[:, 0], sk.coef_[0], atol=2e-3)


def test_logistic_fit_stops_when_converged_and_counts_its_evaluations():
    """A logistic fit stops as scikit-learn's lbfgs does (LogisticRegression's default tol,
    the reference's baseline): when no gradient element of the objective exceeds `tol`, well
    before `max_iter`; it reports the loss-and-gradient evaluations it made, at least one per
    iteration and one more for the start when it runs to `max_iter`."""
    x, signal, rng = problem()
    label = (signal + rng.standard_normal(len(x)) > 0).astype(float)
    xs = standardised(x, 200)[:200]
    auc = lambda p, y, m: masked_auc(p[:, 0], y[:, 0], m)  # noqa: E731
    args = fit_args(x, label[:, None], 200, [1.0], auc)
    w, b, _, _, _, _, steps = logistic_fit(*args, n_out=1, max_iter=500, tol=1e-4)
    # the objective's gradient at the fit, in float64: (sum log-loss + alpha/2 |w|^2) / n
    p = 1 / (1 + np.exp(-(xs @ np.asarray(w, float)[:, 0] + float(b[0]))))
    grad = np.append(xs.T @ (p - label[:200]) + np.asarray(w, float)[:, 0], (p - label[:200]).sum())
    assert np.abs(grad / 200).max() <= 2e-4  # tol, up to float32 arithmetic
    assert 2 <= int(steps) < 500
    capped = logistic_fit(*args, n_out=1, max_iter=3, tol=1e-12)[6]
    assert int(capped) >= 4
    # two penalties: their evaluations add up
    both = logistic_fit(
        *fit_args(x, label[:, None], 200, [1.0, 30.0], auc), n_out=1, max_iter=500, tol=1e-4
    )[6]
    alone = logistic_fit(
        *fit_args(x, label[:, None], 200, [30.0], auc), n_out=1, max_iter=500, tol=1e-4
    )[6]
    assert int(both) == int(steps) + int(alone)


def test_multinomial_logistic_equals_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    x, _, rng = problem(n=400)
    scores = x @ rng.standard_normal((x.shape[1], 3)) + rng.standard_normal((len(x), 3))
    label = scores.argmax(1).astype(float)
    xs = standardised(x, 300)
    w, b, mu, sd, _, _, _ = logistic_fit(
        *fit_args(x, label[:, None], 300, [3.0], neg_mse), n_out=3, max_iter=300, tol=1e-6
    )
    ours = np.asarray(ridge_predict(jnp.asarray(x, jnp.float32), w, b, mu, sd))
    sk = LogisticRegression(C=1 / 3.0, tol=1e-10, max_iter=10_000).fit(xs[:300], label[:300])
    ours_p = np.exp(ours - ours.max(1, keepdims=True))
    ours_p /= ours_p.sum(1, keepdims=True)
    np.testing.assert_allclose(ours_p, sk.predict_proba(xs), atol=1e-3)


@pytest.mark.parametrize(
    "task, task_params, headline, above",
    [
        (
            "iu_boundary",
            {"boundaries_csv": "derivatives/podbench-synth/iu_boundaries.csv"},
            "test_roc_auc_mean",
            0.7,
        ),
        ("content_word", {}, "test_roc_auc_mean", 0.6),
        ("part_of_speech", {}, "test_macro_roc_auc_mean", None),
        ("loudness", {"step": 0.5}, "test_pearson_r_mean", 0.3),
    ],
)
def test_linear_decoder_trains_every_task_kind(
    decoding_standin, tmp_path, task, task_params, headline, above
):
    import json

    root, csv = decoding_standin
    cfg = make_config(
        root,
        tmp_path,
        task=task,
        trial_name=task,
        task_params=task_params,
        data={"electrodes": str(csv), "lags": {"min": 250, "max": 251, "step": 250}},
        model={"name": "linear", "params": {"alphas": [1.0, 1e2, 1e4], "max_iter": 50}},
        training={"n_folds": 3},
    )
    result = api.train(cfg, **QUIET)
    perf = result.performance
    print(f"\nlinear {task}: {headline} {perf[headline].iloc[0]:.3f}")
    assert np.isfinite(perf[headline]).all()
    if above is not None:
        assert perf[headline].iloc[0] >= above
    lanes = json.loads((result.run_dir / "run.json").read_text())["lane_table"]
    assert len(lanes) == 3 and all(lane["alpha"] in (1.0, 1e2, 1e4) for lane in lanes)
    assert registry.models.spec("linear").closed_form


def test_every_task_config_has_a_linear_twin():
    from pathlib import Path

    from podbench import config, registry

    repo = Path(__file__).resolve().parents[1]
    for path in sorted((repo / "configs/tasks").glob("*.yml")):
        cfg = config.load(path)
        if path.stem != cfg.task:  # a variant, e.g. loudness_reference
            continue
        if registry.models.spec(cfg.model.name).uses_frozen:
            continue  # llm_decoding: its decoder feeds a language model, no linear twin
        twin = config.load(repo / "configs/tasks/linear" / f"{cfg.task}.yml")
        assert twin.model.name == "linear" and twin.task == cfg.task, path
        assert twin.data == cfg.data and twin.task_params == cfg.task_params, path
        assert twin.training.n_folds == cfg.training.n_folds, path
    twin = config.load(repo / "configs/tasks/linear/word_embedding.yml")
    assert twin.targets == config.load(repo / "configs/demo.yml").targets
