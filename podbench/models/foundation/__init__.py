"""podbench's own ECoG foundation model: a masked autoencoder over (electrode, time patch) tokens.

- `mae`: the PyTorch model (any electrode layout, positions from MNI coordinates);
Pretraining (`podbench pretrain`) is a feature stage: podbench/features/pretrain.py.

The frozen model is used by the `foundation` preprocessor (podbench/features/foundation.py).
"""
