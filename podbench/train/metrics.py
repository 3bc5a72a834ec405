"""Metrics over whole splits (never means of batch means), as defined in the reference §5.

Split metrics take `(pred [n, D], y [n, D])`; the word-level metrics of a test fold take the
members' predictions and follow the reference recipe exactly (distances averaged over members,
class scores averaged over a class's test occurrences, softmax over the test-fold word types,
one-vs-rest ROC-AUC over types with enough training occurrences).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.metrics import roc_auc_score

from podbench.registry import register_metric


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x, dtype=np.float64), where=norm > 0)


def cosine_matrix(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """cos(pred_i, y_j) for every pair (0 where a norm is 0)."""
    return _unit(pred.astype(np.float64)) @ _unit(y.astype(np.float64)).T


@register_metric("mse")
def mse(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error over all elements."""
    return float(np.mean((pred.astype(np.float64) - y) ** 2))


@register_metric("cosine_sim")
def cosine_sim(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over examples of cos(pred_i, y_i)."""
    return float(np.mean(np.sum(_unit(pred) * _unit(y), axis=-1)))


@register_metric("nll_embedding")
def nll_embedding(pred: np.ndarray, y: np.ndarray) -> float:
    """Cross-entropy of matching pred_i to y_i among the whole split (chance: ln n)."""
    logits = cosine_matrix(pred, y)
    return float(-np.mean(np.diag(log_softmax(logits, axis=1))))


@register_metric("pairwise_accuracy")
def pairwise_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ordered pairs i != j with cos(p_i, y_i) > cos(p_i, y_j) (chance 0.5)."""
    sims = cosine_matrix(pred, y)
    n = len(sims)
    if n < 2:
        return float("nan")
    wins = (np.diag(sims)[:, None] > sims).sum()
    return float(wins / (n * (n - 1)))


def member_distances(member_preds: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """Dist[i, j] = mean over members of 1 - cos(pred_{m,i}, y_j)."""
    return np.mean([1.0 - cosine_matrix(p, y_test) for p in member_preds], axis=0)


def top_k(probs: np.ndarray, true: np.ndarray, k: int) -> float:
    """Fraction of rows whose true column is among the k highest (ties broken by column)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == true[:, None]).any(axis=1)))


def word_metrics(member_preds: np.ndarray, y_test: np.ndarray, test_labels: np.ndarray,
                 train_labels: np.ndarray, min_train_freq: int,
                 ks: tuple[int, ...] = (1, 5, 10), split: str = "test") -> dict[str, float]:
    """The reference's word- and occurrence-level metrics on one evaluation split of a fold.

    Keys are named as the reference's for the test split (`test_word_avg_auc_roc`, ...); the
    validation split gets the same metrics with `val` in place of `test` (model selection).
    """
    dist = member_distances(member_preds, y_test)
    n = len(test_labels)
    out: dict[str, float] = {}
    occ_logp = log_softmax(1.0 - dist, axis=1)
    diag = np.arange(n)
    for k in ks:
        out[f"{split}_occurence_top_{k}"] = top_k(occ_logp, diag, k)
    out[f"{split}_occurence_perplexity"] = float(np.exp(-occ_logp[diag, diag].mean()))

    classes, true = np.unique(test_labels, return_inverse=True)
    onehot = np.zeros((n, len(classes)))
    onehot[diag, true] = 1.0
    class_dist = dist @ onehot / onehot.sum(axis=0)
    logits = 1.0 - class_dist
    probs = softmax(logits, axis=1)
    for k in ks:
        out[f"{split}_word_top_{k}"] = top_k(probs, true, k)
    out[f"{split}_word_perplexity"] = float(np.exp(-log_softmax(logits, axis=1)[diag, true].mean()))

    train_vocab, train_counts = np.unique(train_labels, return_counts=True)
    train_freq = dict(zip(train_vocab.tolist(), train_counts.tolist()))
    test_freq = onehot.sum(axis=0)
    aucs, w_train, w_test = [], [], []
    for c, label in enumerate(classes.tolist()):
        f_train = train_freq.get(label, 0)
        if f_train < min_train_freq or test_freq[c] == n:
            continue
        aucs.append(roc_auc_score(onehot[:, c], probs[:, c]))
        w_train.append(f_train)
        w_test.append(test_freq[c])
    if aucs:
        aucs_a = np.array(aucs)
        out[f"{split}_word_avg_auc_roc"] = float(aucs_a.mean())
        out[f"{split}_word_train_weighted_auc_roc"] = float(np.average(aucs_a, weights=w_train))
        out[f"{split}_word_{split}_weighted_auc_roc"] = float(np.average(aucs_a, weights=w_test))
    else:
        for name in ("avg", "train_weighted", f"{split}_weighted"):
            out[f"{split}_word_{name}_auc_roc"] = float("nan")
    out[f"{split}_word_n_classes"] = float(len(aucs))
    return out
