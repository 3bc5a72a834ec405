"""podbench's own ECoG foundation model: a masked autoencoder over (electrode, time patch) tokens.

- `mae`: the PyTorch model (any electrode layout, positions from MNI coordinates);
- `pretrain`: self-supervised pretraining on unlabelled high-gamma windows (`podbench pretrain`).

The frozen model is used by the `foundation` preprocessor (podbench/features/foundation.py).
"""
