"""The layering of podbench/ (ARCHITECTURE.md): imports only go downwards, no two files import
each other (directly or through others), and the light commands never import JAX, Flax or
torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "podbench"
PODBENCH = str(Path(sys.executable).parent / "podbench")
BOTTOM = {
    "config",
    "registry",
    "specs",
    "errors",
    "publish",
    "progress",
    "plotting",
    "__init__",
    "__version__",
}

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
                out += [
                    (node.lineno, n if node.module == "podbench" else node.module) for n in names
                ]
    return out


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        src = layer_of(module_name(path, package))
        for line, target in podbench_imports(path):
            dst = layer_of(target)
            if dst not in ("bottom", src) and dst not in ALLOWED[src]:
                found.append(
                    f"{path.relative_to(package.parent)}:{line}: {src} imports {dst} ({target})"
                )
    return found


def test_imports_only_go_downwards():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    """A data module that imports the trainer is reported (the check can fail)."""
    fake = tmp_path / "podbench"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text(
        "def f():\n    from podbench.train.run import train_points\n"
    )
    (fake / "tasks").mkdir()
    (fake / "tasks" / "ok.py").write_text("from podbench.data.dataset import Dataset\n")
    assert violations(fake) == ["podbench/data/bad.py:2: data imports train (podbench.train.run)"]


def runtime_nodes(tree: ast.AST):
    """Every node of a syntax tree except those under `if TYPE_CHECKING:` (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def from_module(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute name of the module a `from ... import` statement of `module` names."""
    if not node.level:
        return node.module
    parts = module.split(".")[: None if path.name == "__init__.py" else -1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports, at any depth of its file (inside
    functions too). `from p import name` imports the module p.name where there is one, else p."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        targets = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = from_module(node, module, path)
                targets.update(
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                )
        graph[module] = (targets & files.keys()) - {module}
    return graph


def import_cycles(package: Path = PACKAGE) -> list[str]:
    """The import cycles between files of `package` that a depth-first search meets, each as
    "a -> b -> a"; every group of files that import each other yields at least one."""
    graph, state, stack, found = import_graph(package), {}, [], []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_import_cycles_between_files():
    assert import_cycles() == []


def test_the_check_catches_an_import_cycle(tmp_path):
    """A cycle closed by an import inside a function, and by a relative import, is named;
    an import only for type checking is not one."""
    fake = tmp_path / "podbench"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "a.py").write_text("def f():\n    from podbench.data import b\n")
    (fake / "data" / "b.py").write_text("from .c import g\n")
    (fake / "data" / "c.py").write_text("import podbench.data.a\n")
    (fake / "data" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from podbench.data.e import E\n"
    )
    (fake / "data" / "e.py").write_text("from podbench.data.d import D\n")
    assert import_cycles(fake) == [
        "podbench.data.a -> podbench.data.b -> podbench.data.c -> podbench.data.a"
    ]


def heavy_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_loading_a_config_imports_no_jax_flax_or_torch():
    assert heavy_after("from podbench import config\nconfig.load('configs/demo.yml')") == []
    assert (
        heavy_after("from podbench import config\nconfig.load('configs/tasks/content_word.yml')")
        == []
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["synth", "--help"],
        ["stores", "ls", "--stores", "{tmp}"],
        ["stores", "gc", "--stores", "{tmp}"],
        ["stores", "verify", "--stores", "{tmp}"],
    ],
)
def test_light_commands_import_no_jax_flax_or_torch(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = (
        f"import sys\nfrom podbench.cli import main\nsys.argv = ['podbench', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert heavy_after(code) == []
