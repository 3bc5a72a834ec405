"""
Load a run and plot its predictions
===================================

A finished run reads back without retraining: its config, tables, ``run.json`` and every
held-out prediction, as an xarray Dataset with named dimensions (lag, fold, member, event,
out). Here the ridge run of the first example.
"""

# %%
# Load the run
# ------------
import matplotlib.pyplot as plt
import numpy as np

import _standin
from podbench import api

cfg = _standin.config("model.name=ridge", "model.params={}", "trial_name=lag-curve")
run = api.load_run(api.train(cfg).run_dir)  # finds the complete results; trains nothing
test = run.predictions("test")
print(test)

# %%
# Predicted against true, per lag
# -------------------------------
# Each word is in the test split of exactly one fold; ``sum`` over folds (ignoring the nan
# elsewhere) gives every word's held-out prediction. The first principal component of the
# GPT-2 targets, decoded at each lag: at the planted 250 ms the predictions follow the
# targets, before word onset they do not.
pred = test["prediction"].sel(member="ensemble").sum("fold", min_count=1)
target = test["target"].sum("fold", min_count=1)
lags = test["lag"].values
fig, axes = plt.subplots(1, len(lags), figsize=(10, 2.4), sharex=True, sharey=True)
for ax, lag in zip(axes, lags):
    p = pred.sel(lag=lag).isel(out=0).values
    t = target.isel(dim=0).values
    r = np.corrcoef(p, t)[0, 1]
    ax.scatter(t, p, s=3, alpha=0.5)
    ax.set_title(f"{lag} ms, r = {r:.2f}", fontsize=8)
    ax.tick_params(labelsize=6)
axes[0].set_ylabel("predicted PC 1", fontsize=8)
for ax in axes:
    ax.set_xlabel("true PC 1", fontsize=8)
fig.tight_layout()

# %%
# The tidy table
# --------------
# One row per lag, fold, member, event and output: ready for pandas.
table = test["prediction"].to_dataframe().dropna()
print(table.head())
print(len(table), "rows")
