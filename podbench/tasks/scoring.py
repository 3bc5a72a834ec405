"""Traced (JAX) scoring inside the compiled program: masked means, row cosines and the masked
ROC-AUCs that early stopping runs on whole validation splits. Tasks import this module inside
their loss and stopping methods, so loading a task never imports JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(values, mask):
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def cosine_rows(pred, y):
    num = jnp.sum(pred * y, axis=-1)
    den = jnp.linalg.norm(pred, axis=-1) * jnp.linalg.norm(y, axis=-1)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _auc_and_pairs(score, positive, mask):
    """Masked Mann-Whitney ROC-AUC (ties count one half) and the number of pairs, by sorting:
    O(n log n) time and O(n) memory. Each positive wins over the negatives below its tie group
    and half of those in it; masked rows count as neither class, wherever they sort."""
    pos = positive * mask
    neg = (1.0 - positive) * mask
    order = jnp.argsort(score)
    s, p, q = score[order], pos[order], neg[order]
    idx = jnp.arange(s.shape[0])
    first = jnp.concatenate([jnp.array([True]), s[1:] != s[:-1]])  # a tie group starts
    last = jnp.concatenate([first[1:], jnp.array([True])])
    start = jax.lax.cummax(jnp.where(first, idx, 0))
    end = jax.lax.cummin(jnp.where(last, idx, s.shape[0] - 1), reverse=True)
    neg_upto = jnp.cumsum(q)  # negatives at or below each sorted position
    below = neg_upto[start] - q[start]
    tied = neg_upto[end] - below
    n = jnp.sum(p) * neg_upto[-1]
    return jnp.sum(p * (below + 0.5 * tied)) / jnp.maximum(n, 1.0), n


def masked_auc(score, positive, mask):
    """ROC-AUC over the valid rows (0.5 when a class is missing)."""
    auc, n = _auc_and_pairs(score, positive, mask)
    return jnp.where(n > 0, auc, 0.5)


def masked_macro_auc(logits, label, mask):
    """Unweighted mean one-vs-rest ROC-AUC of the softmax probabilities over the classes
    with both positives and negatives among the valid rows."""
    probs = jax.nn.softmax(logits, axis=-1)
    total, count = 0.0, 0.0
    for c in range(logits.shape[-1]):
        auc, n = _auc_and_pairs(probs[:, c], (label == c).astype(probs.dtype), mask)
        has = (n > 0).astype(probs.dtype)
        total = total + auc * has
        count = count + has
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.5)


def mean_probability_logit(member_preds: jax.Array) -> jax.Array:
    """[G, n, 1] member logits -> the logit of their mean probability."""
    log_p = jax.scipy.special.logsumexp(jax.nn.log_sigmoid(member_preds), axis=0)
    log_q = jax.scipy.special.logsumexp(jax.nn.log_sigmoid(-member_preds), axis=0)
    return log_p - log_q


def mean_probability_log(member_preds: jax.Array) -> jax.Array:
    """[G, n, k] member logits -> the log of their mean class probabilities."""
    log_p = jax.nn.log_softmax(member_preds, axis=-1)
    return jax.scipy.special.logsumexp(log_p, axis=0) - jnp.log(member_preds.shape[0])


def weighted_f1(logit: jax.Array, positive: jax.Array, mask: jax.Array) -> jax.Array:
    """sklearn's f1_score(average="weighted") of the prediction logit >= 0 (probability
    >= 0.5) over the valid rows: the classes' F1 weighted by their counts (0 if undefined)."""
    predicted = (logit >= 0).astype(positive.dtype)
    total: jax.Array | float = 0.0
    for p, t in ((predicted, positive), (1.0 - predicted, 1.0 - positive)):
        tp = jnp.sum(p * t * mask)
        denom = jnp.sum(p * mask) + jnp.sum(t * mask)
        f1 = jnp.where(denom > 0, 2 * tp / jnp.where(denom > 0, denom, 1.0), 0.0)
        total = total + jnp.sum(t * mask) * f1
    return total / jnp.maximum(jnp.sum(mask), 1.0)
