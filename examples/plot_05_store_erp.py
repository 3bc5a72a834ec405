"""
Open a store with xarray: an electrode's response around word onsets
=====================================================================

Every stage writes a zarr store read through xarray with named dimensions and coordinates.
The epochs store holds one window per word spanning every lag; averaging it over words gives
each electrode's average response around word onsets.
"""

# %%
# Open the epochs store
# ---------------------
# Five electrodes of subject 3 (a regex on channel names picks them). ``api.open_store``
# finds a config's store by its key; ``xarray.open_zarr`` on
# ``stores/epochs/<key>/data.zarr`` opens the same thing without podbench.
import json

import matplotlib.pyplot as plt

import _standin
from podbench import api

cfg = _standin.config(
    "data.subjects=[3]",
    "data.electrodes='^LGA1[0-4]$'",
    "model.name=ridge",
    "model.params={}",
    "trial_name=erp",
)
api.build_features(cfg)
epochs = api.open_store(cfg, "epochs")
print(epochs)

# %%
# Average over words
# ------------------
# ``time`` is in seconds relative to word onset (the window spans every lag), ``ecog`` in
# volts. The stand-in's ground truth names the electrodes it made respond to words, 250 ms
# after their onset.
truth = json.loads((_standin.DATA / "derivatives/podbench-synth/ground_truth.json").read_text())
responsive = set(truth["responsive_channels"])

erp = epochs["ecog"].mean("word").compute() * 1e6
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in erp["channel"].values:
    kind = "responsive" if str(name) in responsive else "not responsive"
    ax.plot(
        erp["time"],
        erp.sel(channel=name),
        ls="-" if kind == "responsive" else "--",
        label=f"{name} ({kind})",
    )
ax.axvline(0, color="k", lw=0.8)
ax.axvline(0.25, color="k", ls=":", lw=0.8)
ax.set(
    xlabel="time from word onset (s)",
    ylabel="mean high gamma (µV)",
    title=f"average over {epochs.sizes['word']} words; dotted: +250 ms",
)
ax.legend(fontsize=7)
fig.tight_layout()
