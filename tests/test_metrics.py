"""Metrics: the reference's definitions over whole splits, checked by hand and against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from podbench.tasks import metrics


def test_split_metrics_on_a_hand_built_example():
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pred = np.array([[2.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    assert metrics.mse(pred, y) == pytest.approx(np.mean([1, 0, 0, 4, 0, 0]))
    assert metrics.cosine_sim(pred, y) == pytest.approx((1 - 1 + 1) / 3)
    # pairs (i, j != i) with cos(p_i, y_i) > cos(p_i, y_j): row 0: 1 > 0, 1 > .707 -> 2;
    # row 1: -1 > 0? no, -1 > -.707? no -> 0; row 2: 1 > .707 twice -> 2
    assert metrics.pairwise_accuracy(pred, y) == pytest.approx(4 / 6)
    sims = metrics.cosine_matrix(pred, y)
    expected_nll = -np.mean([np.log(softmax(sims[i])[i]) for i in range(3)])
    assert metrics.nll_embedding(pred, y) == pytest.approx(expected_nll)
    assert metrics.cosine_sim(np.zeros((1, 2)), np.ones((1, 2))) == 0.0  # zero norm -> 0


def test_top_k_counts_the_true_column_among_the_k_best():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    true = np.array([2, 0, 1])
    assert metrics.top_k(probs, true, 1) == pytest.approx(1 / 3)
    assert metrics.top_k(probs, true, 2) == pytest.approx(2 / 3)
    assert metrics.top_k(probs, true, 3) == 1.0


def test_word_auc_follows_the_reference_recipe_and_equals_sklearn():
    rng = np.random.default_rng(0)
    vocab = np.array(["the", "a", "monkey", "and", "of", "rare"], dtype=object)
    emb = {w: rng.normal(size=8) for w in vocab}
    test_labels = rng.choice(vocab[:5], size=60)
    train_labels = np.concatenate([np.repeat(vocab[:4], 5), ["of"] * 4, ["rare"] * 9])
    y_test = np.stack([emb[w] for w in test_labels])
    members = np.stack([y_test + rng.normal(scale=s, size=y_test.shape) for s in (1.0, 2.0, 3.0)])
    out = metrics.word_metrics(members, y_test, test_labels, train_labels, min_train_freq=5)

    # by hand: distances averaged over members, then over each class's test occurrences
    dist = np.mean([1 - metrics.cosine_matrix(m, y_test) for m in members], axis=0)
    classes = sorted(set(test_labels))
    class_dist = np.stack([dist[:, test_labels == c].mean(1) for c in classes], axis=1)
    probs = softmax(1 - class_dist, axis=1)
    included = [c for c in classes if (train_labels == c).sum() >= 5]  # "of" has 4: excluded
    assert "of" not in included and len(included) == 4
    aucs = [roc_auc_score(test_labels == c, probs[:, classes.index(c)]) for c in included]
    assert out["test_word_avg_auc_roc"] == pytest.approx(np.mean(aucs), abs=1e-9)
    train_w = [(train_labels == c).sum() for c in included]
    test_w = [(test_labels == c).sum() for c in included]
    assert out["test_word_train_weighted_auc_roc"] == pytest.approx(
        np.average(aucs, weights=train_w), abs=1e-9
    )
    assert out["test_word_test_weighted_auc_roc"] == pytest.approx(
        np.average(aucs, weights=test_w), abs=1e-9
    )
    true = np.array([classes.index(c) for c in test_labels])
    assert out["test_word_top_1"] == pytest.approx(np.mean(probs.argmax(1) == true))
    assert out["test_word_perplexity"] == pytest.approx(
        np.exp(-np.mean(np.log(probs[np.arange(60), true])))
    )
    occ = softmax(1 - dist, axis=1)
    assert out["test_occurence_top_1"] == pytest.approx(np.mean(occ.argmax(1) == np.arange(60)))
    assert out["test_word_n_classes"] == 4


def test_word_auc_is_at_chance_for_unrelated_predictions():
    rng = np.random.default_rng(1)
    labels = rng.choice([f"w{i}" for i in range(30)], size=2000)
    emb = {w: rng.normal(size=16) for w in set(labels)}
    y = np.stack([emb[w] for w in labels])
    members = rng.normal(size=(2, 2000, 16))
    out = metrics.word_metrics(members, y, labels, labels, min_train_freq=5)
    assert out["test_word_avg_auc_roc"] == pytest.approx(0.5, abs=0.03)
    perfect = metrics.word_metrics(y[None], y, labels, labels, min_train_freq=5)
    assert perfect["test_word_avg_auc_roc"] > 0.99


def test_vectorised_ranks_and_aucs_equal_sorting_and_sklearn():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 6, size=(300, 40)).astype(float)  # many ties
    true = rng.integers(0, 40, size=300)
    order = np.argsort(-scores, axis=1, kind="stable")
    for k in (1, 5, 10):
        expected = np.mean((order[:, :k] == true[:, None]).any(axis=1))
        assert metrics.top_k(scores, true, k) == expected
    positive = rng.random((300, 40)) < 0.2
    positive[:, 0] = False  # one class only: nan
    aucs = metrics.column_aucs(scores, positive)
    assert np.isnan(aucs[0])
    expected = [roc_auc_score(positive[:, c], scores[:, c]) for c in range(1, 40)]
    np.testing.assert_allclose(aucs[1:], expected, rtol=0, atol=1e-12)
