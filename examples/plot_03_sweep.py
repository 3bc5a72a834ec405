"""
A sweep and its summary
=======================

A grid file maps config paths to lists of values; ``podbench sweep`` trains their cartesian
product. Points that differ only in per-lane values (learning rate, weight decay, dropout,
seed) train as extra lanes of one compiled program, and every point reuses the same stores.
Each point's lag and the best point are chosen on validation.
"""

# %%
# Run the sweep
# -------------
# Four points of an MLP decoder: two learning rates by two dropout rates.
import matplotlib.pyplot as plt
import numpy as np

import _standin
from podbench.experiments.sweep import sweep

grid = _standin.CACHE / "sweep-grid.yml"
grid.write_text("training.lr: [1.0e-3, 1.0e-2]\nmodel.params.dropout: [0.1, 0.4]\n")
cfg = _standin.config("model.name=mlp", "model.params={hidden: [32]}", "trial_name=sweep")
result = sweep(cfg, grid)
summary = result.summary
print(summary.drop(columns=["run_id"], errors="ignore").to_string(index=False))

# %%
# The summary plot
# ----------------
# ``summary.csv`` has one row per point: its settings, the lag chosen on validation, and the
# validation and test headline there with their fold std. ``summary.png`` beside it is
# podbench's own plot; here the same numbers drawn from the table.
val = [c for c in summary.columns if c.startswith("val_") and c.endswith("_mean")][0]
test = val.replace("val_", "test_", 1)
labels = [
    f"lr {row['training.lr']:g}\ndropout {row['model.params.dropout']:g}"
    for _, row in summary.iterrows()
]
x = np.arange(len(summary))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(x - 0.2, summary[val], 0.4, label="validation (chooses)")
ax.bar(
    x + 0.2,
    summary[test],
    0.4,
    yerr=summary[test.replace("_mean", "_std")],
    label="test (reported)",
)
ax.axhline(0.5, color="grey", lw=0.8)
ax.set_xticks(x, labels, fontsize=7)
ax.set(
    ylabel="word ROC-AUC at the chosen lag",
    ylim=(0.4, 1.0),
    title=f"best point on validation: {result.best}",
)
ax.legend(fontsize=7)
fig.tight_layout()
print(result.folder / "summary.csv")
