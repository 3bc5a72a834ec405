"""The layering of podbench/ (DESIGN.md, ARCHITECTURE.md): imports only go downwards, and the
light commands never import JAX, Flax or torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "podbench"
PODBENCH = str(Path(sys.executable).parent / "podbench")
BOTTOM = {"config", "registry", "specs", "errors", "publish", "progress", "plotting", "__init__",
          "__version__"}

# layer -> the layers it may import (besides itself and the bottom modules)
ALLOWED = {
    "bottom": set(),
    "data": set(),
    "tasks": {"data"},
    "models": set(),
    "features": {"data", "tasks", "models"},
    "train": {"data", "tasks", "models", "features"},
    "experiments": {"data", "tasks", "models", "features", "train"},
    "top": {"data", "tasks", "models", "features", "train", "experiments"},
}
HEAVY = ("jax", "jaxlib", "flax", "optax", "orbax", "torch")


def layer_of(module: str) -> str:
    """Layer of a dotted podbench module name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "bottom"
    head = parts[1]
    if head in BOTTOM:
        return "bottom"
    if head in ("cli", "api"):
        return "top"
    return head


def module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def podbench_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every podbench module a file imports, at any depth of the file."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "podbench"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "podbench":
                names = [f"{node.module}.{a.name}" for a in node.names]
                # `from podbench import registry` imports podbench.registry
                out += [(node.lineno, n if node.module == "podbench" else node.module)
                        for n in names]
    return out


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        src = layer_of(module_name(path, package))
        for line, target in podbench_imports(path):
            dst = layer_of(target)
            if dst not in ("bottom", src) and dst not in ALLOWED[src]:
                found.append(f"{path.relative_to(package.parent)}:{line}: {src} imports {dst} "
                             f"({target})")
    return found


def test_imports_only_go_downwards():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    """A data module that imports the trainer is reported (the check can fail)."""
    fake = tmp_path / "podbench"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("def f():\n    from podbench.train.run import train_points\n")
    (fake / "tasks").mkdir()
    (fake / "tasks" / "ok.py").write_text("from podbench.data.dataset import Dataset\n")
    assert violations(fake) == ["podbench/data/bad.py:2: data imports train (podbench.train.run)"]


def heavy_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_loading_a_config_imports_no_jax_flax_or_torch():
    assert heavy_after("from podbench import config\nconfig.load('configs/demo.yml')") == []
    assert heavy_after("from podbench import config\n"
                       "config.load('configs/tasks/content_word.yml')") == []


@pytest.mark.parametrize("args", [["--help"], ["synth", "--help"], ["stores", "ls", "--stores", "{tmp}"],
                                  ["stores", "gc", "--stores", "{tmp}"],
                                  ["stores", "verify", "--stores", "{tmp}"]])
def test_light_commands_import_no_jax_flax_or_torch(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = ("import sys\nfrom podbench.cli import main\nsys.argv = ['podbench', *%r]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass" % (args,))
    assert heavy_after(code) == []
