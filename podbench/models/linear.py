"""The `linear` baseline for every task: ridge regression for vector and scalar targets,
L2-regularised logistic regression for binary and class targets (softmax over the classes).

Features are the flattened latents standardised with training-row statistics, with an
unpenalised intercept, as in `ridge`. The penalty is chosen per lane from the grid `alphas` by
the task's early-stopping metric on the VALIDATION rows. Regression is solved in closed form
(ridge.py); the logistic fit minimises

    sum_i w_i * log_loss(y_i, x_i @ W + b) + alpha / 2 * ||W||^2

(w_i: the task's class weights, else 1), scikit-learn's LogisticRegression objective with
C = 1 / alpha, by full-batch L-BFGS (optax) until it converges as scikit-learn's `lbfgs`
solver does (no gradient element above `tol`; or the loss stops decreasing, float32's limit),
at most `max_iter` iterations. A fit reports its loss-and-gradient evaluations: the steps of
the work the plan prices (`podbench.models.linear_work`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from podbench.models.ridge import masked_stats, ridge_fit, ridge_predict
from podbench.registry import register_model


def _minimise(loss, w0, max_iter: int, tol: float):
    """Full-batch L-BFGS with a zoom line search from `w0` until no gradient element exceeds
    `tol`, the loss stops decreasing, or `max_iter` iterations. Returns the parameters and the
    loss-and-gradient evaluations made (the first point's and the line searches')."""
    import optax
    from optax import tree_utils as otu

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def going(carry):
        _, _, k, largest, decreased, _ = carry
        return (k < max_iter) & (largest > tol) & decreased

    def step(carry):
        w, state, k, _, _, evaluations = carry
        value, grad = value_and_grad(w, state=state)
        updates, state = solver.update(grad, state, w, value=value, grad=grad, value_fn=loss)
        # the line search leaves the new point's loss and gradient in the state
        steps = otu.tree_get(state, "num_linesearch_steps")
        return (
            optax.apply_updates(w, updates),
            state,
            k + 1,
            otu.tree_norm(otu.tree_get(state, "grad"), ord=jnp.inf),  # its largest element
            otu.tree_get(state, "value") < value,
            evaluations + steps,
        )

    start = (w0, solver.init(w0), 0, jnp.inf, True, 1)  # 1: the first point's evaluation
    w, _, _, _, _, evaluations = jax.lax.while_loop(going, step, start)
    return w, evaluations


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
    max_iter: int,
    tol: float,
):
    """Logistic regression per alpha (binary: one logit, n_out = 1; classes: n_out logits);
    alpha chosen by `score_fn` on the validation rows. Returns what ridge_fit returns, its
    steps the loss-and-gradient evaluations of every alpha's fit."""
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
        (w, b), evaluations = _minimise(loss, w0, max_iter, tol)
        return (w, b), score_fn(xv @ w + b, y_val, val_mask), evaluations

    (weights, biases), scores, evaluations = jax.lax.map(solve, alphas)
    best = jnp.argmax(scores)
    # ridge_predict standardises with (x_mean, x_std), as the fit did
    return (
        weights[best],
        biases[best],
        x_mean,
        x_std,
        alphas[best],
        scores[best],
        evaluations.sum(),
    )


@register_model("linear")
def linear(params: dict, *, head: str, output_dim: int, **_):
    """(fit, predict) for the trainer's closed-form path: ridge for vector and scalar heads,
    logistic regression for binary and class heads."""
    if head in ("vector", "scalar"):
        return ridge_fit, ridge_predict

    def fit(*args):
        return logistic_fit(*args, n_out=output_dim, max_iter=params["max_iter"], tol=params["tol"])

    return fit, ridge_predict
