"""
Permutation significance and what the nulls look like
=====================================================

Is a lag's score above what chance gives? podbench's default test re-pairs each fold's fixed
held-out predictions with permuted test targets, thousands of times, and scores every
re-pairing with the task's own headline metric: no retraining, seconds of scoring. The
p-value is (1 + #{null >= observed}) / (1 + N) per lag; Benjamini-Hochberg q-values control
the false discovery rate across lags.
"""

# %%
# The run
# -------
# The ridge run of the first example (found, not retrained: its results are complete).
import matplotlib.pyplot as plt

import _standin
from podbench import api
from podbench.experiments.significance import (
    Significance,
    bh_qvalues,
    permutation_pvalues,
    score_null,
)

cfg = _standin.config("model.name=ridge", "model.params={}", "trial_name=lag-curve")
run = api.train(cfg).run_dir
perf = api.load_run(run).performance
observed = perf["test_word_avg_auc_roc_mean"].to_numpy()
lags = perf["lags"].to_numpy()

# %%
# Two nulls
# ---------
# ``words`` permutes the targets across a fold's test words; ``circular`` shifts them in time
# and keeps their autocorrelation: the right choice for GPT-2 embeddings, whose slowly
# drifting context makes neighbouring words alike.
nulls = {
    mode: score_null(run, cfg, Significance(permutations=500, mode=mode, seed=1))
    for mode in ("words", "circular")
}

fig, axes = plt.subplots(1, len(lags), figsize=(9, 2.6), sharey=True)
for i, ax in enumerate(axes):
    for mode, null in nulls.items():
        ax.hist(null[:, i], bins=25, alpha=0.5, label=mode, density=True)
    ax.axvline(observed[i], color="k", lw=1.5)
    ax.set_title(f"{lags[i]} ms", fontsize=8)
    ax.tick_params(labelsize=6)
axes[0].set_ylabel("density")
axes[0].legend(fontsize=6, title="null", title_fontsize=6)
fig.suptitle("null word ROC-AUC per lag (black: observed)", fontsize=9)
fig.tight_layout()

# %%
# p- and q-values
# ---------------
for mode, null in nulls.items():
    p = permutation_pvalues(observed, null)
    q = bh_qvalues(p)
    print(mode, " ".join(f"{lag}ms: p={pi:.3f} q={qi:.3f}" for lag, pi, qi in zip(lags, p, q)))
