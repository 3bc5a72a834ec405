"""Metrics over whole splits (never means of batch means), as defined in the reference §5.

Split metrics take `(pred [n, D], y [n, D])`; the word-level metrics of a test fold take the
members' predictions and follow the reference recipe exactly (distances averaged over members,
class scores averaged over a class's test occurrences, softmax over the test-fold word types,
one-vs-rest ROC-AUC over types with enough training occurrences).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, softmax
from scipy.stats import rankdata

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
    # log-softmax of the diagonal only; cosines lie in [-1, 1], so exp cannot overflow
    return float(-np.mean(np.diag(logits) - np.log(np.exp(logits).sum(axis=1))))


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


def true_rank(scores: np.ndarray, true: np.ndarray) -> np.ndarray:
    """0-based rank of each row's true column in a descending sort of the row, ties broken by
    column (as a stable argsort of -scores): higher scores plus equal ones to its left."""
    t = scores[np.arange(len(scores)), true][:, None]
    left = np.arange(scores.shape[1])[None, :] < true[:, None]
    return (scores > t).sum(axis=1) + ((scores == t) & left).sum(axis=1)


def top_k(probs: np.ndarray, true: np.ndarray, k: int) -> float:
    """Fraction of rows whose true column is among the k highest (ties broken by column)."""
    return float(np.mean(true_rank(probs, true) < k))


def column_aucs(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC-AUC of every column of `scores` [n, C] against the boolean columns of
    `positive`: the Mann-Whitney statistic with ties counting one half, which equals sklearn's
    roc_auc_score (the area under the trapezoidal ROC curve); nan where a column lacks a class."""
    ranks = rankdata(scores, axis=0)
    n_pos = positive.sum(axis=0).astype(np.float64)
    n_neg = len(scores) - n_pos
    u = (ranks * positive).sum(axis=0) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def word_class_scores(
    member_preds: np.ndarray,
    y_test: np.ndarray,
    test_labels: np.ndarray,
    train_labels: np.ndarray,
    min_train_freq: int,
) -> WordScores:
    """The reference's word-level scores of one evaluation split (see `word_metrics`): the
    members' mean cosine distances, the class logits (1 - mean distance of a prediction to a
    word type's occurrences) and their softmax, and which types the ROC-AUC averages over."""
    dist = member_distances(member_preds, y_test)
    n = len(test_labels)
    classes, true = np.unique(test_labels, return_inverse=True)
    onehot = np.zeros((n, len(classes)))
    onehot[np.arange(n), true] = 1.0
    logits = 1.0 - dist @ onehot / onehot.sum(axis=0)
    train_vocab, train_counts = np.unique(train_labels, return_counts=True)
    train_freq = dict(zip(train_vocab.tolist(), train_counts.tolist()))
    test_freq = onehot.sum(axis=0)
    f_train = np.array([train_freq.get(label, 0) for label in classes.tolist()])
    scored = (f_train >= min_train_freq) & (test_freq < n)
    return WordScores(dist, true, logits, softmax(logits, axis=1), scored, f_train, test_freq)


@dataclass(frozen=True)
class WordScores:
    """What `word_class_scores` computes for one split: rows are predictions (events), class
    columns the split's word types in sorted order."""

    dist: np.ndarray  # [n, n] members' mean cosine distance of prediction i to target j
    true: np.ndarray  # [n] class column of each event's word
    logits: np.ndarray  # [n, C]
    probs: np.ndarray  # [n, C] softmax of the logits
    scored: np.ndarray  # [C] bool: types the ROC-AUC averages over
    f_train: np.ndarray  # [C] occurrences in the training split
    test_freq: np.ndarray  # [C] occurrences in this split


def word_metrics(
    member_preds: np.ndarray,
    y_test: np.ndarray,
    test_labels: np.ndarray,
    train_labels: np.ndarray,
    min_train_freq: int,
    ks: tuple[int, ...] = (1, 5, 10),
    split: str = "test",
) -> dict[str, float]:
    """The reference's word- and occurrence-level metrics on one evaluation split of a fold.

    Keys are named as the reference's for the test split (`test_word_avg_auc_roc`, ...); the
    validation split gets the same metrics with `val` in place of `test` (model selection).
    """
    w = word_class_scores(member_preds, y_test, test_labels, train_labels, min_train_freq)
    n = len(test_labels)
    out: dict[str, float] = {}
    occ_logp = log_softmax(1.0 - w.dist, axis=1)
    diag = np.arange(n)
    for k in ks:
        out[f"{split}_occurence_top_{k}"] = top_k(occ_logp, diag, k)
    out[f"{split}_occurence_perplexity"] = float(np.exp(-occ_logp[diag, diag].mean()))
    for k in ks:
        out[f"{split}_word_top_{k}"] = top_k(w.probs, w.true, k)
    out[f"{split}_word_perplexity"] = float(
        np.exp(-log_softmax(w.logits, axis=1)[diag, w.true].mean())
    )
    onehot = w.true[:, None] == np.arange(len(w.scored))[None, :]
    aucs = column_aucs(w.probs[:, w.scored], onehot[:, w.scored])
    if len(aucs):
        out[f"{split}_word_avg_auc_roc"] = float(aucs.mean())
        out[f"{split}_word_train_weighted_auc_roc"] = float(
            np.average(aucs, weights=w.f_train[w.scored])
        )
        out[f"{split}_word_{split}_weighted_auc_roc"] = float(
            np.average(aucs, weights=w.test_freq[w.scored])
        )
    else:
        for name in ("avg", "train_weighted", f"{split}_weighted"):
            out[f"{split}_word_{name}_auc_roc"] = float("nan")
    out[f"{split}_word_n_classes"] = float(len(aucs))
    return out


# --------------------------------------------------------------------------- other tasks
# Whole-split metrics of the scalar, binary and class tasks. `pred` holds the model's raw
# outputs (a logit for binary heads, one logit per class for class heads, the value for
# scalar heads); the label or value is y[:, 0] (any further target columns, e.g. per-example
# class weights, are ignored). Each equals its scikit-learn / scipy counterpart.


def _label(y: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]).astype(np.int64)


def _column(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(len(a), -1)[:, 0]


def binary_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC (Mann-Whitney, ties count one half; = sklearn roc_auc_score); nan for one class."""
    positive = np.asarray(positive, bool)
    return float(column_aucs(np.asarray(score, dtype=np.float64)[:, None], positive[:, None])[0])


def _f1_per_class(true: np.ndarray, predicted: np.ndarray, classes) -> np.ndarray:
    """F1 of each class (0 where precision and recall are both undefined, as sklearn)."""
    out = []
    for c in classes:
        tp = np.sum((predicted == c) & (true == c))
        denom = np.sum(predicted == c) + np.sum(true == c)
        out.append(2 * tp / denom if denom else 0.0)
    return np.array(out, dtype=np.float64)


@register_metric("roc_auc")
def roc_auc(pred: np.ndarray, y: np.ndarray) -> float:
    """Binary ROC-AUC of the logit pred[:, 0] against the label y[:, 0] (nan for one class)."""
    return binary_auc(_column(pred), _label(y) == 1)


@register_metric("f1")
def f1(pred: np.ndarray, y: np.ndarray) -> float:
    """Binary F1 of the positive class, predicted where the logit > 0 (probability > 0.5)."""
    return float(_f1_per_class(_label(y), (_column(pred) > 0).astype(np.int64), [1])[0])


@register_metric("balanced_accuracy")
def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean recall over the classes present in y (binary: logit > 0; classes: argmax)."""
    pred = np.asarray(pred).reshape(len(pred), -1)
    true = _label(y)
    predicted = (pred[:, 0] > 0).astype(np.int64) if pred.shape[1] == 1 else pred.argmax(axis=1)
    classes = np.unique(true)
    return float(np.mean([np.mean(predicted[true == c] == c) for c in classes]))


@register_metric("accuracy")
def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction correct (binary: logit > 0; classes: argmax)."""
    pred = np.asarray(pred).reshape(len(pred), -1)
    predicted = (pred[:, 0] > 0).astype(np.int64) if pred.shape[1] == 1 else pred.argmax(axis=1)
    return float(np.mean(predicted == _label(y)))


@register_metric("macro_roc_auc")
def macro_roc_auc(pred: np.ndarray, y: np.ndarray) -> float:
    """One-vs-rest ROC-AUC of each class's softmax probability, unweighted mean over the
    classes with both positives and negatives in the split (sklearn multi_class="ovr",
    average="macro" when every class is present)."""
    probs = softmax(np.asarray(pred, dtype=np.float64), axis=1)
    true = _label(y)
    aucs = [binary_auc(probs[:, c], true == c) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


@register_metric("macro_f1")
def macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    """Unweighted mean F1 over the classes in y or in the argmax predictions (sklearn
    f1_score(average="macro"))."""
    true = _label(y)
    predicted = np.asarray(pred).argmax(axis=1)
    return float(np.mean(_f1_per_class(true, predicted, np.union1d(true, predicted))))


@register_metric("bce")
def bce(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of the logit pred[:, 0] (sklearn log_loss of its sigmoid)."""
    from scipy.special import log_expit

    x, t = _column(pred), _label(y)
    return float(-np.mean(np.where(t == 1, log_expit(x), log_expit(-x))))


@register_metric("cross_entropy")
def cross_entropy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the class logits (one softmax; sklearn log_loss of it)."""
    logp = log_softmax(np.asarray(pred, dtype=np.float64), axis=1)
    return float(-np.mean(logp[np.arange(len(logp)), _label(y)]))


@register_metric("pearson_r")
def pearson_r(pred: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of pred[:, 0] and y[:, 0] (scipy.stats.pearsonr; nan if constant)."""
    a, b = _column(pred), _column(y)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


@register_metric("r2")
def r2(pred: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination 1 - SSE/SST of y[:, 0] (sklearn r2_score, force_finite)."""
    a, b = _column(pred), _column(y)
    sse = np.sum((b - a) ** 2)
    sst = np.sum((b - b.mean()) ** 2)
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1 - sse / sst)


def confusion_counts(pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """[true, predicted] counts of the argmax predictions (sklearn confusion_matrix)."""
    true = _label(y)
    predicted = np.asarray(pred).argmax(axis=1)
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


# --------------------------------------------------------------------------- re-paired targets
# Score-level permutation nulls: the fixed predictions of a test split scored against its
# targets re-paired, prediction i with the target of event perms[p, i], for every row p of
# `perms` [P, n] at once. Each follows its metric's recipe above with the same quantities (the
# identity row gives the metric itself; tests/test_significance.py checks every row against the
# metric of re-indexed targets). What a re-pairing leaves unchanged is computed once: ranks of
# the fixed scores, cosine matrices, class counts.


def repaired_class_aucs(scores: np.ndarray, true: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """[P, C] one-vs-rest ROC-AUC of each column of `scores` [n, C] when prediction i is
    labelled with class true[perms[p, i]] (the Mann-Whitney form of `column_aucs`); nan where
    a column lacks a class (re-pairing keeps the class counts)."""
    n, n_classes = scores.shape
    ranks = rankdata(scores, axis=0)
    paired = true[perms]  # [P, n] class of the target paired with each prediction
    gathered = ranks[np.arange(n)[None, :], paired]  # rank of prediction i in that class's column
    flat = (np.arange(len(perms))[:, None] * n_classes + paired).ravel()
    u: np.ndarray = np.bincount(flat, weights=gathered.ravel(), minlength=len(perms) * n_classes)
    n_pos = np.bincount(true, minlength=n_classes).astype(np.float64)
    n_neg = n - n_pos
    u = u.reshape(len(perms), n_classes) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def repaired_word_avg_auc_roc(
    member_preds: np.ndarray,
    y_test: np.ndarray,
    test_labels: np.ndarray,
    train_labels: np.ndarray,
    min_train_freq: int,
    perms: np.ndarray,
) -> np.ndarray:
    """[P] `word_avg_auc_roc` with the test words re-paired. Re-pairing moves a word's
    embedding and label together, so the class logits of each prediction (its mean distance
    to every occurrence of a type) and the scored types are unchanged; only which type is
    each prediction's true one changes."""
    w = word_class_scores(member_preds, y_test, test_labels, train_labels, min_train_freq)
    if not w.scored.any():
        return np.full(len(perms), np.nan)
    return repaired_class_aucs(w.probs, w.true, perms)[:, w.scored].mean(axis=1)


def _repaired_roc_auc(pred, y, perms):
    score = _column(pred)
    return repaired_class_aucs(
        np.stack([-score, score], axis=1), (_label(y) == 1).astype(np.int64), perms
    )[:, 1]


def _repaired_macro_roc_auc(pred, y, perms):
    probs = softmax(np.asarray(pred, dtype=np.float64), axis=1)
    aucs = repaired_class_aucs(probs, _label(y), perms)
    present = ~np.isnan(aucs[0]) if len(aucs) else np.zeros(probs.shape[1], bool)
    return aucs[:, present].mean(axis=1) if present.any() else np.full(len(perms), np.nan)


def _repaired_pearson_r(pred, y, perms):
    a, b = _column(pred), _column(y)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return b[perms] @ a / den if den > 0 else np.full(len(perms), np.nan)


def _repaired_pairwise_accuracy(pred, y, perms):
    sims = cosine_matrix(pred, y)
    n = len(sims)
    if n < 2:
        return np.full(len(perms), np.nan)
    below = rankdata(sims, axis=1, method="min") - 1  # entries of the row strictly smaller
    return below[np.arange(n)[None, :], perms].sum(axis=1) / (n * (n - 1))


def _repaired_cosine_sim(pred, y, perms):
    cos = _unit(np.asarray(pred, dtype=np.float64)) @ _unit(np.asarray(y, dtype=np.float64)).T
    return cos[np.arange(len(cos))[None, :], perms].mean(axis=1)


REPAIRED = {
    "roc_auc": _repaired_roc_auc,
    "macro_roc_auc": _repaired_macro_roc_auc,
    "pearson_r": _repaired_pearson_r,
    "pairwise_accuracy": _repaired_pairwise_accuracy,
    "cosine_sim": _repaired_cosine_sim,
}
"""Split metrics with a re-paired form: name -> (pred [n, out], y [n, D], perms [P, n]) -> [P]."""


READABLE = {
    "word_avg_auc_roc": "word ROC-AUC",
    "roc_auc": "ROC-AUC",
    "macro_roc_auc": "macro ROC-AUC",
    "pearson_r": "Pearson r",
    "r2": "R²",
    "mse": "mean squared error",
    "pairwise_accuracy": "pairwise accuracy",
    "cosine_sim": "cosine similarity",
    "f1": "F1",
    "macro_f1": "macro F1",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
}
SPLITS = {"test": "test", "val": "validation", "train": "train"}


def metric_label(column: str) -> str:
    """A reader's name of a metric column: `test_word_avg_auc_roc` -> "word ROC-AUC (test)"."""
    split, _, name = column.partition("_")
    if split not in SPLITS:
        return column.replace("_", " ")
    return f"{READABLE.get(name, name.replace('_', ' '))} ({SPLITS[split]})"
