"""Every example of README.md runs as written.

The test copies the repository's tracked files to a fresh folder, runs `podbench demo` there,
then every ```bash and ```python block of the README in order, each from the copy's root,
reduced through PODBENCH_SET (which the README documents). A block right after an HTML
comment `<!-- no-run: why -->` is skipped (installs, the test suite, Ray clusters); a
```python or ```yaml block whose first line is `# PATH.py` / `# PATH.yml` is a file the text
asks for, and is written to PATH instead of run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REDUCED = ("training.epochs=1 model.members=1 data.lags.min=0 data.lags.max=400 "
           "data.subjects=[3,6] pretrain.steps=4")
FILE = re.compile(r"#\s*(\S+\.(?:py|ya?ml))\s*$")


def readme_blocks(text: str) -> list[tuple[str, str, bool]]:
    """(language, body, skipped) of every fenced block, in order."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        out.append((fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                    before.strip().startswith("<!-- no-run")))
        i = end + 1
    return out


def test_blocks_are_found_and_marked():
    blocks = readme_blocks((REPO / "README.md").read_text())
    runnable = [b for b in blocks if b[0] in ("bash", "python") and not b[2]]
    assert len(runnable) >= 6
    assert any(FILE.match(body.splitlines()[0]) for lang, body, _ in blocks if lang == "python")
    assert all(skip for lang, body, skip in blocks if "pip install" in body)


def tracked_copy(dest: Path) -> Path:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.mark.slow
def test_readme_examples_run_verbatim(tmp_path):
    repo = tracked_copy(tmp_path / "clone")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PODBENCH_SET": REDUCED, "PYTHONPATH": str(repo), "MPLBACKEND": "Agg",
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}

    def run(argv: list[str], what: str) -> None:
        done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    run(["podbench", "demo"], "podbench demo")
    ran = 0
    for lang, body, skipped in readme_blocks((repo / "README.md").read_text()):
        if skipped or lang not in ("bash", "python", "yaml", "yml"):
            continue
        first = body.splitlines()[0] if body.strip() else ""
        named = FILE.match(first)
        if named:
            (repo / named.group(1)).parent.mkdir(parents=True, exist_ok=True)
            (repo / named.group(1)).write_text(body)
        elif lang == "bash":
            run(["bash", "-euo", "pipefail", "-c", body], f"README block\n{body}")
            ran += 1
        elif lang == "python":
            run([sys.executable, "-c", body], f"README block\n{body}")
            ran += 1
    assert ran >= 6
    assert list((repo / "results/demo").glob("sweep-*/summary.csv"))
    assert list((repo / "results/dense").glob("*/lag_performance.csv"))
    assert list((repo / "results/word-length").glob("*/lag_performance.csv"))
