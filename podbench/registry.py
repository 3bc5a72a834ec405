"""Named registries filled by decorators: models, preprocessors, target sources, tasks, ...

Built-ins register themselves when their module is imported (`load_builtins`); modules listed
under `plugins:` in a config are imported by `load_plugins`, so a new decoder, preprocessor or
task is one module plus one YAML, with no edit to podbench itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from podbench.errors import ConfigError


@dataclass
class Entry:
    """One registered object plus the metadata its decorator was given."""

    name: str
    obj: Any
    meta: dict = field(default_factory=dict)


class Registry:
    """A name -> Entry mapping with a decorator to fill it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str | None = None, **meta) -> Callable:
        def decorate(obj):
            key = name or obj.__name__
            if key in self._entries and self._entries[key].obj is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = Entry(key, obj, meta)
            return obj

        return decorate

    def entry(self, name: str, where: str = "") -> Entry:
        load_builtins()
        if name not in self._entries:
            at = f"{where} = {name!r}: " if where else f"{name!r}: "
            raise ConfigError(f"{at}unknown {self.kind}; registered: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str, where: str = "") -> Any:
        return self.entry(name, where).obj

    def names(self) -> list[str]:
        load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


models = Registry("model")
preprocessors = Registry("preprocessor")
target_sources = Registry("target source")
metrics = Registry("metric")
tasks = Registry("task")

register_model = models.register
register_preprocessor = preprocessors.register
register_target_source = target_sources.register
register_metric = metrics.register
register_task = tasks.register

_BUILTIN_MODULES = (
    "podbench.features.preprocessors",
    "podbench.features.foundation",
    "podbench.tasks.sources",
    "podbench.models",
    "podbench.tasks.metrics",
    "podbench.tasks",
)
_loaded = False


def load_builtins() -> None:
    """Import the modules whose decorators register podbench's own entries."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def load_plugins(modules: list[str]) -> None:
    """Import user modules (config `plugins:`) so that their decorators run."""
    load_builtins()
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"plugins[{i}] = {module!r}: cannot import it ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - a broken plugin is bad input, not a crash
            where = ""
            if isinstance(exc, SyntaxError):
                where = f" at {exc.filename} line {exc.lineno}"
            raise ConfigError(f"plugins[{i}] = {module!r}: importing it failed{where} "
                              f"({type(exc).__name__}: {exc})") from None
