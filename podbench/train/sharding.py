"""Placing lanes on devices: the lane axis is sharded over every local JAX device.

Lanes are independent, so the compiled program partitions along the lane axis with no
communication; data (latents, targets) are replicated. Working-set widths are multiples of
the device count. On CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=4` gives four
devices to test with.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class LaneSharding:
    def __init__(self, devices=None):
        self.devices = list(devices or jax.devices())
        self.n_devices = len(self.devices)
        self.mesh = Mesh(np.array(self.devices), ("lanes",))
        self._lanes = NamedSharding(self.mesh, PartitionSpec("lanes"))
        self._replicated = NamedSharding(self.mesh, PartitionSpec())

    def width(self, n_active: int) -> int:
        """Working-set width for n active lanes: a power of two, a multiple of the devices."""
        width = 1 << max(0, int(n_active - 1).bit_length())
        return -(-width // self.n_devices) * self.n_devices

    def lanes(self, tree):
        """Put a lane-leading pytree on the devices, split along the lane axis."""
        if self.n_devices == 1:
            return jax.device_put(tree, self.devices[0])
        n = len(jax.tree.leaves(tree)[0])
        if n % self.n_devices:
            raise ValueError(f"{n} lanes do not split over {self.n_devices} devices")
        return jax.device_put(tree, self._lanes)

    def replicate(self, tree):
        if self.n_devices == 1:
            return jax.device_put(tree, self.devices[0])
        return jax.device_put(tree, self._replicated)
