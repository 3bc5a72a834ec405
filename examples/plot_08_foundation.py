"""
Frozen foundation-model latents
===============================

podbench ships a small masked autoencoder for high-gamma windows (one token per electrode and
32-sample time patch, placed by the electrode's MNI coordinates). ``podbench pretrain``
trains it on unlabelled signal only; the ``foundation`` preprocessor then runs the frozen
encoder over every lag window once and stores its latents, which any decoder reads. Here a
short pretraining (the real one runs thousands of steps) and a ridge decoder on the latents.
"""

# %%
# Pretrain
# --------
# A pretraining config: the data and the model's shape. The artefact is keyed by the
# pretrain section and the recordings' content, under ``stores/pretrain/<key>/``.
import matplotlib.pyplot as plt
import pandas as pd

import _standin
from podbench import api

pretrain = _standin.CACHE / "pretrain.yml"
pretrain.write_text(f"""
trial_name: gallery-pretrain
data: {{root: {_standin.DATA}, subjects: [3], electrodes: responsive}}
pretrain: {{depth: 1, width: 32, heads: 4, patch: 32, steps: 20, batch_size: 8, lr: 2.0e-3}}
output: {{stores: {_standin.STORES}, results: {_standin.RESULTS}}}
""")
print(_standin.podbench("pretrain", "--config", str(pretrain))[-600:])

loss = pd.read_csv(next((_standin.STORES / "pretrain").glob("*/loss.csv")))
print(loss.tail(3))

# %%
# Decode from the frozen latents
# ------------------------------
# Subject 3's responsive electrodes. ``pool: electrodes`` keeps one average per electrode
# (channels x width features). The checkpoint's digest enters the latents key, so another
# checkpoint means new latents and later decoders reuse these.
foundation = _standin.config(
    "data.subjects=[3]",
    "preprocess.name=foundation",
    f"preprocess.params={{checkpoint: {pretrain}, pool: electrodes, device: cpu}}",
    "model.name=ridge",
    "model.params={}",
    "trial_name=foundation",
)
window = _standin.config(
    "data.subjects=[3]", "model.name=ridge", "model.params={}", "trial_name=foundation"
)
runs = {
    "MAE latents (frozen)": api.train(foundation).performance,
    "window averages": api.train(window).performance,
}

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
ax0.plot(loss.iloc[:, 0], loss.iloc[:, 1])
ax0.set(xlabel=loss.columns[0], ylabel=loss.columns[1], title="pretraining loss")
for name, perf in runs.items():
    ax1.plot(perf["lags"], perf["test_word_avg_auc_roc_mean"], "o-", label=name)
ax1.axhline(0.5, color="grey", lw=0.8)
ax1.set(xlabel="lag (ms)", ylabel="test word ROC-AUC", title="ridge decoder")
ax1.legend(fontsize=7)
fig.tight_layout()
