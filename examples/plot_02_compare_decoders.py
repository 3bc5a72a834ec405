"""
Compare two decoders with the paired test
=========================================

Two decoders of one task, trained on the same folds and lags, are compared lag by lag and
fold by fold: the Wilcoxon signed-rank test of their test headline over the (fold, lag)
pairs, as ``podbench compare CELL_A CELL_B`` and a benchmark's ``comparisons.csv`` compute
it. Here ridge against a small MLP.
"""

# %%
# Two cells of a suite
# --------------------
# A suite file lists cells (a config plus overrides); ``podbench benchmark`` trains them,
# writes each cell's ``cell.json`` (per lag and fold: validation and test headline,
# permutation p-values) and compares every pair of cells of one task.
import matplotlib.pyplot as plt

import _standin

suite = _standin.CACHE / "compare.yml"
suite.write_text(f"""
name: compare
version: 1
defaults:
  significance: {{permutations: 200, mode: circular}}
cells:
  - name: ridge
    config: {_standin.REPO / "configs/demo.yml"}
    set: {{model.name: ridge, model.params: {{}}}}
  - name: mlp
    config: {_standin.REPO / "configs/demo.yml"}
    set: {{model.name: mlp, model.params: {{hidden: [32]}}, training.lr: 1.0e-2}}
""")
out = _standin.podbench("benchmark", "--suite", str(suite), *_standin.set_args())
print(out[-1500:])

# %%
# The paired test
# ---------------
# ``podbench compare`` reads two cells' records (their results folders or ``cell.json``).
import json

cells = {
    p.parent.parent.name: p
    for p in sorted((_standin.RESULTS / "compare").glob("*/cells/*/*/cell.json"))
}
print(_standin.podbench("compare", str(cells["ridge"]), str(cells["mlp"])))

# %%
# What the test pairs
# -------------------
# Each point is one (fold, lag): the two decoders' test word ROC-AUC on the same held-out
# words. Points above the diagonal favour ridge.
records = {name: json.loads(path.read_text()) for name, path in cells.items()}
fig, ax = plt.subplots(figsize=(4.5, 4.5))
for row_a, row_b in zip(records["ridge"]["per_lag"], records["mlp"]["per_lag"]):
    ax.scatter(row_b["test"], row_a["test"], label=f"{row_a['lag']} ms", s=18)
ax.plot([0.3, 1], [0.3, 1], color="grey", lw=0.8)
ax.set(
    xlabel="MLP test word ROC-AUC",
    ylabel="ridge test word ROC-AUC",
    title="ridge vs MLP, one point per (fold, lag)",
)
ax.legend(fontsize=7, title="lag")
fig.tight_layout()
