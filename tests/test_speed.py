"""Trainer speed machinery: the sort-based early-stopping ROC-AUC, 16-bit dropout masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics as skm

from podbench.tasks.scoring import masked_auc, masked_macro_auc


@pytest.mark.parametrize("n", [7, 64, 1500])
def test_sorted_auc_equals_sklearn_with_ties_and_masks(n):
    rng = np.random.default_rng(n)
    for decimals in (0, 1, 6):  # many ties, some ties, almost none
        score = np.round(rng.normal(size=n), decimals).astype(np.float32)
        positive = (rng.random(n) < 0.3).astype(np.float32)
        positive[:2] = [0, 1]
        mask = (rng.random(n) < 0.7).astype(np.float32)
        mask[:2] = 1
        score[mask == 0] = score[0]  # masked rows tied with valid ones change nothing
        valid = mask > 0
        got = masked_auc(jnp.asarray(score), jnp.asarray(positive), jnp.asarray(mask))
        assert float(got) == pytest.approx(skm.roc_auc_score(positive[valid], score[valid]),
                                           abs=1e-6)
    one_class = masked_auc(jnp.asarray(score), jnp.zeros(n), jnp.asarray(mask))
    assert float(one_class) == 0.5


def test_sorted_macro_auc_equals_sklearn_over_present_classes():
    rng = np.random.default_rng(1)
    n, k = 400, 5
    label = rng.integers(0, k, n)
    logits = np.round(rng.normal(size=(n, k)) + np.eye(k)[label], 1).astype(np.float32)
    mask = (rng.random(n) < 0.8).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))
    valid = mask > 0
    got = masked_macro_auc(jnp.asarray(logits), jnp.asarray(label, jnp.float32), jnp.asarray(mask))
    expected = skm.roc_auc_score(label[valid], probs[valid], multi_class="ovr", average="macro")
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # a class absent from the valid rows is left out of the mean
    mask[label == 3] = 0
    valid = mask > 0
    got = masked_macro_auc(jnp.asarray(logits), jnp.asarray(label, jnp.float32), jnp.asarray(mask))
    per_class = [skm.roc_auc_score(label[valid] == c, probs[valid, c]) for c in (0, 1, 2, 4)]
    assert float(got) == pytest.approx(np.mean(per_class), abs=1e-6)


def test_sorted_auc_memory_is_linear_in_rows():
    """500 lanes x 2,000 validation rows x 5 classes: an n x n comparison would need 40 GB."""
    lanes, n, k = 500, 2000, 5
    compiled = jax.jit(jax.vmap(masked_macro_auc)).lower(
        jnp.zeros((lanes, n, k)), jnp.zeros((lanes, n)), jnp.zeros((lanes, n))).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < 40 * lanes * n * k  # a few arrays of n per lane and class


def test_dropout_keeps_the_rate_and_the_mean():
    from podbench.models.layers import Call, dropout

    x = jnp.ones((64, 50, 40))
    key = jax.random.key(3)
    for rate in (0.0, 0.2, 0.5):
        out = np.asarray(dropout(x, Call(True, key, jnp.float32(rate)), salt=1))
        kept = out != 0
        assert abs(kept.mean() - (1 - rate)) < 0.01
        # inverted dropout, the rate rounded to a multiple of 1/65,536
        np.testing.assert_allclose(out[kept], 1 / (1 - rate), rtol=2 / 65536)
    a = dropout(x, Call(True, key, 0.2), salt=1)
    np.testing.assert_array_equal(a, dropout(x, Call(True, key, 0.2), salt=1))  # reproducible
    assert (np.asarray(a) != np.asarray(dropout(x, Call(True, key, 0.2), salt=2))).mean() > 0.2
    assert (np.asarray(dropout(x, Call(True, key, 1.0), salt=1)) == 0).all()
    np.testing.assert_array_equal(dropout(x, Call(False, key, 0.2), salt=1), x)  # eval mode
