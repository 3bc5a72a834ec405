"""Closed-form ridge regression per lane, alpha picked on the validation split from a grid.

Features are the flattened latents, standardised with training-row statistics; targets are
centred with the training mean (an unpenalised intercept). One eigendecomposition of the
training Gram matrix per lane gives the solution for every alpha of the grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from podbench.registry import register_model


def masked_stats(x, mask):
    n = jnp.maximum(mask.sum(), 1.0)
    mean = (x * mask[:, None]).sum(0) / n
    var = (((x - mean) ** 2) * mask[:, None]).sum(0) / n
    return mean, jnp.sqrt(jnp.where(var > 1e-12, var, 1.0))


def ridge_fit(x_train, y_train, train_mask, x_val, y_val, val_mask, alphas, score_fn):
    """Fit on masked training rows; choose alpha by `score_fn` on the validation rows.

    Returns (weights [F, D], bias [D], x_mean, x_std, chosen alpha, best validation score,
    steps): one step, the solve (`podbench.models.ridge_work`), whatever the penalties.
    """
    x_mean, x_std = masked_stats(x_train, train_mask)
    xs = (x_train - x_mean) / x_std * train_mask[:, None]
    n = jnp.maximum(train_mask.sum(), 1.0)
    y_mean = (y_train * train_mask[:, None]).sum(0) / n
    yc = (y_train - y_mean) * train_mask[:, None]
    evals, evecs = jnp.linalg.eigh(xs.T @ xs)
    proj = evecs.T @ (xs.T @ yc)
    xv = (x_val - x_mean) / x_std

    def solve(alpha):
        w = evecs @ (proj / (evals + alpha)[:, None])
        return w, score_fn(xv @ w + y_mean, y_val, val_mask)

    weights, scores = jax.lax.map(solve, alphas)
    best = jnp.argmax(scores)
    return weights[best], y_mean, x_mean, x_std, alphas[best], scores[best], jnp.int32(1)


def ridge_predict(x, weights, bias, x_mean, x_std):
    return (x - x_mean) / x_std @ weights + bias


@register_model("ridge")
def ridge(params: dict, **_):
    """Closed-form ridge: (fit, predict) functions used by the trainer's closed-form path."""
    return ridge_fit, ridge_predict
