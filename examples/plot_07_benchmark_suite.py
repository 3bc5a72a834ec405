"""
A benchmark suite and its report
================================

A suite is a list of cells (task x decoder config x subjects). ``podbench benchmark`` trains
them, sharing every store whose key agrees and packing cells that share a program shape as
lanes of one program, tests every lag of every cell with score-level permutations, and
writes a leaderboard and a static HTML report.
"""

# %%
# The suite
# ---------
# Two tasks, each decoded by the ``linear`` baseline (ridge for embeddings, logistic
# regression for the binary content-word task) and by an MLP.
import matplotlib.pyplot as plt
import pandas as pd

import _standin

repo = _standin.REPO
suite = _standin.CACHE / "two-tasks.yml"
suite.write_text(f"""
name: two-tasks
version: 1
defaults:
  significance: {{permutations: 500, mode: circular}}
cells:
  - name: gpt2_linear
    config: {repo / "configs/demo.yml"}
    set: {{model.name: linear, model.params: {{}}}}
  - name: gpt2_mlp
    config: {repo / "configs/demo.yml"}
    set: {{model.name: mlp, model.params: {{hidden: [32]}}, training.lr: 1.0e-2}}
  - name: content_word_linear
    config: {repo / "configs/tasks/content_word.yml"}
    set: {{model.name: linear, model.params: {{}}}}
  - name: content_word_mlp
    config: {repo / "configs/tasks/content_word.yml"}
    set: {{model.name: mlp, model.params: {{hidden: [32]}}, training.lr: 1.0e-2}}
""")

# %%
# Plan, then run
# --------------
# ``--plan`` prints the programs, lanes and stores without building or training anything.
print(_standin.podbench("benchmark", "--suite", str(suite), "--plan", *_standin.set_args()))
out = _standin.podbench("benchmark", "--suite", str(suite), *_standin.set_args())
print(out[-2000:])

# %%
# The leaderboard
# ---------------
# One row per cell: the lag chosen on validation and the test headline there, and how many
# lags are significant (q < 0.05).
folder = sorted((_standin.RESULTS / "two-tasks").glob("*/leaderboard.csv"))[-1].parent
board = pd.read_csv(folder / "leaderboard.csv")
print(board.to_string(index=False))

# %%
# The report
# ----------
# ``report/index.html`` is self-contained (figures embedded, no server): the leaderboard,
# every task's lag curves with significant lags starred, the paired comparisons and a page
# per cell. ``podbench report`` writes it for any benchmark, sweep or results folder.
print(sorted(p.name for p in (folder / "report").iterdir())[:8])
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, (task, rows) in zip(axes, board.groupby("task")):
    ax.barh(rows["cell"], rows["test_mean"], xerr=rows["test_std"])
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set(title=task, xlabel=rows["metric"].iloc[0])
fig.tight_layout()
