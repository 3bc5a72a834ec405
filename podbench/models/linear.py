"""The `linear` baseline for every task: ridge regression for vector and scalar targets,
L2-regularised logistic regression for binary and class targets (softmax over the classes).

Features are the flattened latents standardised with training-row statistics, with an
unpenalised intercept, as in `ridge`. The penalty is chosen per lane from the grid `alphas` by
the task's early-stopping metric on the VALIDATION rows. Regression is solved in closed form
(ridge.py); the logistic fit minimises

    sum_i w_i * log_loss(y_i, x_i @ W + b) + alpha / 2 * ||W||^2

(w_i: the task's class weights, else 1), scikit-learn's LogisticRegression objective with
C = 1 / alpha, by full-batch L-BFGS (optax) for `max_iter` iterations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from podbench.models.ridge import masked_stats, ridge_fit, ridge_predict
from podbench.registry import register_model


def _minimise(loss, w0, iterations: int):
    """Full-batch L-BFGS with a zoom line search, a fixed number of iterations."""
    import optax

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        w, state = carry
        value, grad = value_and_grad(w, state=state)
        updates, state = solver.update(grad, state, w, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(w, updates), state), None

    (w, _), _ = jax.lax.scan(step, (w0, solver.init(w0)), None, length=iterations)
    return w


def logistic_fit(
    x_train,
    y_train,
    train_mask,
    x_val,
    y_val,
    val_mask,
    alphas,
    score_fn,
    *,
    n_out: int,
    iterations: int,
):
    """Logistic regression per alpha (binary: one logit, n_out = 1; classes: n_out logits);
    alpha chosen by `score_fn` on the validation rows. Returns what ridge_fit returns."""
    import optax

    x_mean, x_std = masked_stats(x_train, train_mask)
    xs = (x_train - x_mean) / x_std
    xv = (x_val - x_mean) / x_std
    weight = train_mask * (y_train[:, 1] if y_train.shape[-1] > 1 else 1.0)
    n = jnp.maximum(train_mask.sum(), 1.0)
    label = y_train[:, 0]
    n_features = xs.shape[1]

    def solve(alpha):
        def loss(params):  # the objective above, divided by n for conditioning
            w, b = params
            logits = xs @ w + b
            if n_out == 1:
                per = optax.sigmoid_binary_cross_entropy(logits[:, 0], label)
            else:
                per = optax.softmax_cross_entropy_with_integer_labels(
                    logits, label.astype(jnp.int32)
                )
            return (jnp.sum(weight * per) + 0.5 * alpha * jnp.sum(w**2)) / n

        w0 = (jnp.zeros((n_features, n_out), xs.dtype), jnp.zeros((n_out,), xs.dtype))
        w, b = _minimise(loss, w0, iterations)
        return (w, b), score_fn(xv @ w + b, y_val, val_mask)

    (weights, biases), scores = jax.lax.map(solve, alphas)
    best = jnp.argmax(scores)
    # ridge_predict standardises with (x_mean, x_std), as the fit did
    return weights[best], biases[best], x_mean, x_std, alphas[best], scores[best]


@register_model("linear")
def linear(params: dict, *, head: str, output_dim: int, **_):
    """(fit, predict) for the trainer's closed-form path: ridge for vector and scalar heads,
    logistic regression for binary and class heads."""
    if head in ("vector", "scalar"):
        return ridge_fit, ridge_predict

    def fit(*args):
        return logistic_fit(*args, n_out=output_dim, iterations=params["max_iter"])

    return fit, ridge_predict
