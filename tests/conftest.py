"""Shared fixtures: stand-in datasets written once per test session by `podbench synth`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from podbench import config  # noqa: E402
from podbench.data.synth import responsive_electrode_csv  # noqa: E402
from podbench.data.synth import synthesize  # noqa: E402


@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> Path:
    """Subjects 1 and 3, first 120 s: small, for data-layer and store tests."""
    out = tmp_path_factory.mktemp("standin") / "ds"
    synthesize(out, subjects=[1, 3], duration=120)
    return out


@pytest.fixture(scope="session")
def decoding_standin(tmp_path_factory) -> tuple[Path, Path]:
    """Subjects 3, 6 and 9, first 600 s (enough frequent words for word AUC), with the ground
    truth's responsive channels as an electrode CSV."""
    out = tmp_path_factory.mktemp("decoding") / "ds"
    synthesize(out, subjects=[3, 6, 9], duration=600)
    return out, responsive_electrode_csv(out)


def make_config(root: Path, work: Path, **sections) -> config.Config:
    """A validated config on a stand-in with stores and results under `work`."""
    raw = {"data": {"root": str(root)},
           "output": {"stores": str(work / "stores"), "results": str(work / "results")}}
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return config.from_dict(raw)
