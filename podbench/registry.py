"""Named registries filled by decorators: models, preprocessors, target sources, tasks, ...

Every entry carries a typed, frozen spec (podbench.specs) built from its decorator's keywords;
an unknown keyword is an error. Built-ins register themselves when their module is imported
(`load_builtins`); decoders are declared by name and spec first (`Registry.declare`), so
validating a config never imports JAX. Modules listed under `plugins:` in a config are imported
by `load_plugins`, so a new decoder, preprocessor or task is one module plus one YAML, with no
edit to podbench itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from podbench.errors import ConfigError
from podbench.specs import DecoderSpec, PreprocessorSpec, SourceSpec, Spec, TaskSpec

S = TypeVar("S", bound=Spec)
R = TypeVar("R", bound=Callable[..., Any])  # a registered class or function


@dataclass
class Entry(Generic[S]):
    """One registered object and its spec.

    A declared entry knows its spec (e.g. a decoder's parameter schema) before its module is
    imported; the module, which may import JAX or torch, is imported when `obj` is first
    needed, and its decorator fills the entry in."""

    name: str
    _obj: Any
    spec: S
    module: str | None = None

    @property
    def obj(self) -> Any:
        if self._obj is None and self.module is not None:
            importlib.import_module(self.module)
            if self._obj is None:
                raise ValueError(f"{self.module} does not register {self.name!r}")
        return self._obj


class Registry(Generic[S]):
    """A name -> entry mapping, filled by a decorator.

    Parameters
    ----------
    kind : str
        What it holds ("model", "task", ...), named by error messages.
    spec : type
        The type of its entries' specs (a :class:`podbench.specs.Spec`): the keywords an
        entry may declare.
    check : callable, optional
        ``check(name, obj)`` raises when `obj` cannot be registered (a task missing a
        required hook).
    """

    def __init__(self, kind: str, spec: type[S], check: Callable[[str, Any], None] | None = None):
        self.kind = kind
        self.spec_type = spec
        self.check = check  # raises when an object cannot be registered
        self._entries: dict[str, Entry[S]] = {}

    def register(self, name: str | None = None, **keywords: Any) -> Callable[[R], R]:
        """A decorator registering its object with a spec.

        ``register_model``, ``register_preprocessor``, ``register_target_source``,
        ``register_task`` and ``register_metric`` are this method of each registry.

        Parameters
        ----------
        name : str, optional
            The name configs use (default: the object's ``__name__``).
        **keywords
            The entry's spec, checked strictly: an unknown keyword is a
            :class:`~podbench.errors.ConfigError` (``params=``, ``input_dims=``, ... of
            :class:`podbench.specs.DecoderSpec` for a decoder). A built-in declared with its
            spec (:meth:`declare`) is registered without keywords.

        Returns
        -------
        callable
            The decorator; it returns the object unchanged.

        Examples
        --------
        >>> from dataclasses import dataclass
        >>> from podbench.registry import register_model
        >>> @dataclass
        ... class Params:
        ...     width: int = 64
        >>> @register_model("my_mlp", params=Params)  # doctest: +SKIP
        ... def build(params, *, input_shape, output_dim, head, rngs):
        ...     ...
        """

        def decorate(obj: R) -> R:
            key = name or obj.__name__
            if self.check is not None:
                self.check(key, obj)
            old = self._entries.get(key)
            if old is not None and old._obj is not None and old._obj is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            if old is not None and old.module is not None:
                if keywords:
                    raise ConfigError(
                        f"{self.kind} {key!r}: declared with its spec (in "
                        f"podbench); register it without keywords"
                    )
                old._obj = obj
            else:
                self._entries[key] = Entry(key, obj, self._spec(key, keywords))
            return obj

        return decorate

    def declare(self, name: str, module: str, **keywords: Any) -> None:
        """Declare a built-in entry by name, module and spec, without importing the module.

        Parameters
        ----------
        name : str
            The entry's name.
        module : str
            The module whose decorator registers the object, imported when it is first
            needed (it may import JAX or torch).
        **keywords
            The entry's spec, as for :meth:`register`.
        """
        self._entries[name] = Entry(name, None, self._spec(name, keywords), module)

    def _spec(self, name: str, keywords: dict[str, Any]) -> S:
        return self.spec_type.of(f"{self.kind} {name!r}", keywords)

    def entry(self, name: str, where: str = "") -> Entry[S]:
        """The entry `name` (see :meth:`spec`), built-ins loaded first.

        Parameters
        ----------
        name : str
            A registered name.
        where : str, default ""
            The config path that names it, for the error.

        Returns
        -------
        Entry
            Its name, spec and (imported when first read) object.

        Raises
        ------
        podbench.errors.ConfigError
            An unknown name, listing the registered ones.
        """
        load_builtins()
        if name not in self._entries:
            at = f"{where} = {name!r}: " if where else f"{name!r}: "
            raise ConfigError(f"{at}unknown {self.kind}; registered: {', '.join(self.names())}")
        return self._entries[name]

    def spec(self, name: str, where: str = "") -> S:
        """The spec of an entry, without importing its module.

        Parameters
        ----------
        name : str
            A registered name.
        where : str, default ""
            The config path that names it (``model.name``), for the error.

        Returns
        -------
        podbench.specs.Spec
            The entry's typed, frozen spec.

        Raises
        ------
        podbench.errors.ConfigError
            An unknown name, listing the registered ones.
        """
        return self.entry(name, where).spec

    def get(self, name: str, where: str = "") -> Any:
        """The registered object `name`, its module imported if it was only declared.

        Parameters
        ----------
        name : str
            A registered name.
        where : str, default ""
            The config path that names it, for the error.

        Returns
        -------
        object
            What the decorator registered (a decoder's constructor, a task class, ...).
        """
        return self.entry(name, where).obj

    def names(self) -> list[str]:
        """Every registered name, sorted (built-ins and imported plugins).

        Returns
        -------
        list of str
            The names.
        """
        load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


models = Registry("model", DecoderSpec)
preprocessors = Registry("preprocessor", PreprocessorSpec)
target_sources = Registry("target source", SourceSpec)
metrics = Registry("metric", Spec)


def _complete_task(name: str, cls: type) -> None:
    """A task class must implement every required hook (the Task base's abstract methods)."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise ConfigError(
            f"task {name!r} ({cls.__module__}.{cls.__qualname__}) does not "
            f"implement the required hook(s) {', '.join(missing)}; see "
            "podbench/tasks/base.py"
        )


tasks = Registry("task", TaskSpec, check=_complete_task)

register_model = models.register
register_preprocessor = preprocessors.register
register_target_source = target_sources.register
register_metric = metrics.register
register_task = tasks.register

_BUILTIN_MODULES = (
    "podbench.features.preprocessors",
    "podbench.features.foundation",
    "podbench.features.braindecode",
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


def load_plugins(modules: list[str], folders: Sequence[Path] = ()) -> None:
    """Import user modules (config `plugins:`) so that their decorators run. Besides the
    installed packages, a plugin is found in `folders` (the config file's folder) and in the
    working directory."""
    load_builtins()
    if modules:
        for folder in [*folders, Path.cwd()]:
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"plugins[{i}] = {module!r}: cannot import it ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - a broken plugin is bad input, not a crash
            where = ""
            if isinstance(exc, SyntaxError):
                where = f" at {exc.filename} line {exc.lineno}"
            raise ConfigError(
                f"plugins[{i}] = {module!r}: importing it failed{where} "
                f"({type(exc).__name__}: {exc})"
            ) from None
