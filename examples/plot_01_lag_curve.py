"""
Decode word embeddings and plot the lag curve
=============================================

The core analysis of Goldstein et al. 2022: at each lag relative to word onset, decode the
word's GPT-2 embedding (PCA 50) from the ECoG window there, and score the decoded vectors by
the word ROC-AUC. Here a ridge decoder on the gallery's 120-s stand-in, whose electrodes
respond to each word 250 ms after its onset.
"""

# %%
# Train
# -----
# ``_standin.config`` is ``configs/demo.yml`` on the stand-in with reduced settings (six
# lags, one member); ``api.train`` builds the stores it lacks, trains every (lag, fold) lane
# in one compiled program and writes a results folder (``podbench train --config ...`` does
# the same from the shell).
import matplotlib.pyplot as plt
import numpy as np

import _standin
from podbench import api

cfg = _standin.config("model.name=ridge", "model.params={}", "trial_name=lag-curve")
result = api.train(cfg)
perf = result.performance

# %%
# The lag curve
# -------------
# ``lag_performance.csv`` has, per lag, the mean, the std over folds and each fold's value of
# every metric on every split. The lag is chosen on validation; its test value is the number
# to report.
metric = "word_avg_auc_roc"
folds = [c for c in perf.columns if c.startswith(f"test_{metric}_fold_")]
lags = perf["lags"].to_numpy()
test = perf[f"test_{metric}_mean"].to_numpy()
chosen = int(np.argmax(perf[f"val_{metric}_mean"].to_numpy()))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.fill_between(
    lags, perf[folds].min(axis=1), perf[folds].max(axis=1), alpha=0.2, label="test, fold range"
)
ax.plot(lags, test, "o-", label="test, mean over folds")
ax.plot(lags, perf[f"val_{metric}_mean"], "s--", label="validation")
ax.axhline(0.5, color="grey", lw=0.8, label="chance")
ax.axvline(lags[chosen], color="k", ls=":", label=f"chosen on validation ({lags[chosen]} ms)")
ax.set(xlabel="lag (ms)", ylabel="word ROC-AUC", title="ridge, GPT-2 layer 24 (PCA 50)")
ax.legend(fontsize=7, loc="lower center")
fig.tight_layout()

print(f"test word ROC-AUC at {lags[chosen]} ms (chosen on validation): {test[chosen]:.3f}")

# %%
# What the run wrote
# ------------------
# The folder is named by the run's training key, so training the same config again finds
# these results and stops. ``lag_curve.png`` is podbench's own plot of the same curve.
print(sorted(p.name for p in result.run_dir.iterdir()))
