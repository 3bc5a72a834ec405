"""podbench works from a wheel: the configs the commands need are package data, no top-level
`cli` module is installed, and importing the API leaves matplotlib's backend alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_config_beside_the_repo_is_the_packaged_one():
    assert (REPO / "configs/demo.yml").read_bytes() == (
        REPO / "podbench/configs/demo.yml"
    ).read_bytes()


def test_importing_the_api_keeps_the_matplotlib_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); import podbench.api, podbench.train.results, "
        "podbench.experiments.sweep; import matplotlib as m; print(m.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


@pytest.mark.slow
def test_the_wheel_holds_the_demo_config_and_no_cli_module(tmp_path):
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("podbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "podbench/configs/demo.yml" in names and "podbench/cli.py" in names
    assert not [n for n in names if "/" not in n and n.endswith(".py")]  # no top-level cli.py
    packaged = zipfile.ZipFile(wheel).read("podbench/configs/demo.yml")
    assert packaged == (REPO / "configs/demo.yml").read_bytes()
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"podbench = podbench.cli:main" in entry
